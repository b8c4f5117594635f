//! The write-ahead log on real files: durability across reopen, rotation and compaction,
//! torn-tail repair, and one test per class of corruption showing the operator's message.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use accord::core::raft::Storage;
use accord::error::Error;
use accord::runtime::storage::{StorageOptions, WalStorage};
use accord::types::{Entry, EntryKind, HardState, Payload, Snapshot, SnapshotMeta};

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("accord-wal-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn options(segment_bytes: u64) -> StorageOptions {
    StorageOptions {
        segment_bytes,
        ..StorageOptions::new(&[1, 2, 3])
    }
}

fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: Payload::from_slice(data),
    }
}

fn open(path: &Path, segment_bytes: u64) -> accord::Result<WalStorage> {
    WalStorage::open(path, &options(segment_bytes)).map(|(storage, _)| storage)
}

fn all_entries(storage: &WalStorage) -> Vec<Entry> {
    let mut out = Vec::new();
    storage
        .entries(
            storage.first_index(),
            storage.last_index() + 1,
            usize::MAX,
            &mut out,
        )
        .unwrap();
    out
}

fn segments(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(path.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

/// Writes 30 entries (10 per batch) with hard states into small segments; returns the path.
fn populated(name: &str) -> PathBuf {
    let path = dir(name);
    let mut storage = open(&path, 1024).unwrap();
    for batch in 0..3u64 {
        let entries: Vec<Entry> = (1..=10)
            .map(|i| entry(batch * 10 + i, 1, &[batch as u8; 40]))
            .collect();
        let hard_state = HardState {
            term: 1,
            vote: 1,
            commit: batch * 10,
        };
        storage.append(&entries, Some(hard_state)).unwrap();
    }
    path
}

#[test]
fn appended_entries_and_hard_state_survive_reopen_across_rotated_segments() {
    let path = populated("reopen");
    assert!(
        segments(&path).len() >= 3,
        "small segments should have rotated"
    );
    let storage = open(&path, 1024).unwrap();
    assert_eq!(storage.last_index(), 30);
    assert_eq!(storage.hard_state().commit, 20);
    let entries = all_entries(&storage);
    assert_eq!(entries.len(), 30);
    assert_eq!(entries[25].data.as_slice(), &[2u8; 40]);
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}

#[test]
fn an_overwritten_suffix_stays_overwritten_after_reopen() {
    let path = dir("overwrite");
    let mut storage = open(&path, 1 << 20).unwrap();
    let first: Vec<Entry> = (1..=5).map(|i| entry(i, 1, b"old")).collect();
    storage.append(&first, None).unwrap();
    storage.append(&[entry(3, 2, b"new")], None).unwrap();
    drop(storage);
    let storage = open(&path, 1 << 20).unwrap();
    assert_eq!(storage.last_index(), 3);
    assert_eq!(storage.term(3).unwrap(), 2);
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}

#[test]
fn snapshots_and_compaction_survive_reopen_and_delete_old_segments() {
    let path = populated("compact");
    let mut storage = open(&path, 1024).unwrap();
    let before = storage.segment_count();
    storage.create_snapshot(25, b"state at 25").unwrap();
    storage.compact(20).unwrap();
    assert!(storage.segment_count() < before, "no segment was deleted");
    drop(storage);
    let storage = open(&path, 1024).unwrap();
    let snapshot = storage.snapshot().unwrap();
    assert_eq!(snapshot.meta.index, 25);
    assert_eq!(snapshot.data.as_slice(), b"state at 25");
    assert_eq!((storage.first_index(), storage.last_index()), (26, 30));
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}

#[test]
fn a_snapshot_from_the_leader_replaces_the_log_durably() {
    let path = populated("install");
    let mut storage = open(&path, 1024).unwrap();
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: 100,
            term: 4,
            conf: accord::types::ConfState {
                voters_outgoing: Vec::new(),
                voters: vec![1, 2, 3],
                learners: Vec::new(),
            },
        },
        data: Payload::from_slice(b"leader state"),
    };
    storage.apply_snapshot(snapshot).unwrap();
    storage.append(&[entry(101, 4, b"after")], None).unwrap();
    drop(storage);
    let storage = open(&path, 1024).unwrap();
    assert_eq!((storage.first_index(), storage.last_index()), (101, 101));
    assert_eq!(storage.term(100).unwrap(), 4);
    assert_eq!(storage.hard_state().commit, 100);
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}

