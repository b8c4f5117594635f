//! The write-ahead log's record format.
//!
//! ```text
//! record  = length:u32 | kind:u8 | crc32c:u32 | payload[length]
//! crc32c  = CRC-32C over length, kind and payload (so a damaged length is caught too)
//! ```
//!
//! All integers are little-endian. The length is bounded by [`RECORD_PAYLOAD_BYTES_MAX`] and by
//! the bytes left in the file; a header of nine zero bytes marks the end of the written part of
//! a preallocated segment. Decoding never panics and never trusts a length before checking it.

use crate::codec::Reader;
use crate::limits::ENTRY_BYTES_MAX;
use crate::types::{Entry, EntryKind, HardState, Index, Payload, Term};

/// Bytes of a record header.
pub const RECORD_HEADER_BYTES: usize = 9;

/// Largest record payload: an entry at the size limit plus its fixed fields.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = ENTRY_BYTES_MAX + 64;

/// Identifies a WAL segment file (first bytes of its header record's payload).
pub const SEGMENT_MAGIC: [u8; 8] = *b"ACCORDWL";

/// Version of the segment format.
pub const SEGMENT_VERSION: u32 = 1;

/// One record of the write-ahead log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// First record of every segment.
    SegmentHeader {
        /// Position of the segment in the log (1, 2, …).
        sequence: u64,
        /// Index of the first entry the segment may hold.
        first_index: Index,
    },
    /// A log entry. An entry at or below the last one replaces it and everything after it.
    Entry(Entry),
    /// The hard state; the last one in the log is in force.
    HardState(HardState),
    /// The log restarts after a snapshot at (`index`, `term`); earlier entries are gone.
    SnapshotBase {
        /// Index of the snapshot.
        index: Index,
        /// Term of the snapshot's last entry.
        term: Term,
    },
    /// Starts the records of one write batch (made durable by one fdatasync). Recovery uses it
    /// to tell a torn last batch from damage to a batch that had been made durable.
    BatchStart {
        /// Bytes of the whole batch, this record included.
        bytes: u64,
    },
}

const KIND_SEGMENT_HEADER: u8 = 1;
const KIND_ENTRY: u8 = 2;
const KIND_HARD_STATE: u8 = 3;
const KIND_SNAPSHOT_BASE: u8 = 4;
const KIND_BATCH_START: u8 = 5;

/// The result of reading one record.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid record and the bytes it took.
    Record(Record, usize),
    /// Nothing more was written here (end of data, or zeros of a preallocated file).
    End,
    /// The record is cut short: its header or its length reach past the end of the data.
    Incomplete(String),
    /// The record is damaged.
    Bad(String),
}

/// Appends the encoding of `record` to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    let kind = match record {
        Record::SegmentHeader {
            sequence,
            first_index,
        } => {
            out.extend_from_slice(&SEGMENT_MAGIC);
            out.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
            out.extend_from_slice(&sequence.to_le_bytes());
            out.extend_from_slice(&first_index.to_le_bytes());
            KIND_SEGMENT_HEADER
        }
        Record::Entry(entry) => {
            out.extend_from_slice(&entry.term.to_le_bytes());
            out.extend_from_slice(&entry.index.to_le_bytes());
            out.push(match entry.kind {
                EntryKind::Normal => 0,
                EntryKind::NoOp => 1,
                EntryKind::ConfChange => 2,
            });
            out.extend_from_slice(entry.data.as_slice());
            KIND_ENTRY
        }
        Record::HardState(hard_state) => {
            out.extend_from_slice(&hard_state.term.to_le_bytes());
            out.extend_from_slice(&hard_state.vote.to_le_bytes());
            out.extend_from_slice(&hard_state.commit.to_le_bytes());
            KIND_HARD_STATE
        }
        Record::SnapshotBase { index, term } => {
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(&term.to_le_bytes());
            KIND_SNAPSHOT_BASE
        }
        Record::BatchStart { bytes } => {
            out.extend_from_slice(&bytes.to_le_bytes());
            KIND_BATCH_START
        }
    };
    let length = (out.len() - start - RECORD_HEADER_BYTES) as u32;
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    out[start + 4] = kind;
    let crc = checksum(&out[start..start + 5], &out[start + RECORD_HEADER_BYTES..]);
    out[start + 5..start + 9].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(length_and_kind: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(length_and_kind), payload)
}

