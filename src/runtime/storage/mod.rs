//! Durable storage on real files: the write-ahead log, snapshot files, and [`WalStorage`], the
//! implementation of the consensus core's [`Storage`] trait over them.
//!
//! Layout of a data directory:
//!
//! ```text
//! <dir>/LOCK                       flock-ed by the process using the directory; holds its pid
//! <dir>/wal/<seq>-<first>.wal      WAL segments (see `wal`)
//! <dir>/snap/<index>-<term>.snap   snapshots (see `snapshot_file`); the newest two are kept
//! ```
//!
//! The log is also kept in memory (entries since the last compaction), so reads never touch
//! the disk; writes go to the WAL first and are acknowledged only once fdatasync returned.
//! Any write or sync failure is sticky: the storage refuses all later writes, so the node can
//! never acknowledge something that is not durable.

pub mod data_dir;
pub mod record;
pub mod snapshot_file;
pub mod wal;

use std::path::{Path, PathBuf};

use crate::core::raft::{MemStorage, Storage};
use crate::error::{Error, Result};
use crate::limits::{COMPACTION_MARGIN_ENTRIES_DEFAULT, SNAPSHOT_FILES_KEPT, WAL_SEGMENT_BYTES};
use crate::types::{ConfState, Entry, HardState, Index, Payload, Snapshot, SnapshotMeta, Term};
use data_dir::DataDir;
use wal::{SegmentStart, Wal};

/// How to open a data directory.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// The voters of a new cluster (used when the directory holds no snapshot). Empty to open
    /// a directory only to inspect it: then nothing is written to it.
    pub voters: Vec<u64>,
    /// The membership a new member starts from, when it joins a running cluster (instead of
    /// `voters`), and the context that comes with it (the members' addresses).
    pub join_conf: Option<(ConfState, Vec<u8>)>,
    /// Segment preallocation size (tests use small segments to exercise rotation).
    pub segment_bytes: u64,
    /// Entries kept behind a snapshot by [`WalStorage::snapshot_and_compact`], for followers
    /// that are only a little behind.
    pub compaction_margin_entries: u64,
}

impl StorageOptions {
    /// Defaults for a node of a cluster whose voters are `voters`.
    pub fn new(voters: &[u64]) -> StorageOptions {
        StorageOptions {
            voters: voters.to_vec(),
            join_conf: None,
            segment_bytes: WAL_SEGMENT_BYTES,
            compaction_margin_entries: COMPACTION_MARGIN_ENTRIES_DEFAULT,
        }
    }
}

/// What opening a data directory found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Entries recovered after the snapshot.
    pub entries: u64,
    /// Index of the snapshot recovered (0 when none).
    pub snapshot_index: Index,
    /// Torn tails (interrupted last writes) found and cut off.
    pub torn_tails_repaired: u64,
}

/// The consensus core's storage, durable in a data directory.
pub struct WalStorage {
    dir: DataDir,
    snap_dir: PathBuf,
    wal: Wal,
    /// The log, hard state and snapshot metadata; snapshot data lives only on disk.
    memory: MemStorage,
    compaction_margin_entries: u64,
    /// The newest snapshot's data, loaded on demand (to restore the state machine, or while
    /// the leader streams it to a follower) and dropped at the next compaction.
    snapshot_cache: std::cell::RefCell<Option<Snapshot>>,
    /// The hard state last written to the WAL (the in-memory one may have a newer commit).
    durable_hard_state: HardState,
    /// A snapshot written to its temporary file, being made durable on a helper thread.
    snapshot_in_flight: Option<(SnapshotMeta, std::thread::JoinHandle<std::io::Result<()>>)>,
    /// The context recorded with the bootstrap membership (the addresses a joining member
    /// was given; empty for a member of a new cluster).
    bootstrap_context: Vec<u8>,
}

