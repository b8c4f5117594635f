//! Fuzzes the WAL record decoder: any bytes must decode to a record, an end marker, or an
//! error — never a panic, an out-of-bounds read or an over-allocation — and every record it
//! accepts must re-encode to exactly the bytes it was read from. Each input is also tried with
//! its first record's checksum fixed up, so the fuzzer reaches the payload decoders behind
//! the checksum.
#![no_main]

use accord::runtime::storage::record::{decode, encode, Decoded, RECORD_HEADER_BYTES};
use libfuzzer_sys::fuzz_target;

fn decode_all(data: &[u8]) {
    let mut offset = 0;
    // Bounded: each accepted record consumes at least its header.
    while offset < data.len() {
        match decode(&data[offset..]) {
            Decoded::Record(record, used) => {
                let mut again = Vec::new();
                encode(&record, &mut again);
                assert_eq!(
                    &again[..],
                    &data[offset..offset + used],
                    "re-encoding differs"
                );
                offset += used;
            }
            Decoded::End | Decoded::Incomplete(_) | Decoded::Bad(_) => break,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    decode_all(data);
    if data.len() >= RECORD_HEADER_BYTES {
        let mut fixed = data.to_vec();
        let length = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let end = (RECORD_HEADER_BYTES + length).min(data.len());
        let crc =
            crc32c::crc32c_append(crc32c::crc32c(&data[..5]), &data[RECORD_HEADER_BYTES..end]);
        fixed[5..9].copy_from_slice(&crc.to_le_bytes());
        decode_all(&fixed);
    }
});
