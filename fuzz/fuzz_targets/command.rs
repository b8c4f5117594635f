//! Fuzzes the decoder of the commands stored in log entries (what every member applies):
//! any bytes must decode to a request or an error — never a panic, an out-of-bounds read or
//! an over-allocation — and a request it accepts must encode to bytes that decode to the
//! same request. Each input is also tried behind a valid version byte and identity, so the
//! fuzzer reaches every command's decoder.
#![no_main]

use accord::core::state::command::REQUEST_VERSION;
use accord::core::state::Request;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(request) = Request::decode(bytes) {
        let again = request.encode();
        assert_eq!(
            Request::decode(&again),
            Ok(request),
            "the request changed through encode and decode"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut prefixed = Vec::with_capacity(data.len() + 17);
    prefixed.push(REQUEST_VERSION);
    prefixed.extend_from_slice(&7u64.to_le_bytes());
    prefixed.extend_from_slice(&9u64.to_le_bytes());
    prefixed.extend_from_slice(data);
    check(&prefixed);
});
