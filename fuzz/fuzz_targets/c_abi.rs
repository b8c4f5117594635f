//! Drives the C ABI with random call sequences and arguments against one member running in
//! this process: every call must return a result code (never crash, hang or corrupt memory)
//! whatever the arguments — NULL pointers with non-zero lengths, empty and oversize keys,
//! values and names, unknown enum values, zero and odd timeouts, handles used after their
//! session closed, and calls in any order. Pointers are always valid or NULL (the ABI's
//! contract leaves dangling pointers undefined), and every handle is freed when the input
//! ends, so that a leak shows under the sanitizer.
#![no_main]

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use accord::ffi::client::*;
use accord::ffi::coord::*;
use accord::ffi::*;
use libfuzzer_sys::fuzz_target;

/// Inputs one member serves before it is replaced by a fresh one: what the inputs write
/// (keys with values up to a MiB, queue items) stays in the member's state, and a member that
/// kept it all would grow past the fuzzer's memory limit in a long run.
const INPUTS_PER_MEMBER: u32 = 20_000;

/// The member and its client, shared by many inputs (starting a member per input would
/// leave no time for calls).
struct World {
    node: *mut accord_node,
    client: *mut accord_client,
    dir: std::path::PathBuf,
    inputs: u32,
}

// SAFETY: the ABI's handles may be used from any thread; the fuzzer runs one at a time.
unsafe impl Send for World {}