#[test]
fn a_torn_last_write_is_cut_off_and_the_log_goes_on() {
    let path = populated("torn");
    let last = segments(&path).pop().unwrap();
    let data = fs::read(&last).unwrap();
    let end = data.iter().rposition(|&b| b != 0).unwrap() + 1;
    // Cut the last record in half: the crash happened during its write.
    let file = fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.write_all_at(&[0u8; 30], (end - 30) as u64).unwrap();
    drop(file);
    let (mut storage, report) = WalStorage::open(&path, &options(1024)).unwrap();
    assert_eq!(report.torn_tails_repaired, 1);
    assert!(storage.last_index() < 30 || storage.hard_state().commit < 20);
    let next = storage.last_index() + 1;
    storage
        .append(&[entry(next, 1, b"after repair")], None)
        .unwrap();
    drop(storage);
    let (storage, report) = WalStorage::open(&path, &options(1024)).unwrap();
    assert_eq!(report.torn_tails_repaired, 0, "the repair did not stick");
    assert_eq!(storage.last_index(), next);
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}

/// Damages the data directory with `damage`, reopens it, and returns the operator's message.
fn corruption_message(name: &str, damage: impl FnOnce(&[PathBuf])) -> String {
    let path = populated(name);
    damage(&segments(&path));
    let error = match open(&path, 1024) {
        Err(error) => error,
        Ok(_) => panic!("{name}: damaged log opened without complaint"),
    };
    assert!(
        matches!(error, Error::Corruption { .. }),
        "{name}: expected corruption, got {error:?}"
    );
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
    let message = error.to_string();
    println!("{name}: {message}");
    message
}

#[test]
fn a_flipped_bit_mid_log_is_corruption_naming_file_and_offset() {
    let message = corruption_message("bitflip", |segments| {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&segments[0])
            .unwrap();
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, 200).unwrap();
        file.write_all_at(&[byte[0] ^ 0x04], 200).unwrap();
    });
    assert!(message.contains("checksum mismatch"), "{message}");
    assert!(message.contains("0000000001-") || message.contains("00000000000000000001-"));
    assert!(message.contains("move its data directory aside"));
}

#[test]
fn a_truncated_segment_before_the_last_is_corruption() {
    let message = corruption_message("truncated", |segments| {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&segments[0])
            .unwrap();
        file.set_len(300).unwrap();
    });
    assert!(
        message.contains("past the end") || message.contains("only"),
        "{message}"
    );
}

#[test]
fn a_zeroed_record_header_mid_log_is_corruption() {
    let message = corruption_message("zeroed", |segments| {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&segments[0])
            .unwrap();
        file.write_all_at(&[0u8; 9], 0).unwrap();
    });
    assert!(message.contains("segment header is missing"), "{message}");
}

#[test]
fn a_length_pointing_past_the_end_mid_log_is_corruption() {
    let message = corruption_message("length", |segments| {
        let data = fs::read(&segments[1]).unwrap();
        // The second record of the segment starts after the header record.
        let header_len = 9 + u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&segments[1])
            .unwrap();
        file.write_all_at(&(data.len() as u32).to_le_bytes(), header_len as u64)
            .unwrap();
    });
    assert!(message.contains("points past the end"), "{message}");
}

/// One segment holding five one-entry batches; returns the path and the batches' offsets.
fn five_batches(name: &str) -> PathBuf {
    let path = dir(name);
    let mut storage = open(&path, 1 << 20).unwrap();
    for index in 1..=5 {
        storage
            .append(&[entry(index, 1, b"payload")], None)
            .unwrap();
    }
    path
}

#[test]
fn damage_to_a_batch_followed_by_later_batches_is_corruption_not_a_torn_tail() {
    let path = five_batches("last-segment");
    let segment = segments(&path).pop().unwrap();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment)
        .unwrap();
    let mut byte = [0u8; 1];
    // Inside the entry record of the second batch (header records take ~90 bytes, a batch ~63).
    file.read_exact_at(&mut byte, 180).unwrap();
    file.write_all_at(&[byte[0] ^ 0x80], 180).unwrap();
    drop(file);
    match open(&path, 1 << 20) {
        Err(Error::Corruption { offset, .. }) => assert!(offset > 0),
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("damage before later durable batches was accepted"),
    }
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}

#[test]
fn damage_inside_the_last_batch_with_its_later_sectors_written_is_a_torn_tail() {
    let path = five_batches("reordered-sectors");
    let segment = segments(&path).pop().unwrap();
    let data = fs::read(&segment).unwrap();
    let end = data.iter().rposition(|&b| b != 0).unwrap() + 1;
    // The last batch's first bytes never reached the disk, its last ones did.
    let file = fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.write_all_at(&[0u8; 12], (end - 40) as u64).unwrap();
    drop(file);
    let (storage, report) = WalStorage::open(&path, &options(1 << 20)).unwrap();
    assert_eq!(report.torn_tails_repaired, 1);
    assert_eq!(
        storage.last_index(),
        4,
        "only the torn last batch is dropped"
    );
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}

