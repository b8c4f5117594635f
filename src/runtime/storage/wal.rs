//! The segmented write-ahead log: appends with group commit, segment preallocation and
//! rotation, recovery with torn-tail repair and corruption detection.
//!
//! Segment files are named `<sequence>-<first index>.wal`, preallocated to
//! [`WAL_SEGMENT_BYTES`](crate::limits::WAL_SEGMENT_BYTES) by writing zeros, and written in
//! place, so the unwritten part reads as zeros. (Zeros are written rather than `fallocate`d:
//! the first write into an fallocated extent makes every fdatasync also commit a metadata
//! change, which costs more than the data itself. The next segment is zero-filled on a helper
//! thread while the active one is half full, so rotation does not stall appends.) Every segment begins with a header record, the hard state and the
//! snapshot base in force when it was created, so older segments can be deleted without losing
//! either. A new segment is prepared under a temporary name, fsynced, renamed into place, and
//! the directory fsynced.
//!
//! Every write batch starts with a `BatchStart` record and is made durable by one fdatasync
//! before anything in it is acknowledged. Recovery reads every segment in order. A damaged,
//! cut-off or missing (zeroed) record is a *torn tail* — the last batch was interrupted by a
//! crash, and the disk may have kept any subset of its sectors — only if it is in the last
//! segment and no later batch starts after it; the tail is then zeroed and the log continues
//! from there. Damage anywhere else is *corruption*: a later batch proves the damaged one had
//! been made durable. Recovery then fails with the file and byte offset, and the node does not
//! start.
//!
//! What no log can tell apart: a bit flipped, after the fact, inside the very last batch looks
//! exactly like that batch being torn, and is repaired as such (etcd and ZooKeeper behave the
//! same way). Everything before the last batch is protected.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::record::{self, Decoded, Record};
use crate::error::{Error, Result};
use crate::limits::{WAL_SEGMENTS_MAX, WAL_SEGMENT_FILE_BYTES_MAX};
use crate::types::{Entry, HardState, Index, Term};

const SUFFIX: &str = ".wal";

/// One segment file.
#[derive(Clone, Debug)]
struct Segment {
    sequence: u64,
    first_index: Index,
    path: PathBuf,
}

/// What recovery found in the log.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The latest hard state.
    pub hard_state: HardState,
    /// The log starts after this (index, term): a snapshot covers everything up to it.
    pub base: (Index, Term),
    /// Entries after `base`, in order.
    pub entries: Vec<Entry>,
    /// Torn tails found and repaired.
    pub torn_tails_repaired: u64,
}

/// The write-ahead log of one node.
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    active: File,
    offset: u64,
    segment_bytes: u64,
    buffer: Vec<u8>,
    /// Set by the first failed write or sync; the log refuses everything after it, since a
    /// failed fsync may have dropped data the kernel no longer reports (never retry it).
    failed: Option<String>,
    /// The next segment, being zero-filled under a temporary name on a helper thread.
    preparing: Option<std::thread::JoinHandle<std::io::Result<File>>>,
    /// Fault injection: the next write fails with this error, as a failing disk would.
    injected_failure: Option<std::io::ErrorKind>,
}

/// Temporary name of the segment being prepared.
const PREPARED_NAME: &str = "next-segment.tmp";

impl Wal {
    /// Opens (recovering) or creates the log in `dir`. `floor` is the snapshot the node holds:
    /// entries at or below it are not kept.
    pub fn open(dir: &Path, segment_bytes: u64, floor: (Index, Term)) -> Result<(Wal, Recovered)> {
        let mut segments = list_segments(dir)?;
        let mut recovered = Recovered {
            base: floor,
            ..Recovered::default()
        };
        let mut end_offset = 0;
        for (position, segment) in segments.iter().enumerate() {
            let last = position + 1 == segments.len();
            end_offset = replay_segment(segment, last, &mut recovered)?;
        }
        let active = match segments.last() {
            Some(segment) => OpenOptions::new()
                .read(true)
                .write(true)
                .open(&segment.path)
                .map_err(|e| Error::io(format!("opening {}", segment.path.display()), &e))?,
            None => {
                let first_index = recovered.base.0 + 1;
                let (segment, file, offset) =
                    create_segment(dir, 1, first_index, segment_bytes, &recovered, None)?;
                segments.push(segment);
                end_offset = offset;
                file
            }
        };
        let wal = Wal {
            dir: dir.to_path_buf(),
            segments,
            active,
            offset: end_offset,
            segment_bytes,
            buffer: Vec::new(),
            failed: None,
            preparing: None,
            injected_failure: None,
        };
        Ok((wal, recovered))
    }

