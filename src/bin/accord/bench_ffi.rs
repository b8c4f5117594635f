//! `accord bench ffi`: what the C ABI adds to a call. One member runs in this process (started
//! through the ABI); a serializable get of one key goes to it through the member's own client,
//! once through the Rust API and once through `accord_kv_get`, alternating blocks of calls in
//! the same run; the line reports nanoseconds per call for each and the difference.

use std::ffi::CString;
use std::process::ExitCode;
use std::time::Instant;

use accord::ffi::client::{
    accord_client, accord_client_free, accord_kv_get, accord_kv_put, accord_node,
    accord_node_client, accord_node_free, accord_node_start,
};
use accord::ffi::{accord_buf, accord_buf_free, ACCORD_OK};

use crate::args::Args;

/// Calls per block; blocks alternate between the two paths.
const BLOCK_CALLS: u32 = 2_000;
/// Pairs of blocks. Each call crosses to the member's event-loop thread and back (tens of
/// microseconds on a shared VM, with scheduler noise of the same order), so the difference is
/// taken pair by pair, between adjacent blocks, and the median of those differences reported.
const ROUNDS: usize = 101;

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

pub fn main(mut args: Args) -> Result<ExitCode, String> {
    let port: u16 = args.get("port", 0)?;
    args.finish_keeping_words()?;
    let port = if port == 0 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port()
    } else {
        port
    };
    let dir = std::env::temp_dir().join(format!("accord-bench-ffi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let listen = CString::new(format!("127.0.0.1:{port}")).map_err(|e| e.to_string())?;
    let peers = CString::new("").map_err(|e| e.to_string())?;
    let data = CString::new(dir.display().to_string()).map_err(|e| e.to_string())?;
    let mut node: *mut accord_node = std::ptr::null_mut();
    let mut client: *mut accord_client = std::ptr::null_mut();
    // SAFETY: valid C strings and output locations, as the ABI requires.
    unsafe {
        if accord_node_start(1, listen.as_ptr(), peers.as_ptr(), data.as_ptr(), &mut node)
            != ACCORD_OK
            || accord_node_client(node, &mut client) != ACCORD_OK
        {
            return Err("starting a member through the C ABI failed".into());
        }
    }
    // SAFETY: `node` is a live handle from accord_node_start.
    let rust = unsafe { &*node }.rust_client().map_err(|e| e.to_string())?;
    let key = b"bench-key";
    let mut revision = 0u64;
    // SAFETY: live handle, valid buffers.
    let put = unsafe {
        accord_kv_put(
            client,
            key.as_ptr(),
            key.len(),
            b"value".as_ptr(),
            5,
            &mut revision,
        )
    };
    if put != ACCORD_OK {
        return Err("the first write failed".into());
    }
    let mut rust_ns = Vec::new();
    let mut c_ns = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..BLOCK_CALLS {
            let (found, _) = rust.get_serializable(key).map_err(|e| e.to_string())?;
            std::hint::black_box(found);
        }
        rust_ns.push(start.elapsed().as_nanos() as f64 / f64::from(BLOCK_CALLS));
        let start = Instant::now();
        for _ in 0..BLOCK_CALLS {
            let mut found = false;
            let mut value = accord_buf {
                data: std::ptr::null_mut(),
                len: 0,
            };
            // SAFETY: live handle, valid outputs; the buffer is freed right after.
            let result = unsafe {
                accord_kv_get(
                    client,
                    key.as_ptr(),
                    key.len(),
                    true,
                    &mut found,
                    &mut value,
                    &mut revision,
                )
            };
            if result != ACCORD_OK {
                return Err("a get through the C ABI failed".into());
            }
            // SAFETY: `value` came from accord_kv_get.
            unsafe { accord_buf_free(std::hint::black_box(value)) };
        }
        c_ns.push(start.elapsed().as_nanos() as f64 / f64::from(BLOCK_CALLS));
    }
    let mut differences: Vec<f64> = c_ns.iter().zip(&rust_ns).map(|(c, r)| c - r).collect();
    let extra = median(&mut differences);
    let rust_median = median(&mut rust_ns);
    let c_median = median(&mut c_ns);
    println!(
        "bench ffi: call=get-serializable-local rust_ns_per_call={rust_median:.0} c_abi_ns_per_call={c_median:.0} extra_ns={extra:.0} pairs={ROUNDS} calls_per_block={BLOCK_CALLS}"
    );
    drop(rust);
    // SAFETY: last uses of the handles.
    unsafe {
        accord_client_free(client);
        accord_node_free(node);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}