#[test]
fn a_second_process_on_the_same_directory_is_refused() {
    let path = dir("locked");
    let _held = open(&path, 1 << 20).unwrap();
    match open(&path, 1 << 20) {
        Err(error @ Error::DataDirLocked { .. }) => {
            assert!(error.to_string().contains(&std::process::id().to_string()))
        }
        Err(other) => panic!("expected a lock error, got {other}"),
        Ok(_) => panic!("opened a locked directory"),
    }
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}

#[test]
fn a_failed_write_is_never_acknowledged_and_the_log_refuses_everything_after_it() {
    let path = dir("eio");
    let mut storage = open(&path, 1 << 20).unwrap();
    storage.append(&[entry(1, 1, b"durable")], None).unwrap();
    storage.inject_write_failure(std::io::ErrorKind::StorageFull);
    let failed = storage.append(&[entry(2, 1, b"lost")], None);
    assert!(matches!(failed, Err(Error::StorageFailed(_))), "{failed:?}");
    assert_eq!(
        storage.last_index(),
        1,
        "a failed write reached the in-memory log"
    );
    // Sticky: a failed fsync may have dropped data the kernel no longer reports.
    let again = storage.append(&[entry(2, 1, b"retry")], None);
    assert!(matches!(again, Err(Error::StorageFailed(_))));
    drop(storage);
    let (storage, report) = WalStorage::open(&path, &options(1 << 20)).unwrap();
    assert_eq!(storage.last_index(), 1);
    assert_eq!(
        report.torn_tails_repaired, 1,
        "the half-written batch is a torn tail"
    );
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}

#[test]
fn a_zeroed_batch_followed_by_durable_batches_is_corruption() {
    let path = five_batches("zeroed-batch");
    let segment = segments(&path).pop().unwrap();
    let data = fs::read(&segment).unwrap();
    // Walk the records to the second batch's first record (a BatchStart).
    let mut offset = 0usize;
    let mut batch_starts = Vec::new();
    while offset + 9 <= data.len() && data[offset..offset + 9].iter().any(|&b| b != 0) {
        if data[offset + 4] == 5 {
            batch_starts.push(offset);
        }
        offset += 9 + u32::from_le_bytes(data[offset..offset + 4].try_into().unwrap()) as usize;
    }
    assert!(batch_starts.len() >= 3);
    let file = fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.write_all_at(&[0u8; 9], batch_starts[1] as u64)
        .unwrap();
    drop(file);
    let message = match open(&path, 1 << 20) {
        Err(error @ Error::Corruption { .. }) => error.to_string(),
        other => panic!("expected corruption, got {:?}", other.err()),
    };
    println!("zeroed-batch: {message}");
    assert!(message.contains("zeroed records followed by later, durable batches"));
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}

#[test]
fn a_streamed_snapshot_is_checked_for_its_announced_length() {
    let path = populated("streamed");
    let mut storage = open(&path, 1024).unwrap();
    let wrong = storage.start_snapshot_streamed(20, 10, |w| w.write_all(b"short"));
    assert!(wrong.is_err(), "a short stream was accepted");
    assert!(storage
        .start_snapshot_streamed(20, 5, |w| w.write_all(b"state"))
        .unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !storage.poll_snapshot().unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the snapshot never completed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(storage);
    let storage = open(&path, 1024).unwrap();
    assert_eq!(storage.snapshot().unwrap().data.as_slice(), b"state");
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}

#[test]
fn a_snapshot_made_durable_in_the_background_is_recorded_and_compacts_the_log() {
    let path = populated("background");
    let mut storage = open(&path, 1024).unwrap();
    let before = storage.segment_count();
    assert!(storage
        .start_snapshot_streamed(28, 5, |w| w.write_all(b"state"))
        .unwrap());
    assert!(
        !storage
            .start_snapshot_streamed(29, 1, |w| w.write_all(b"x"))
            .unwrap(),
        "a second snapshot started while one was in flight"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !storage.poll_snapshot().unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the snapshot never completed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(storage.snapshot().unwrap().meta.index, 28);
    assert!(storage.segment_count() <= before);
    drop(storage);
    let storage = open(&path, 1024).unwrap();
    assert_eq!(storage.snapshot().unwrap().data.as_slice(), b"state");
    // Best effort: the WAL may still be preparing its next segment on its helper thread.
    let _ = fs::remove_dir_all(&path);
}