    /// Appends `entries` and, if given, the hard state, then makes them durable with a single
    /// fdatasync (group commit). `current` is the state a new segment must start with.
    pub fn append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<HardState>,
        current: &SegmentStart,
    ) -> Result<()> {
        self.check_healthy()?;
        self.start_batch();
        for entry in entries {
            record::encode(&Record::Entry(entry.clone()), &mut self.buffer);
        }
        if let Some(hard_state) = hard_state {
            record::encode(&Record::HardState(hard_state), &mut self.buffer);
        }
        self.write_buffer(entries.first().map(|e| e.index), current)
    }

    /// Records that the log now starts after a snapshot at (`index`, `term`), together with
    /// the hard state that goes with it, durably.
    pub fn append_snapshot_base(
        &mut self,
        index: Index,
        term: Term,
        hard_state: HardState,
        current: &SegmentStart,
    ) -> Result<()> {
        self.check_healthy()?;
        self.start_batch();
        record::encode(&Record::SnapshotBase { index, term }, &mut self.buffer);
        record::encode(&Record::HardState(hard_state), &mut self.buffer);
        self.write_buffer(None, current)
    }

    /// Clears the buffer and opens it with a `BatchStart` whose size is filled in later.
    fn start_batch(&mut self) {
        self.buffer.clear();
        record::encode(&Record::BatchStart { bytes: 0 }, &mut self.buffer);
    }

    /// Writes the batch's size into its `BatchStart` (re-encoding it keeps its checksum right).
    fn seal_batch(&mut self) {
        let mut start = Vec::with_capacity(record::RECORD_HEADER_BYTES + 8);
        let bytes = self.buffer.len() as u64;
        record::encode(&Record::BatchStart { bytes }, &mut start);
        self.buffer[..start.len()].copy_from_slice(&start);
    }

    fn write_buffer(&mut self, first_index: Option<Index>, current: &SegmentStart) -> Result<()> {
        self.seal_batch();
        if self.offset + self.buffer.len() as u64 > self.segment_bytes {
            let first = first_index.unwrap_or(current.next_index);
            self.rotate(first, current)?;
        }
        let result = match self.injected_failure.take() {
            // Half the batch reaches the file before the error, as a disk failing mid-write
            // would leave it.
            Some(kind) => self
                .active
                .write_all_at(&self.buffer[..self.buffer.len() / 2], self.offset)
                .and_then(|()| Err(std::io::Error::from(kind))),
            None => self
                .active
                .write_all_at(&self.buffer, self.offset)
                .and_then(|()| self.active.sync_data()),
        };
        match result {
            Ok(()) => {
                self.offset += self.buffer.len() as u64;
                if self.preparing.is_none() && self.offset > self.segment_bytes / 2 {
                    let path = self.dir.join(PREPARED_NAME);
                    let bytes = self.segment_bytes;
                    self.preparing = Some(std::thread::spawn(move || zero_filled(&path, bytes)));
                }
                Ok(())
            }
            Err(error) => Err(self.fail(format!("writing the WAL: {error}"))),
        }
    }

    fn rotate(&mut self, first_index: Index, current: &SegmentStart) -> Result<()> {
        if self.segments.len() >= WAL_SEGMENTS_MAX {
            return Err(self.fail(format!(
                "the WAL reached {WAL_SEGMENTS_MAX} segments; compaction is not keeping up"
            )));
        }
        let sequence = self.segments.last().map_or(0, |s| s.sequence) + 1;
        let recovered = Recovered {
            hard_state: current.hard_state,
            base: current.base,
            ..Recovered::default()
        };
        // A failed preparation is retried in the foreground by `create_segment`.
        let prepared = self
            .preparing
            .take()
            .and_then(|handle| handle.join().ok())
            .and_then(|result| result.ok());
        match create_segment(
            &self.dir,
            sequence,
            first_index,
            self.segment_bytes,
            &recovered,
            prepared,
        ) {
            Ok((segment, file, offset)) => {
                self.segments.push(segment);
                self.active = file;
                self.offset = offset;
                Ok(())
            }
            Err(error) => Err(self.fail(error.to_string())),
        }
    }

    /// Deletes segments whose entries are all at or below `index` (a snapshot covers them).
    /// The active segment is never deleted.
    pub fn remove_segments_through(&mut self, index: Index) -> Result<()> {
        let mut removable = 0;
        for pair in self.segments.windows(2) {
            if pair[1].first_index <= index + 1 {
                removable += 1;
            } else {
                break;
            }
        }
        if removable == 0 {
            return Ok(());
        }
        for segment in self.segments.drain(..removable) {
            fs::remove_file(&segment.path)
                .map_err(|e| Error::io(format!("removing {}", segment.path.display()), &e))?;
        }
        super::sync_dir(&self.dir)
            .map_err(|e| Error::io(format!("syncing {}", self.dir.display()), &e))
    }

    /// Where the durable data ends: the active segment's file and the offset after its last
    /// record (for tests that simulate losing what was written after it).
    pub fn end_position(&self) -> (PathBuf, u64) {
        let path = self
            .segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_default();
        (path, self.offset)
    }

    /// Fault injection for tests: the next write fails with `kind` (EIO, ENOSPC…) after
    /// writing half its bytes; from then on the log refuses every write.
    pub fn inject_write_failure(&mut self, kind: std::io::ErrorKind) {
        self.injected_failure = Some(kind);
    }

    /// Segment files currently held.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn check_healthy(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(Error::StorageFailed(why.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, why: String) -> Error {
        self.failed.get_or_insert(why.clone());
        Error::StorageFailed(why)
    }
}