impl World {
    fn start() -> World {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Data directories of earlier fuzzing processes that are gone are removed first.
        let prefix = "accord-fuzz-c-abi-";
        for entry in std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(prefix) {
                if !std::path::Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let listen = CString::new(format!("127.0.0.1:{port}")).unwrap();
        let dir_text = CString::new(dir.to_str().unwrap()).unwrap();
        let mut node = null_mut();
        let mut client = null_mut();
        // SAFETY: valid strings and out-pointers.
        unsafe {
            assert_eq!(
                accord_node_start(
                    1,
                    listen.as_ptr(),
                    c"".as_ptr(),
                    dir_text.as_ptr(),
                    &mut node
                ),
                ACCORD_OK
            );
            assert_eq!(accord_node_client(node, &mut client), ACCORD_OK);
            // Until the member leads.
            let mut revision = 0;
            while accord_kv_put(client, c"k".as_ptr().cast(), 1, null(), 0, &mut revision)
                != ACCORD_OK
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        World {
            node,
            client,
            dir,
            inputs: 0,
        }
    }

    /// Stops the member and removes its data (after every handle of the input was freed).
    fn stop(self) {
        // SAFETY: live handles, freed once; nothing uses them after.
        unsafe {
            accord_client_free(self.client);
            accord_node_stop(self.node);
            accord_node_free(self.node);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The member of the inputs running now.
static WORLD: std::sync::Mutex<Option<World>> = std::sync::Mutex::new(None);

/// Stops the member when the fuzzing process exits, before LeakSanitizer looks for leaks:
/// its state lives on its event loop's thread, which the check at exit may not see through,
/// and a leak report must only ever mean a leak of the C ABI.
extern "C" fn stop_world_at_exit() {
    if let Some(world) = WORLD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
    {
        world.stop();
    }
}

/// The world for the next input (a fresh member every `INPUTS_PER_MEMBER` inputs).
fn world() -> std::sync::MutexGuard<'static, Option<World>> {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a plain function with no arguments.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(stop_world_at_exit);
    });
    let mut world = WORLD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if world
        .as_ref()
        .is_some_and(|w| w.inputs >= INPUTS_PER_MEMBER)
    {
        if let Some(old) = world.take() {
            old.stop();
        }
    }
    let current = world.get_or_insert_with(World::start);
    current.inputs += 1;
    world
}

/// Reads the input as a program.
struct Program<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Program<'a> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    /// Bytes for a key, value or name: a slice of the input, or (rarely) a large buffer
    /// past the limits.
    fn bytes(&mut self) -> Vec<u8> {
        match self.byte() {
            250..=255 => vec![b'x'; 1024 * usize::from(self.byte())],
            n => {
                let start = self.at.min(self.data.len());
                let len = usize::from(n % 16).min(self.data.len() - start);
                self.at = start + len;
                self.data[start..start + len].to_vec()
            }
        }
    }

    /// A pointer and length for `bytes`: sometimes NULL with the length kept (which the
    /// ABI must refuse when the length is not 0).
    fn arg(&mut self, bytes: &[u8]) -> (*const u8, usize) {
        if self.byte() % 16 == 0 {
            (null(), bytes.len())
        } else {
            (bytes.as_ptr(), bytes.len())
        }
    }

    /// A short timeout in milliseconds (the member is local: calls answer quickly).
    fn timeout(&mut self) -> u32 {
        u32::from(self.byte() % 20)
    }

    /// An index into `len` handles, or None (the call then gets NULL).
    fn pick(&mut self, len: usize) -> Option<usize> {
        let b = usize::from(self.byte());
        (len > 0 && b % 8 != 0).then(|| b % len)
    }
}

/// Handles made by one input, all freed at its end.
#[derive(Default)]
struct Handles {
    sessions: Vec<*mut accord_session>,
    locks: Vec<*mut accord_lock>,
    claims: Vec<*mut accord_claim>,
    watches: Vec<*mut accord_watch>,
}

fn result_names_are_text(code: accord_result) {
    // SAFETY: the functions return static strings for every code.
    unsafe {
        let name = accord_result_str(code);
        assert!(!name.is_null());
        assert!(!CStr::from_ptr(name).to_bytes().is_empty());
        let detail: *const c_char = accord_last_error_message();
        assert!(!detail.is_null());
    }
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let client = world.as_ref().expect("started above").client;
    let mut p = Program { data, at: 0 };
    let mut h = Handles::default();
    // Bounded by the input's length: every step reads at least one byte.
    while !p.done() {
        let op = p.byte() % 17;
        // SAFETY: every pointer below is NULL or valid for the call; handles are live
        // (freed only at the end, or removed from their list when freed).
        let code = unsafe {
            match op {
                0 => {
                    let (key, value) = (p.bytes(), p.bytes());
                    let ((k, kl), (v, vl)) = (p.arg(&key), p.arg(&value));
                    let mut revision = 0;
                    accord_kv_put(client, k, kl, v, vl, &mut revision)
                }
                1 => {
                    let key = p.bytes();
                    let (k, kl) = p.arg(&key);
                    let mut found = false;
                    let mut value = accord_buf {
                        data: null_mut(),
                        len: 0,
                    };
                    let mut revision = 0;
                    let serializable = p.byte() % 2 == 0;
                    let code = accord_kv_get(
                        client,
                        k,
                        kl,
                        serializable,
                        &mut found,
                        &mut value,
                        &mut revision,
                    );
                    accord_buf_free(value);
                    code
                }
                2 => {
                    let key = p.bytes();
                    let (k, kl) = p.arg(&key);
                    let (mut deleted, mut revision) = (false, 0);
                    accord_kv_delete(client, k, kl, &mut deleted, &mut revision)
                }
                3 => {
                    let (key, expected, value) = (p.bytes(), p.bytes(), p.bytes());
                    let ((k, kl), (e, el), (v, vl)) =
                        (p.arg(&key), p.arg(&expected), p.arg(&value));
                    let absent = p.byte() % 2 == 0;
                    let (mut swapped, mut revision) = (false, 0);
                    accord_kv_compare_and_swap(
                        client,
                        k,
                        kl,
                        e,
                        el,
                        absent,
                        v,
                        vl,
                        &mut swapped,
                        &mut revision,
                    )
                }
                4 => {
                    let prefix = p.bytes();
                    let (x, xl) = p.arg(&prefix);
                    let mut list = null_mut();
                    let code = accord_kv_range(client, x, xl, u32::from(p.byte()), &mut list);
                    if !list.is_null() {
                        let len = accord_kv_list_len(list);
                        let index = usize::from(p.byte()) % (len + 2); // past the end too
                        let (mut key, mut kl, mut value, mut vl) = (null(), 0, null(), 0);
                        accord_kv_list_entry(list, index, &mut key, &mut kl, &mut value, &mut vl);
                        accord_kv_list_free(list);
                    }
                    code
                }
                5 => {
                    let mut session = null_mut();
                    let ttl = match p.byte() % 4 {
                        0 => p.u32(),
                        _ => 1000 + u32::from(p.byte()) * 100,
                    };
                    let code = accord_session_create(client, ttl, &mut session);
                    if !session.is_null() {
                        h.sessions.push(session);
                    }
                    code
                }
                6 => {
                    let s = p
                        .pick(h.sessions.len())
                        .map_or(null_mut(), |i| h.sessions[i]);
                    let mut state = 0;
                    match p.byte() % 5 {
                        0 => accord_session_status(s, &mut state),
                        1 => accord_session_keepalive(s, p.timeout() + 1),
                        2 => {
                            let mut id = 0;
                            accord_session_id(s, &mut id)
                        }
                        3 => accord_session_wait_change(s, p.u32(), p.timeout(), &mut state),
                        _ => accord_session_cancel(s),
                    }
                }
                7 => {
                    let s = p
                        .pick(h.sessions.len())
                        .map_or(null_mut(), |i| h.sessions[i]);
                    let name = p.bytes();
                    let (n, nl) = p.arg(&name);
                    let kind = match p.byte() % 6 {
                        0 => p.u32(),
                        k => u32::from(k),
                    };
                    let permits = u32::from(p.byte() % 4);
                    let mut lock = null_mut();
                    let code = accord_lock_acquire(
                        s,
                        n,
                        nl,
                        kind,
                        permits,
                        p.timeout(),
                        p.byte() % 2 == 0,
                        &mut lock,
                    );
                    if !lock.is_null() {
                        h.locks.push(lock);
                    }
                    code
                }
                8 => match p.pick(h.locks.len()) {
                    Some(i) => match p.byte() % 4 {
                        0 => {
                            let mut token = 0;
                            accord_lock_token(h.locks[i], &mut token)
                        }
                        1 => {
                            accord_lock_is_held(h.locks[i]);
                            ACCORD_OK
                        }
                        2 => accord_lock_release(h.locks[i]),
                        _ => {
                            accord_lock_free(h.locks.swap_remove(i));
                            ACCORD_OK
                        }
                    },
                    None => accord_lock_release(null()),
                },
                9 => {
                    let (queue, payload) = (p.bytes(), p.bytes());
                    let ((q, ql), (x, xl)) = (p.arg(&queue), p.arg(&payload));
                    let mut item = 0;
                    accord_queue_enqueue(client, q, ql, x, xl, &mut item)
                }
                10 => {
                    let s = p
                        .pick(h.sessions.len())
                        .map_or(null_mut(), |i| h.sessions[i]);
                    let queue = p.bytes();
                    let (q, ql) = p.arg(&queue);
                    let mut claim = null_mut();
                    let code =
                        accord_queue_claim(s, q, ql, p.timeout(), p.byte() % 2 == 0, &mut claim);
                    if !claim.is_null() {
                        h.claims.push(claim);
                    }
                    code
                }
                11 => match p.pick(h.claims.len()) {
                    Some(i) => match p.byte() % 3 {
                        0 => {
                            let (mut item, mut token, mut payload, mut len) = (0, 0, null(), 0);
                            accord_claim_item(
                                h.claims[i],
                                &mut item,
                                &mut token,
                                &mut payload,
                                &mut len,
                            )
                        }
                        1 => accord_claim_settle(h.claims[i], p.byte() % 2 == 0),
                        _ => {
                            accord_claim_free(h.claims.swap_remove(i));
                            ACCORD_OK
                        }
                    },
                    None => accord_claim_settle(null(), true),
                },
                12 => {
                    let name = p.bytes();
                    let (n, nl) = p.arg(&name);
                    let mut value = 0;
                    if p.byte() % 2 == 0 {
                        accord_counter_add(client, n, nl, i64::from(p.u32() as i32), &mut value)
                    } else {
                        accord_counter_get(client, n, nl, &mut value)
                    }
                }
                13 => {
                    let prefix = p.bytes();
                    let (x, xl) = p.arg(&prefix);
                    let space = match p.byte() % 10 {
                        0 => p.u32(),
                        s => u32::from(s),
                    };
                    let mut watch = null_mut();
                    let code =
                        accord_watch_open(client, space, x, xl, u64::from(p.byte()), &mut watch);
                    if !watch.is_null() {
                        h.watches.push(watch);
                    }
                    code
                }
                14 => match p.pick(h.watches.len()) {
                    Some(i) if p.byte() % 4 == 0 => {
                        accord_watch_free(h.watches.swap_remove(i));
                        ACCORD_OK
                    }
                    pick => {
                        let w = pick.map_or(null_mut(), |i| h.watches[i]);
                        let mut events = null_mut();
                        let code = accord_watch_next(w, p.timeout(), &mut events);
                        if !events.is_null() {
                            let len = accord_event_list_len(events);
                            let mut event = std::mem::zeroed();
                            accord_event_list_get(
                                events,
                                usize::from(p.byte()) % (len + 2),
                                &mut event,
                            );
                            accord_event_list_free(events);
                        }
                        code
                    }
                },
                16 => {
                    // Connecting with random TLS files and token (NULL, junk, paths that do
                    // not exist, interior NULs refused by CString): refused or prepared,
                    // never used (a call would try to reach random addresses).
                    let mut text = || -> Option<std::ffi::CString> {
                        match p.byte() % 4 {
                            0 => None,
                            1 => Some(c"/nonexistent/accord-fuzz.pem".to_owned()),
                            _ => std::ffi::CString::new(p.bytes()).ok(),
                        }
                    };
                    let endpoints = text();
                    let (ca, cert, key, token) = (text(), text(), text(), text());
                    let ptr =
                        |s: &Option<std::ffi::CString>| s.as_ref().map_or(null(), |s| s.as_ptr());
                    let mut made = null_mut();
                    let code = accord_client_connect_secure(
                        ptr(&endpoints),
                        1,
                        p.timeout(),
                        ptr(&ca),
                        ptr(&cert),
                        ptr(&key),
                        ptr(&token),
                        &mut made,
                    );
                    if !made.is_null() {
                        accord_client_close(made);
                        accord_client_free(made);
                    }
                    code
                }
                _ => match p.pick(h.sessions.len()) {
                    Some(i) if p.byte() % 2 == 0 => accord_session_close(h.sessions[i]),
                    Some(i) => {
                        accord_session_free(h.sessions.swap_remove(i));
                        ACCORD_OK
                    }
                    None => accord_session_close(null()),
                },
            }
        };
        result_names_are_text(code);
        // Sometimes a random code, to check every code has a name.
        if op == 15 {
            result_names_are_text(p.u32());
        }
    }
    // SAFETY: every handle below is live and freed once.
    unsafe {
        for lock in h.locks {
            accord_lock_free(lock);
        }
        for claim in h.claims {
            accord_claim_free(claim);
        }
        for watch in h.watches {
            accord_watch_free(watch);
        }
        for session in h.sessions {
            accord_session_close(session);
            accord_session_free(session);
        }
    }
});