/// Reads the record at the start of `bytes` (the rest of the file from there).
pub fn decode(bytes: &[u8]) -> Decoded {
    let Some(header) = bytes.get(..RECORD_HEADER_BYTES) else {
        if bytes.iter().all(|&b| b == 0) {
            return Decoded::End;
        }
        return Decoded::Incomplete(format!(
            "a record header needs {RECORD_HEADER_BYTES} bytes, only {} remain",
            bytes.len()
        ));
    };
    if header.iter().all(|&b| b == 0) {
        return Decoded::End;
    }
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let kind = header[4];
    let stored_crc = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
    if length > RECORD_PAYLOAD_BYTES_MAX {
        return Decoded::Bad(format!(
            "record length {length} exceeds the limit of {RECORD_PAYLOAD_BYTES_MAX} bytes"
        ));
    }
    if !(KIND_SEGMENT_HEADER..=KIND_BATCH_START).contains(&kind) {
        return Decoded::Bad(format!("unknown record kind {kind}"));
    }
    let remaining = bytes.len() - RECORD_HEADER_BYTES;
    if length > remaining {
        return Decoded::Incomplete(format!(
            "record length {length} points past the end of the file ({remaining} bytes remain)"
        ));
    }
    let payload = &bytes[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + length];
    if checksum(&header[..5], payload) != stored_crc {
        return Decoded::Bad(format!(
            "checksum mismatch in a record of kind {kind} and length {length}"
        ));
    }
    match decode_payload(kind, payload) {
        Ok(record) => Decoded::Record(record, RECORD_HEADER_BYTES + length),
        Err(why) => Decoded::Bad(why),
    }
}

fn decode_payload(kind: u8, payload: &[u8]) -> Result<Record, String> {
    let mut reader = Reader::new(payload);
    let record = match kind {
        KIND_SEGMENT_HEADER => {
            if reader.take(8)? != SEGMENT_MAGIC {
                return Err("segment header has the wrong magic".into());
            }
            let version = u32::from_le_bytes(reader.array()?);
            if version != SEGMENT_VERSION {
                return Err(format!("segment format version {version} is not supported"));
            }
            Record::SegmentHeader {
                sequence: reader.u64()?,
                first_index: reader.u64()?,
            }
        }
        KIND_ENTRY => {
            let term = reader.u64()?;
            let index = reader.u64()?;
            let kind = match reader.take(1)?[0] {
                0 => EntryKind::Normal,
                1 => EntryKind::NoOp,
                2 => EntryKind::ConfChange,
                other => return Err(format!("unknown entry kind {other}")),
            };
            let data = reader.rest();
            if data.len() > ENTRY_BYTES_MAX || index == 0 {
                return Err(format!(
                    "impossible entry (index {index}, {} bytes)",
                    data.len()
                ));
            }
            return Ok(Record::Entry(Entry {
                term,
                index,
                kind,
                data: Payload::from_slice(data),
            }));
        }
        KIND_HARD_STATE => Record::HardState(HardState {
            term: reader.u64()?,
            vote: reader.u64()?,
            commit: reader.u64()?,
        }),
        KIND_SNAPSHOT_BASE => Record::SnapshotBase {
            index: reader.u64()?,
            term: reader.u64()?,
        },
        KIND_BATCH_START => Record::BatchStart {
            bytes: reader.u64()?,
        },
        other => return Err(format!("unknown record kind {other}")),
    };
    if !reader.bytes.is_empty() {
        return Err(format!(
            "{} unexpected bytes after the record",
            reader.bytes.len()
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record::SegmentHeader {
                sequence: 3,
                first_index: 42,
            },
            Record::Entry(Entry {
                term: 7,
                index: 42,
                kind: EntryKind::Normal,
                data: Payload::from_slice(b"hello"),
            }),
            Record::HardState(HardState {
                term: 7,
                vote: 2,
                commit: 41,
            }),
            Record::SnapshotBase { index: 40, term: 6 },
            Record::BatchStart { bytes: 123 },
        ]
    }

    #[test]
    fn records_round_trip_back_to_back() {
        let mut bytes = Vec::new();
        for record in sample() {
            encode(&record, &mut bytes);
        }
        bytes.extend_from_slice(&[0u8; 32]); // preallocated tail
        let mut offset = 0;
        for record in sample() {
            match decode(&bytes[offset..]) {
                Decoded::Record(decoded, used) => {
                    assert_eq!(decoded, record);
                    offset += used;
                }
                other => panic!("expected a record, got {other:?}"),
            }
        }
        assert_eq!(decode(&bytes[offset..]), Decoded::End);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut bytes = Vec::new();
        encode(&sample()[1], &mut bytes);
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(decode(&damaged), Decoded::Record(..)),
                "flipping bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn cut_records_are_incomplete_and_huge_lengths_are_refused() {
        let mut bytes = Vec::new();
        encode(&sample()[1], &mut bytes);
        for cut in 1..bytes.len() {
            assert!(
                matches!(decode(&bytes[..cut]), Decoded::Incomplete(_)),
                "cut at {cut}"
            );
        }
        let mut huge = bytes.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Decoded::Bad(_)));
    }
}