/// What a new segment starts with, so that older segments can be deleted.
#[derive(Clone, Copy, Debug, Default)]
pub struct SegmentStart {
    /// The hard state in force.
    pub hard_state: HardState,
    /// The snapshot base in force.
    pub base: (Index, Term),
    /// The index the next entry will have.
    pub next_index: Index,
}

fn segment_name(sequence: u64, first_index: Index) -> String {
    format!("{sequence:020}-{first_index:020}{SUFFIX}")
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let mut segments = Vec::new();
    // Only called when the log is opened: leftover temporary files are from before a crash.
    for (stem, path) in super::list_files(dir, SUFFIX, WAL_SEGMENTS_MAX, true)? {
        let mut parts = stem.split('-').map(|p| p.parse::<u64>());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Ok(sequence)), Some(Ok(first_index)), None) => segments.push(Segment {
                sequence,
                first_index,
                path,
            }),
            _ => {
                return Err(Error::Corruption {
                    file: path.display().to_string(),
                    offset: 0,
                    detail: "a WAL file name that is not <sequence>-<first index>.wal".into(),
                })
            }
        }
    }
    segments.sort_by_key(|s| s.sequence);
    for pair in segments.windows(2) {
        if pair[1].sequence != pair[0].sequence + 1 {
            return Err(Error::Corruption {
                file: pair[1].path.display().to_string(),
                offset: 0,
                detail: format!("segment {} is missing before it", pair[0].sequence + 1),
            });
        }
    }
    Ok(segments)
}

/// Creates a segment durably: temp file, preallocate, header records, fsync, rename, dir fsync.
fn create_segment(
    dir: &Path,
    sequence: u64,
    first_index: Index,
    segment_bytes: u64,
    state: &Recovered,
    prepared: Option<File>,
) -> Result<(Segment, File, u64)> {
    let name = segment_name(sequence, first_index);
    let path = dir.join(&name);
    let temp = dir.join(PREPARED_NAME);
    let mut header = Vec::new();
    record::encode(
        &Record::SegmentHeader {
            sequence,
            first_index,
        },
        &mut header,
    );
    record::encode(&Record::HardState(state.hard_state), &mut header);
    record::encode(
        &Record::SnapshotBase {
            index: state.base.0,
            term: state.base.1,
        },
        &mut header,
    );
    let create = || -> std::io::Result<File> {
        let file = match prepared {
            Some(file) => file,
            None => zero_filled(&temp, segment_bytes)?,
        };
        file.write_all_at(&header, 0)?;
        file.sync_data()?;
        fs::rename(&temp, &path)?;
        super::sync_dir(dir)?;
        Ok(file)
    };
    let file =
        create().map_err(|e| Error::io(format!("creating WAL segment {}", path.display()), &e))?;
    Ok((
        Segment {
            sequence,
            first_index,
            path,
        },
        file,
        header.len() as u64,
    ))
}

/// Creates `path` holding `bytes` zeros, durably (data and size).
fn zero_filled(path: &Path, bytes: u64) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600) // see `data_dir::create_private_file`
        .open(path)?;
    let zeros = vec![0u8; 1 << 20];
    let mut offset = 0;
    // Bounded by `bytes` / 1 MiB iterations.
    while offset < bytes {
        let length = zeros.len().min((bytes - offset) as usize);
        file.write_all_at(&zeros[..length], offset)?;
        offset += length as u64;
    }
    file.sync_all()?;
    Ok(file)
}

