//! The C ABI: the only `extern "C"` code. `include/accord.h` is generated from it by cbindgen.
//!
//! The contract (DESIGN.md §8), kept by construction here:
//! - names `accord_<object>_<verb>`, opaque handle types, enum values `ACCORD_<TYPE>_<VARIANT>`;
//! - every fallible function returns an [`accord_result`] (`ACCORD_OK` or an error code from
//!   1000 up, never reused, never overlapping errno); outputs are written only on success;
//!   [`accord_result_str`] names a code and [`accord_last_error_message`] (per thread) gives
//!   the detail of the last failure;
//! - NULL or invalid arguments give an error code, never a crash: every pointer goes through
//!   the helpers below, and every body runs inside `guard`, a panic boundary;
//! - handles are usable from any thread; after `_close` every call on the handle returns
//!   `ACCORD_ERR_SHUTDOWN`; `_free` accepts NULL and must be the handle's last use;
//! - byte strings are `(const uint8_t *ptr, size_t len)` (`ptr` may be NULL when `len` is 0);
//!   returned bytes are an [`accord_buf`] the caller frees with [`accord_buf_free`];
//! - blocking calls take a timeout in milliseconds and can be cancelled from another thread.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // the safety contract is the module's, stated above

pub mod client;
pub mod coord;

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::Error;
use crate::limits::FRAME_BYTES_MAX;

/// Where the build wrote the header generated from this module (for the test that checks
/// the committed `include/accord.h` against it).
pub const GENERATED_HEADER_PATH: &str = env!("ACCORD_GENERATED_HEADER");

/// The result of every fallible call: `ACCORD_OK` or one of the `ACCORD_ERR_*` codes.
pub type accord_result = u32;

/// Success.
pub const ACCORD_OK: accord_result = 0;
/// A required pointer argument was NULL.
pub const ACCORD_ERR_NULL_ARGUMENT: accord_result = 1000;
/// An argument is out of range or malformed (the message says which).
pub const ACCORD_ERR_INVALID_ARGUMENT: accord_result = 1001;
/// The handle was closed (or its node stopped); the call did nothing.
pub const ACCORD_ERR_SHUTDOWN: accord_result = 1002;
/// A blocking call was not satisfied within its timeout.
pub const ACCORD_ERR_TIMEOUT: accord_result = 1003;
/// The call was cancelled from another thread.
pub const ACCORD_ERR_CANCELLED: accord_result = 1004;
/// No leader answered in time (the cluster may have lost its quorum); retry later.
pub const ACCORD_ERR_UNAVAILABLE: accord_result = 1005;
/// The cluster refused the request (the message says why); retrying will not help.
pub const ACCORD_ERR_REJECTED: accord_result = 1006;
/// The session the call depends on is lost: what it held must be considered gone.
pub const ACCORD_ERR_SESSION_LOST: accord_result = 1007;
/// An I/O error (a connection, a file); the message names it.
pub const ACCORD_ERR_IO: accord_result = 1008;
/// Stored data is damaged; the message says where and how to repair.
pub const ACCORD_ERR_CORRUPTION: accord_result = 1009;
/// The data directory is locked by another process.
pub const ACCORD_ERR_LOCKED: accord_result = 1010;
/// The configuration is invalid (the message says what to fix).
pub const ACCORD_ERR_CONFIG: accord_result = 1011;
/// A member answered something unexpected (another version?).
pub const ACCORD_ERR_PROTOCOL: accord_result = 1012;
/// A watch's start revision is no longer in the member's history: list again.
pub const ACCORD_ERR_COMPACTED: accord_result = 1013;
/// A bug inside accord was caught at the boundary (the message has the panic's text).
pub const ACCORD_ERR_PANIC: accord_result = 1014;
/// The client did not authenticate (no valid token or certificate), or its identity lacks
/// the right for this request; the message names the right. Nothing was done or read.
pub const ACCORD_ERR_PERMISSION_DENIED: accord_result = 1015;

/// The library's version.
pub const ACCORD_VERSION_MAJOR: u32 = 0;
/// The library's version.
pub const ACCORD_VERSION_MINOR: u32 = 1;
/// The library's version.
pub const ACCORD_VERSION_PATCH: u32 = 0;
/// Bumped whenever a function's signature or meaning changes; bindings check it at load
/// time against [`accord_abi_version`].
pub const ACCORD_ABI_VERSION: u32 = 1;

/// Bytes owned by the caller, to be freed with [`accord_buf_free`].
#[repr(C)]
pub struct accord_buf {
    /// The bytes (NULL when `len` is 0).
    pub data: *mut u8,
    /// How many.
    pub len: usize,
}

impl accord_buf {
    pub(crate) fn from_vec(bytes: Vec<u8>) -> accord_buf {
        if bytes.is_empty() {
            return accord_buf::empty();
        }
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        let data = Box::into_raw(boxed) as *mut u8;
        accord_buf { data, len }
    }

    pub(crate) fn empty() -> accord_buf {
        accord_buf {
            data: std::ptr::null_mut(),
            len: 0,
        }
    }
}

/// Frees bytes returned by accord (a buffer with NULL data is ignored).
#[no_mangle]
pub unsafe extern "C" fn accord_buf_free(buf: accord_buf) {
    let _ = catch_unwind(|| {
        if !buf.data.is_null() && buf.len > 0 {
            // SAFETY: `data` and `len` come from `accord_buf::from_vec` (a boxed slice).
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(buf.data, buf.len)) });
        }
    });
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// What went wrong, for the code and the message.
pub(crate) struct Failure {
    code: accord_result,
    message: String,
}