impl WalStorage {
    /// Opens `path` (creating it, mode 0700), locks it, loads the newest snapshot and replays
    /// the WAL. Corruption fails with [`Error::Corruption`] naming the file and byte offset.
    pub fn open(path: &Path, options: &StorageOptions) -> Result<(WalStorage, RecoveryReport)> {
        let dir = DataDir::open(path)?;
        let snap_dir = dir.subdir("snap")?;
        let wal_dir = dir.subdir("wal")?;
        let snapshot = match snapshot_file::list(&snap_dir, true)?.last() {
            Some((_, newest)) => snapshot_file::load(newest)?,
            None => Snapshot::default(),
        };
        let floor = (snapshot.meta.index, snapshot.meta.term);
        let (wal, recovered) = Wal::open(&wal_dir, options.segment_bytes, floor)?;
        if recovered.base.0 > snapshot.meta.index {
            return Err(Error::Corruption {
                file: wal_dir.display().to_string(),
                offset: 0,
                detail: format!(
                    "the log starts after a snapshot at {} but the newest snapshot file is at {}",
                    recovered.base.0, snapshot.meta.index
                ),
            });
        }
        let fresh = snapshot.meta.index == 0
            && recovered.entries.is_empty()
            && recovered.hard_state == HardState::default();
        let (bootstrap, bootstrap_context) = bootstrap_conf(dir.path(), options, fresh)?;
        let conf = if snapshot.meta.index > 0 {
            snapshot.meta.conf.clone()
        } else {
            bootstrap
        };
        let report = RecoveryReport {
            entries: recovered.entries.len() as u64,
            snapshot_index: snapshot.meta.index,
            torn_tails_repaired: recovered.torn_tails_repaired,
        };
        let memory = MemStorage::from_parts(
            recovered.hard_state,
            conf,
            metadata_only(&snapshot),
            recovered.base,
            recovered.entries,
        );
        let storage = WalStorage {
            dir,
            snap_dir,
            wal,
            memory,
            compaction_margin_entries: options.compaction_margin_entries,
            snapshot_cache: std::cell::RefCell::new(Some(snapshot)),
            durable_hard_state: recovered.hard_state,
            snapshot_in_flight: None,
            bootstrap_context,
        };
        Ok((storage, report))
    }

    /// Records the membership in force at the applied index (see
    /// [`MemStorage::set_applied_conf`]); snapshots taken from now on carry it.
    pub fn set_applied_conf(&mut self, conf: ConfState) {
        self.memory.set_applied_conf(conf);
    }