/// Replays one segment into `recovered`; returns the offset where its data ends.
fn replay_segment(segment: &Segment, last: bool, recovered: &mut Recovered) -> Result<u64> {
    let path = &segment.path;
    let corruption = |offset: u64, detail: String| Error::Corruption {
        file: path.display().to_string(),
        offset,
        detail,
    };
    let size = fs::metadata(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), &e))?
        .len();
    if size > WAL_SEGMENT_FILE_BYTES_MAX {
        return Err(corruption(
            0,
            format!("segment of {size} bytes exceeds the limit"),
        ));
    }
    let bytes = fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), &e))?;
    let mut offset = 0usize;
    let mut first = true;
    // Bounded: every iteration consumes at least one record header.
    loop {
        match record::decode(&bytes[offset..]) {
            Decoded::Record(record, used) => {
                if first {
                    check_header(&record, segment).map_err(|why| corruption(0, why))?;
                    first = false;
                } else {
                    apply_record(record, recovered)
                        .map_err(|why| corruption(offset as u64, why))?;
                }
                offset += used;
            }
            Decoded::End if first => {
                return Err(corruption(
                    0,
                    "the segment header is missing (zeroed)".into(),
                ));
            }
            Decoded::End if has_batch_after(&bytes, offset) => {
                return Err(corruption(
                    offset as u64,
                    "zeroed records followed by later, durable batches".into(),
                ));
            }
            Decoded::End => {
                if last && bytes[offset..].iter().any(|&b| b != 0) {
                    // Sectors of the interrupted last batch landed past a hole.
                    repair_torn_tail(path, offset as u64, bytes.len() as u64)?;
                    recovered.torn_tails_repaired += 1;
                }
                return Ok(offset as u64);
            }
            Decoded::Incomplete(why) | Decoded::Bad(why) => {
                if !last || first || has_batch_after(&bytes, offset) {
                    return Err(corruption(offset as u64, why));
                }
                repair_torn_tail(path, offset as u64, bytes.len() as u64)?;
                recovered.torn_tails_repaired += 1;
                return Ok(offset as u64);
            }
        }
    }
}

fn check_header(record: &Record, segment: &Segment) -> std::result::Result<(), String> {
    match record {
        Record::SegmentHeader {
            sequence,
            first_index,
        } if *sequence == segment.sequence && *first_index == segment.first_index => Ok(()),
        Record::SegmentHeader {
            sequence,
            first_index,
        } => Err(format!(
            "segment header says sequence {sequence} and first index {first_index}, the file \
             name says {} and {}",
            segment.sequence, segment.first_index
        )),
        _ => Err("the first record is not a segment header".into()),
    }
}

fn apply_record(record: Record, recovered: &mut Recovered) -> std::result::Result<(), String> {
    match record {
        Record::Entry(entry) => {
            let (base, _) = recovered.base;
            if entry.index <= base {
                return Ok(()); // covered by the snapshot
            }
            let next = base + recovered.entries.len() as Index + 1;
            if entry.index > next {
                return Err(format!(
                    "entry {} follows entry {}: the log has a gap",
                    entry.index,
                    next - 1
                ));
            }
            // An entry at or before the end replaces the conflicting suffix.
            recovered
                .entries
                .truncate((entry.index - base - 1) as usize);
            recovered.entries.push(entry);
        }
        Record::HardState(hard_state) => recovered.hard_state = hard_state,
        Record::SnapshotBase { index, term } => {
            let (base, _) = recovered.base;
            if index > base {
                let keep_from = (index - base) as usize;
                let matches = recovered
                    .entries
                    .get(keep_from - 1)
                    .is_some_and(|e| e.term == term);
                if matches {
                    recovered.entries.drain(..keep_from);
                } else {
                    recovered.entries.clear();
                }
                recovered.base = (index, term);
            }
        }
        Record::BatchStart { .. } => {}
        Record::SegmentHeader { .. } => {
            return Err("a segment header in the middle of a segment".into())
        }
    }
    Ok(())
}

/// Whether a valid `BatchStart` begins anywhere after `offset`. A crash can only damage the
/// last batch, so a later batch proves that the damage is not a torn tail. (Records of the
/// damaged batch itself prove nothing: the disk may have kept its sectors in any order.)
fn has_batch_after(bytes: &[u8], offset: usize) -> bool {
    // Bounded by the segment's size; runs only when recovery meets damage or a hole.
    (offset + 1..bytes.len().saturating_sub(record::RECORD_HEADER_BYTES)).any(|start| {
        matches!(
            record::decode(&bytes[start..]),
            Decoded::Record(Record::BatchStart { .. }, _)
        )
    })
}

/// Zeroes the file from `offset` on, so the torn record can never be read again.
fn repair_torn_tail(path: &Path, offset: u64, size: u64) -> Result<()> {
    let repair = || -> std::io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(offset)?;
        file.set_len(size.max(offset))?; // restore the preallocated length, zero-filled
        file.sync_all()
    };
    repair().map_err(|e| Error::io(format!("repairing the torn tail of {}", path.display()), &e))
}
