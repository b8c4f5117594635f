//! Fuzzes the wire frame decoder (every frame a peer or a client can send, the connection
//! handshake's Hello, Welcome and Refused included): any bytes must decode to a frame, a
//! request for more bytes, or an error — never a panic, an out-of-bounds read or an
//! over-allocation — and a frame it accepts must encode to bytes that decode to the same
//! frame. Each input is also tried behind a valid header (length, protocol version), so the
//! fuzzer reaches every frame kind's body decoder.
#![no_main]

use accord::runtime::wire::{decode, encode, Decoded, PROTOCOL_VERSION};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Decoded::Frame(frame, used) = decode(bytes) {
        assert!(used <= bytes.len(), "used more bytes than given");
        let mut again = Vec::new();
        encode(&frame, &mut again);
        match decode(&again) {
            Decoded::Frame(same, n) => {
                assert_eq!(same, frame, "the frame changed through encode and decode");
                assert_eq!(n, again.len(), "the re-encoded frame was not read whole");
            }
            other => panic!("a frame we encoded does not decode: {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some((&kind, body)) = data.split_first() {
        let mut framed = Vec::with_capacity(body.len() + 6);
        framed.extend_from_slice(&((body.len() + 2) as u32).to_le_bytes());
        framed.push(PROTOCOL_VERSION);
        framed.push(kind);
        framed.extend_from_slice(body);
        check(&framed);
    }
});