    /// The newest durable snapshot's index and term, and its file's size (`None` before the
    /// first snapshot).
    pub fn newest_snapshot_file(&self) -> Result<Option<(SnapshotMeta, u64)>> {
        let meta = self.memory.snapshot()?.meta;
        if meta.index == 0 {
            return Ok(None);
        }
        let path = self
            .snap_dir
            .join(snapshot_file::file_name(meta.index, meta.term));
        let bytes = std::fs::metadata(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), &e))?
            .len();
        Ok(Some((meta, bytes)))
    }

    /// Up to `max` bytes of the snapshot file at (`index`, `term`) from `offset`; `None` when
    /// that snapshot is gone (a newer one replaced it).
    pub fn read_snapshot_file(
        &self,
        index: Index,
        term: Term,
        offset: u64,
        max: usize,
    ) -> Result<Option<Vec<u8>>> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.snap_dir.join(snapshot_file::file_name(index, term));
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Error::io(format!("reading {}", path.display()), &error)),
        };
        let mut chunk = Vec::with_capacity(max);
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.take(max as u64).read_to_end(&mut chunk))
            .map_err(|e| Error::io(format!("reading {}", path.display()), &e))?;
        Ok(Some(chunk))
    }

    /// Sets how many entries compaction keeps behind a snapshot (see
    /// [`StorageOptions::compaction_margin_entries`]).
    pub fn set_compaction_margin(&mut self, entries: u64) {
        self.compaction_margin_entries = entries;
    }

    /// Whether a snapshot is being made durable.
    pub fn snapshot_in_flight(&self) -> bool {
        self.snapshot_in_flight.is_some()
    }

    /// Seeds a new member's empty data directory with a saved snapshot (`accord snapshot
    /// restore`): the snapshot becomes its state and the log starts after it, in its term.
    pub fn seed_from_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        if self.memory.last_index() != 0 || self.memory.snapshot()?.meta.index != 0 {
            return Err(Error::InvalidConfig(format!(
                "{} already holds a member's data: restore into an empty directory",
                self.path().display()
            )));
        }
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        self.apply_snapshot(snapshot)?;
        self.append(
            &[],
            Some(HardState {
                term,
                vote: crate::types::NO_NODE,
                commit: index,
            }),
        )
    }

    /// Quorum-loss recovery (offline, on a stopped member): appends a membership entry naming
    /// `conf` (with `context`, the members' addresses) after the last entry held, in the
    /// term of that entry, durably. It takes effect when the member next starts, so the
    /// survivors can elect a leader among themselves. Entries the lost members committed and
    /// this one never received are lost: run it on every survivor with the same membership;
    /// the one with the most up-to-date log wins the first election and brings the others
    /// to its log. Returns the entry's index.
    pub fn append_recovery_membership(
        &mut self,
        conf: &ConfState,
        context: &[u8],
    ) -> Result<Index> {
        conf.validate().map_err(Error::InvalidConfig)?;
        let index = self.memory.last_index() + 1;
        let term = self.memory.term(index - 1)?;
        let mut data = conf.encode();
        data.extend_from_slice(context);
        let entry = Entry {
            term,
            index,
            kind: crate::types::EntryKind::ConfChange,
            data: Payload::from(data),
        };
        self.append(&[entry], None)?;
        Ok(index)
    }

    /// The context recorded with the bootstrap membership (see [`StorageOptions::join_conf`]).
    pub fn bootstrap_context(&self) -> &[u8] {
        &self.bootstrap_context
    }

    /// Whether `dir` holds a member's data already (it was started at least once).
    pub fn holds_a_member(dir: &Path) -> bool {
        dir.join(BOOTSTRAP_FILE).exists()
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn segment_start(&self) -> SegmentStart {
        let snapshot_base = self.memory.snapshot().unwrap_or_default().meta;
        SegmentStart {
            // Only what is already durable: a segment header is synced before the batch that
            // follows it, so it must not claim a commit index beyond the durable log.
            hard_state: self.durable_hard_state,
            base: (snapshot_base.index, snapshot_base.term),
            next_index: self.memory.last_index() + 1,
        }
    }

    /// Makes `entries` and `hard_state` durable with one fdatasync (group commit), then holds
    /// them in memory. Entries may overwrite a conflicting suffix.
    ///
    /// A hard state that differs from the durable one only in its commit index is kept in
    /// memory and written with the next batch instead: losing it in a crash is harmless (the
    /// commit index is learned again from the leader), and it saves an fdatasync on the path
    /// of every acknowledged write. Every written batch is still synced before the next one
    /// is written, which recovery relies on to tell a torn tail from corruption.
    pub fn append(&mut self, entries: &[Entry], hard_state: Option<HardState>) -> Result<()> {
        let durable = self.durable_hard_state;
        let commit_only =
            hard_state.is_some_and(|h| h.term == durable.term && h.vote == durable.vote);
        if entries.is_empty() && commit_only {
            if let Some(hard_state) = hard_state {
                self.memory.set_hard_state(hard_state);
            }
            return Ok(());
        }
        // Anything deferred goes out with this batch.
        let hard_state = hard_state
            .or_else(|| (self.memory.hard_state() != durable).then(|| self.memory.hard_state()));
        let mut start = self.segment_start();
        if let Some(last) = entries.last() {
            start.next_index = last.index + 1;
        }
        self.wal.append(entries, hard_state, &start)?;
        self.memory.append(entries)?;
        if let Some(hard_state) = hard_state {
            self.memory.set_hard_state(hard_state);
            self.durable_hard_state = hard_state;
        }
        Ok(())
    }

    /// Installs a snapshot received from the leader: writes its file durably, then records in
    /// the WAL that the log restarts after it.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        snapshot_file::save(&self.snap_dir, &snapshot.meta, snapshot.data.as_slice())?;
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        self.memory.apply_snapshot(metadata_only(&snapshot))?;
        *self.snapshot_cache.borrow_mut() = None;
        let start = self.segment_start();
        let hard_state = self.memory.hard_state();
        self.wal
            .append_snapshot_base(index, term, hard_state, &start)?;
        self.durable_hard_state = hard_state;
        self.remove_old_snapshots()
    }

    /// Takes a snapshot of the local state machine as of `index` (durable before returning).
    /// The data is written straight to the file: it is never copied and not kept in memory.
    pub fn create_snapshot(&mut self, index: Index, data: &[u8]) -> Result<()> {
        if index <= self.memory.snapshot()?.meta.index {
            return Ok(());
        }
        let meta = self.snapshot_meta(index)?;
        snapshot_file::save(&self.snap_dir, &meta, data)?;
        self.memory.create_snapshot(index, Payload::empty())?;
        *self.snapshot_cache.borrow_mut() = None;
        self.remove_old_snapshots()
    }

    /// What a snapshot as of `index` covers (the entry there must still be held).
    fn snapshot_meta(&self, index: Index) -> Result<SnapshotMeta> {
        Ok(SnapshotMeta {
            index,
            term: self.memory.term(index)?,
            conf: self.memory.applied_conf().clone(),
        })
    }

    /// Takes a snapshot as of `index` and compacts the log behind it, keeping the configured
    /// margin of entries for slow followers.
    pub fn snapshot_and_compact(&mut self, index: Index, data: &[u8]) -> Result<()> {
        self.create_snapshot(index, data)?;
        self.compact(index.saturating_sub(self.compaction_margin_entries))
    }

    /// Starts a snapshot as of `index` without blocking on the disk: the state machine streams
    /// exactly `data_bytes` bytes into a temporary file here, and a helper thread makes it
    /// durable and renames it into place; [`WalStorage::poll_snapshot`] then records it and
    /// compacts the log. Returns false (and does nothing) while another snapshot is in flight
    /// or when a newer one exists.
    pub fn start_snapshot_streamed(
        &mut self,
        index: Index,
        data_bytes: usize,
        write_data: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<bool> {
        if self.snapshot_in_flight.is_some() || index <= self.memory.snapshot()?.meta.index {
            return Ok(false);
        }
        let meta = self.snapshot_meta(index)?;
        let unsynced =
            snapshot_file::write_unsynced(&self.snap_dir, &meta, data_bytes, write_data)?;
        let thread = std::thread::Builder::new()
            .name("accord-snapshot".into())
            .spawn(move || unsynced.make_durable())
            .map_err(|e| Error::io("starting the snapshot thread", &e))?;
        self.snapshot_in_flight = Some((meta, thread));
        Ok(true)
    }

    /// Finishes a snapshot whose helper thread is done: records it and compacts the log behind
    /// it (keeping the configured margin). Returns whether one finished. Never blocks.
    pub fn poll_snapshot(&mut self) -> Result<bool> {
        let done = self
            .snapshot_in_flight
            .as_ref()
            .is_some_and(|(_, thread)| thread.is_finished());
        if !done {
            return Ok(false);
        }
        let Some((meta, thread)) = self.snapshot_in_flight.take() else {
            return Ok(false);
        };
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                let what = format!("making snapshot {} durable", meta.index);
                return Err(Error::io(what, &error));
            }
            Err(_) => return Err(Error::StorageFailed("the snapshot thread panicked".into())),
        }
        // A newer snapshot from the leader may have replaced the log meanwhile: then this one
        // is simply older (and `create_snapshot` ignores it).
        self.memory.create_snapshot(meta.index, Payload::empty())?;
        *self.snapshot_cache.borrow_mut() = None;
        self.remove_old_snapshots()?;
        let covered = self.memory.snapshot()?.meta.index;
        self.compact(covered.saturating_sub(self.compaction_margin_entries))?;
        Ok(true)
    }

    /// Drops entries through `index` from memory and deletes WAL segments that hold only such
    /// entries. A snapshot must cover `index`.
    pub fn compact(&mut self, index: Index) -> Result<()> {
        self.memory.compact(index)?;
        *self.snapshot_cache.borrow_mut() = None;
        self.wal.remove_segments_through(index)
    }

    fn remove_old_snapshots(&self) -> Result<()> {
        let files = snapshot_file::list(&self.snap_dir, false)?;
        let excess = files.len().saturating_sub(SNAPSHOT_FILES_KEPT);
        for (_, path) in &files[..excess] {
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), &e))?;
        }
        Ok(())
    }

    /// The recorded hard state.
    pub fn hard_state(&self) -> HardState {
        self.memory.hard_state()
    }

    /// The WAL file and offset where acknowledged data ends.
    pub fn wal_end_position(&self) -> (PathBuf, u64) {
        self.wal.end_position()
    }

    /// Fault injection for tests: the next write fails with `kind` as a failing disk would
    /// (see [`Wal::inject_write_failure`]).
    pub fn inject_write_failure(&mut self, kind: std::io::ErrorKind) {
        self.wal.inject_write_failure(kind);
    }

    /// WAL segment files currently held.
    pub fn segment_count(&self) -> usize {
        self.wal.segment_count()
    }
}

