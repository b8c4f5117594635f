//! Fuzzes the snapshot file decoder: any bytes must decode or fail with an error naming an
//! offset within the input — never a panic — and an accepted snapshot must re-encode to the
//! same bytes (a file of the older format 1 re-encodes in the current format, to a file that
//! decodes to the same snapshot). Each input is also tried with its checksum fixed up, so the
//! fuzzer reaches the structure behind it.
#![no_main]

use accord::runtime::storage::snapshot_file::{decode, encode};
use libfuzzer_sys::fuzz_target;

fn check(data: &[u8]) {
    match decode(data) {
        Ok(snapshot) => {
            let again = encode(&snapshot);
            if again != data {
                assert_eq!(data[8..12], 1u32.to_le_bytes(), "re-encoding differs");
                assert_eq!(decode(&again).ok(), Some(snapshot), "format 1 converts");
            }
        }
        Err((offset, _)) => assert!(offset <= data.len() as u64, "error offset out of range"),
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= 4 {
        let mut fixed = data.to_vec();
        let body = data.len() - 4;
        let crc = crc32c::crc32c(&data[..body]);
        fixed[body..].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
});