impl Failure {
    pub(crate) fn new(code: accord_result, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn null(what: &str) -> Failure {
        Failure::new(ACCORD_ERR_NULL_ARGUMENT, format!("{what} is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(ACCORD_ERR_INVALID_ARGUMENT, message)
    }

    pub(crate) fn shutdown(what: &str) -> Failure {
        Failure::new(ACCORD_ERR_SHUTDOWN, format!("the {what} was closed"))
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let code = match &error {
            Error::InvalidArgument(_) | Error::EntryTooLarge { .. } => ACCORD_ERR_INVALID_ARGUMENT,
            Error::Timeout(_) => ACCORD_ERR_TIMEOUT,
            Error::Cancelled => ACCORD_ERR_CANCELLED,
            Error::NotLeader { .. } | Error::Busy(_) | Error::TransferInProgress => {
                ACCORD_ERR_UNAVAILABLE
            }
            Error::Rejected(_) => ACCORD_ERR_REJECTED,
            Error::PermissionDenied(_) => ACCORD_ERR_PERMISSION_DENIED,
            Error::SessionLost(_) => ACCORD_ERR_SESSION_LOST,
            Error::Io { .. } | Error::StorageFailed(_) => ACCORD_ERR_IO,
            Error::Corruption { .. } | Error::Corrupt(_) => ACCORD_ERR_CORRUPTION,
            Error::DataDirLocked { .. } => ACCORD_ERR_LOCKED,
            Error::InvalidConfig(_) | Error::UnknownNode(_) => ACCORD_ERR_CONFIG,
            Error::Protocol(_) | Error::InvalidMessage(_) => ACCORD_ERR_PROTOCOL,
            Error::Compacted { .. } | Error::Unavailable(_) => ACCORD_ERR_COMPACTED,
        };
        Failure::new(code, error.to_string())
    }
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
}

/// Runs an exported body: its error becomes the code and this thread's last error message;
/// a panic becomes `ACCORD_ERR_PANIC` instead of unwinding into C.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> accord_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ACCORD_OK,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.code
        }
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (please report): {text}"));
            ACCORD_ERR_PANIC
        }
    }
}

/// The bytes at `(ptr, len)`: NULL is allowed only for an empty string.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    if len > FRAME_BYTES_MAX {
        return Err(Failure::invalid(format!(
            "{what} is {len} bytes; at most {FRAME_BYTES_MAX}"
        )));
    }
    // SAFETY: the caller passes `len` readable bytes at `ptr` (the ABI's contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A NUL-terminated UTF-8 string.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: the caller passes a NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))
}

/// The object behind a handle pointer.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL handles come from this library's `Box::into_raw` and stay valid
    // until their `_free` (the ABI's contract).
    Ok(unsafe { &*ptr })
}

/// Writes an output (checked non-NULL before any work is done).
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: the caller passes a writable location for the output.
    Ok(unsafe { &mut *ptr })
}

/// Hands a new object to C.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back and drops an object handed to C (NULL is ignored).
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: `ptr` came from `into_handle` and this is its last use.
            drop(unsafe { Box::from_raw(ptr) });
        }));
    }
}

/// A timeout in milliseconds as a `Duration`.
pub(crate) fn millis(timeout_ms: u32) -> std::time::Duration {
    std::time::Duration::from_millis(u64::from(timeout_ms))
}

/// The library's version, as text ("0.1.0").
#[no_mangle]
pub extern "C" fn accord_version() -> *const c_char {
    c"0.1.0".as_ptr()
}

/// The ABI version this library implements (compare with `ACCORD_ABI_VERSION`).
#[no_mangle]
pub extern "C" fn accord_abi_version() -> u32 {
    ACCORD_ABI_VERSION
}

/// The name of a result code ("ACCORD_ERR_TIMEOUT"); "ACCORD_ERR_UNKNOWN" for others.
#[no_mangle]
pub extern "C" fn accord_result_str(result: accord_result) -> *const c_char {
    let name = match result {
        ACCORD_OK => c"ACCORD_OK",
        ACCORD_ERR_NULL_ARGUMENT => c"ACCORD_ERR_NULL_ARGUMENT",
        ACCORD_ERR_INVALID_ARGUMENT => c"ACCORD_ERR_INVALID_ARGUMENT",
        ACCORD_ERR_SHUTDOWN => c"ACCORD_ERR_SHUTDOWN",
        ACCORD_ERR_TIMEOUT => c"ACCORD_ERR_TIMEOUT",
        ACCORD_ERR_CANCELLED => c"ACCORD_ERR_CANCELLED",
        ACCORD_ERR_UNAVAILABLE => c"ACCORD_ERR_UNAVAILABLE",
        ACCORD_ERR_REJECTED => c"ACCORD_ERR_REJECTED",
        ACCORD_ERR_SESSION_LOST => c"ACCORD_ERR_SESSION_LOST",
        ACCORD_ERR_IO => c"ACCORD_ERR_IO",
        ACCORD_ERR_CORRUPTION => c"ACCORD_ERR_CORRUPTION",
        ACCORD_ERR_LOCKED => c"ACCORD_ERR_LOCKED",
        ACCORD_ERR_CONFIG => c"ACCORD_ERR_CONFIG",
        ACCORD_ERR_PROTOCOL => c"ACCORD_ERR_PROTOCOL",
        ACCORD_ERR_COMPACTED => c"ACCORD_ERR_COMPACTED",
        ACCORD_ERR_PERMISSION_DENIED => c"ACCORD_ERR_PERMISSION_DENIED",
        ACCORD_ERR_PANIC => c"ACCORD_ERR_PANIC",
        _ => c"ACCORD_ERR_UNKNOWN",
    };
    name.as_ptr()
}

/// The detail of this thread's last failed call (empty if none); valid until this thread's
/// next failing call.
#[no_mangle]
pub extern "C" fn accord_last_error_message() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}