impl Storage for WalStorage {
    fn initial_state(&self) -> Result<(HardState, ConfState)> {
        self.memory.initial_state()
    }

    fn entries(
        &self,
        low: Index,
        high: Index,
        bytes_max: usize,
        out: &mut Vec<Entry>,
    ) -> Result<()> {
        self.memory.entries(low, high, bytes_max, out)
    }

    fn term(&self, index: Index) -> Result<Term> {
        self.memory.term(index)
    }

    fn first_index(&self) -> Index {
        self.memory.first_index()
    }

    fn last_index(&self) -> Index {
        self.memory.last_index()
    }

    fn snapshot(&self) -> Result<Snapshot> {
        let meta = self.memory.snapshot()?.meta;
        if meta.index == 0 {
            return Ok(Snapshot::default());
        }
        let mut cache = self.snapshot_cache.borrow_mut();
        if let Some(cached) = cache.as_ref().filter(|s| s.meta.index == meta.index) {
            return Ok(cached.clone());
        }
        let path = self
            .snap_dir
            .join(snapshot_file::file_name(meta.index, meta.term));
        let loaded = snapshot_file::load(&path)?;
        *cache = Some(loaded.clone());
        Ok(loaded)
    }
}

/// The files in `dir` named `<stem><suffix>`, as (stem, path), at most `max` of them. With
/// `remove_temporary`, leftover `.tmp` files are deleted: at start-up, a crash before their
/// rename means they were never in place. (While running, a `.tmp` file may be a snapshot or
/// segment being prepared on a helper thread, so it must be left alone.)
pub(crate) fn list_files(
    dir: &Path,
    suffix: &str,
    max: usize,
    remove_temporary: bool,
) -> Result<Vec<(String, PathBuf)>> {
    let listing = |e: &std::io::Error| Error::io(format!("listing {}", dir.display()), e);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| listing(&e))? {
        let entry = entry.map_err(|e| listing(&e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            if remove_temporary {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        if let Some(stem) = name.strip_suffix(suffix) {
            found.push((stem.to_string(), entry.path()));
        }
        if found.len() > max {
            return Err(Error::Corruption {
                file: dir.display().to_string(),
                offset: 0,
                detail: format!("more than {max} {suffix} files"),
            });
        }
    }
    Ok(found)
}

/// File holding the membership this member started from (the bootstrap voters, or the
/// membership it joined), so that a restart never starts from another one: a member that
/// joined and crashed before receiving anything must not come back as a cluster of its own.
const BOOTSTRAP_FILE: &str = "bootstrap-membership";

/// The membership a directory's log starts from: recorded in [`BOOTSTRAP_FILE`] when the
/// directory was new (from `options`), read back ever after.
fn bootstrap_conf(
    dir: &Path,
    options: &StorageOptions,
    fresh: bool,
) -> Result<(ConfState, Vec<u8>)> {
    let path = dir.join(BOOTSTRAP_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let damaged = |detail: String| Error::Corruption {
                file: path.display().to_string(),
                offset: 0,
                detail,
            };
            if bytes.len() < 4 {
                return Err(damaged("too short".into()));
            }
            let (body, crc) = bytes.split_at(bytes.len() - 4);
            if crc32c::crc32c(body).to_le_bytes() != crc {
                return Err(damaged("checksum mismatch".into()));
            }
            let (conf, context) = ConfState::decode_entry(body).map_err(damaged)?;
            Ok((conf, context.to_vec()))
        }
        // Opened to be inspected (`accord check`), not to run a member: nothing to record.
        Err(error)
            if error.kind() == std::io::ErrorKind::NotFound
                && options.voters.is_empty()
                && options.join_conf.is_none() =>
        {
            Ok((ConfState::default(), Vec::new()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let (conf, context) = match (&options.join_conf, fresh) {
                (Some(joined), true) => joined.clone(),
                _ => (ConfState::with_voters(&options.voters), Vec::new()),
            };
            conf.validate().map_err(Error::InvalidConfig)?;
            let mut bytes = conf.encode();
            bytes.extend_from_slice(&context);
            let crc = crc32c::crc32c(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            let temporary = dir.join(format!("{BOOTSTRAP_FILE}.tmp"));
            let write = || -> std::io::Result<()> {
                use std::io::Write;
                let mut file = data_dir::create_private_file(&temporary)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                std::fs::rename(&temporary, &path)?;
                sync_dir(dir)
            };
            write().map_err(|e| Error::io(format!("writing {}", path.display()), &e))?;
            Ok((conf, context))
        }
        Err(error) => Err(Error::io(format!("reading {}", path.display()), &error)),
    }
}

/// The snapshot without its data (which stays on disk).
fn metadata_only(snapshot: &Snapshot) -> Snapshot {
    Snapshot {
        meta: snapshot.meta.clone(),
        data: Payload::empty(),
    }
}

/// Fsyncs a directory, so that files created, renamed or removed in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A fresh, empty directory under the system's temp directory, for tests.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let unique = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "accord-test-{}-{name}-{unique}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
