//! The `Storage` trait: what the consensus core reads from durable state, and an in-memory
//! implementation used by tests, the simulator and the core benchmark.
//!
//! The core only *reads* storage. Writes happen outside the core, by whoever drives it, when it
//! handles a [`super::Ready`]: append `ready.entries`, save `ready.hard_state`, make both durable,
//! then call [`super::Raft::advance`]. The on-disk write-ahead log implements this same trait.

use crate::error::{Error, Result};
use crate::types::{ConfState, Entry, HardState, Index, Payload, Snapshot, SnapshotMeta, Term};

/// Read access to the durable log and hard state.
///
/// Entries are numbered from `first_index()` to `last_index()` with no gaps. The entry just
/// before `first_index()` (the last one compacted into a snapshot) must still answer `term()`.
pub trait Storage {
    /// The hard state and membership recorded on disk at start-up.
    fn initial_state(&self) -> Result<(HardState, ConfState)>;

    /// Appends entries `[low, high)` to `out`, stopping early once `bytes_max` is exceeded, but
    /// always returning at least one entry when `low < high`.
    fn entries(
        &self,
        low: Index,
        high: Index,
        bytes_max: usize,
        out: &mut Vec<Entry>,
    ) -> Result<()>;

    /// The term of the entry at `index`; `first_index() - 1` must be answerable too.
    fn term(&self, index: Index) -> Result<Term>;

    /// The index of the first entry still held (entries before it were compacted).
    fn first_index(&self) -> Index;

    /// The index of the last entry held (`first_index() - 1` when there is none).
    fn last_index(&self) -> Index;

    /// The latest snapshot (index 0 and empty data when none was taken yet). The leader sends
    /// it to followers that need entries already compacted away.
    fn snapshot(&self) -> Result<Snapshot>;
}

/// An in-memory [`Storage`]: the durable state of a simulated or benchmarked node.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    /// The membership as of the snapshot (or the bootstrap one): what a restart begins with,
    /// before the membership entries of the log.
    conf_state: ConfState,
    /// The membership as of the applied index, which the driver reports as it applies
    /// membership entries; the next snapshot records it.
    applied_conf: Option<ConfState>,
    /// Index and term of the entry just before `entries[0]` (0, 0 until a snapshot exists).
    base_index: Index,
    base_term: Term,
    entries: Vec<Entry>,
    snapshot: Snapshot,
}

impl MemStorage {
    /// Storage for a node of a new cluster whose voters are `voters`.
    pub fn new_with_voters(voters: &[u64]) -> MemStorage {
        MemStorage {
            conf_state: ConfState::with_voters(voters),
            ..MemStorage::default()
        }
    }

    /// Storage for a node joining a running cluster whose membership is `conf` (it learns the
    /// log from the leader).
    pub fn new_with_conf(conf: ConfState) -> MemStorage {
        MemStorage {
            conf_state: conf,
            ..MemStorage::default()
        }
    }

    /// Storage holding recovered state: membership `conf`, the latest `snapshot`, and the log
    /// after `base` (index, term), which is at or after the snapshot's index.
    pub fn from_parts(
        hard_state: HardState,
        conf_state: ConfState,
        snapshot: Snapshot,
        base: (Index, Term),
        entries: Vec<Entry>,
    ) -> MemStorage {
        MemStorage {
            hard_state,
            conf_state,
            applied_conf: None,
            base_index: base.0,
            base_term: base.1,
            entries,
            snapshot,
        }
    }

    /// The membership recorded with the snapshot (or the bootstrap one).
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Records the membership in force at the applied index (the driver calls this when it
    /// applies a membership entry); snapshots taken from now on carry it.
    pub fn set_applied_conf(&mut self, conf: ConfState) {
        self.applied_conf = Some(conf);
    }

    /// The membership a snapshot of the applied state carries.
    pub fn applied_conf(&self) -> &ConfState {
        self.applied_conf.as_ref().unwrap_or(&self.conf_state)
    }

    /// Makes `entries` durable, first discarding any held entries at or after the first one's
    /// index (a conflicting suffix the leader overwrote).
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index <= self.base_index || first.index > self.last_index() + 1 {
            return Err(Error::Corrupt(format!(
                "append at index {} leaves a gap or rewrites compacted entries (held {}..={})",
                first.index,
                self.base_index + 1,
                self.last_index()
            )));
        }
        self.entries
            .truncate((first.index - self.base_index - 1) as usize);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Records the hard state.
    pub fn set_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    /// The recorded hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Records a snapshot of the state machine as of `index` (which must be held).
    pub fn create_snapshot(&mut self, index: Index, data: Payload) -> Result<()> {
        if index < self.snapshot.meta.index {
            return Ok(()); // an older snapshot than the one held: nothing to do
        }
        let term = self.term(index)?;
        self.conf_state = self.applied_conf().clone();
        self.snapshot = Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf: self.conf_state.clone(),
            },
            data,
        };
        Ok(())
    }

    /// Replaces the whole log with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        if snapshot.meta.index < self.snapshot.meta.index {
            return Err(Error::Corrupt(format!(
                "snapshot at {} is older than the held one at {}",
                snapshot.meta.index, self.snapshot.meta.index
            )));
        }
        let keeps_suffix = self.term(snapshot.meta.index).ok() == Some(snapshot.meta.term);
        if keeps_suffix {
            self.entries
                .drain(..(snapshot.meta.index - self.base_index) as usize);
        } else {
            self.entries.clear();
        }
        self.base_index = snapshot.meta.index;
        self.base_term = snapshot.meta.term;
        self.hard_state.commit = self.hard_state.commit.max(snapshot.meta.index);
        self.conf_state = snapshot.meta.conf.clone();
        self.applied_conf = Some(snapshot.meta.conf.clone());
        self.snapshot = snapshot;
        Ok(())
    }

    /// Discards entries up to and including `index`, which a snapshot must already cover.
    pub fn compact(&mut self, index: Index) -> Result<()> {
        if index <= self.base_index {
            return Ok(());
        }
        if index > self.snapshot.meta.index {
            return Err(Error::Corrupt(format!(
                "compacting to {index} would drop entries no snapshot covers (snapshot at {})",
                self.snapshot.meta.index
            )));
        }
        let term = self.term(index)?;
        self.entries.drain(..(index - self.base_index) as usize);
        self.base_index = index;
        self.base_term = term;
        Ok(())
    }

    /// Every entry held, in order (for checks in tests and the simulator).
    pub fn all_entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<(HardState, ConfState)> {
        Ok((self.hard_state, self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: Index,
        high: Index,
        bytes_max: usize,
        out: &mut Vec<Entry>,
    ) -> Result<()> {
        if low <= self.base_index {
            return Err(Error::Compacted {
                first_index: self.first_index(),
            });
        }
        if high > self.last_index() + 1 || low > high {
            return Err(Error::Unavailable(high.saturating_sub(1)));
        }
        let start = (low - self.base_index - 1) as usize;
        let end = (high - self.base_index - 1) as usize;
        let mut bytes = 0usize;
        for entry in &self.entries[start..end] {
            bytes += entry.size_bytes();
            if bytes > bytes_max && bytes != entry.size_bytes() {
                break;
            }
            out.push(entry.clone());
        }
        Ok(())
    }

    fn term(&self, index: Index) -> Result<Term> {
        if index == self.base_index {
            return Ok(self.base_term);
        }
        if index < self.base_index {
            return Err(Error::Compacted {
                first_index: self.first_index(),
            });
        }
        match self.entries.get((index - self.base_index - 1) as usize) {
            Some(entry) => Ok(entry.term),
            None => Err(Error::Unavailable(index)),
        }
    }

    fn first_index(&self) -> Index {
        self.base_index + 1
    }

    fn last_index(&self) -> Index {
        self.base_index + self.entries.len() as Index
    }

    fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryKind;

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: Payload::from_slice(&[index as u8]),
        }
    }

    #[test]
    fn append_overwrites_conflicting_suffix_and_refuses_gaps() {
        let mut storage = MemStorage::new_with_voters(&[1]);
        storage
            .append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        storage.append(&[entry(2, 2)]).unwrap();
        assert_eq!(storage.last_index(), 2);
        assert_eq!(storage.term(2).unwrap(), 2);
        assert!(storage.append(&[entry(5, 2)]).is_err());
        assert_eq!(storage.term(3), Err(Error::Unavailable(3)));
        let mut out = Vec::new();
        storage.entries(1, 3, usize::MAX, &mut out).unwrap();
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn compaction_keeps_the_boundary_term_and_refuses_compacted_reads() {
        let mut storage = MemStorage::new_with_voters(&[1]);
        storage
            .append(&[entry(1, 1), entry(2, 2), entry(3, 2)])
            .unwrap();
        assert!(storage.compact(2).is_err(), "compacted past the snapshot");
        storage
            .create_snapshot(2, Payload::from_slice(b"state"))
            .unwrap();
        storage.compact(2).unwrap();
        assert_eq!(storage.first_index(), 3);
        assert_eq!(storage.term(2).unwrap(), 2);
        assert!(matches!(storage.term(1), Err(Error::Compacted { .. })));
        let mut out = Vec::new();
        assert!(storage.entries(2, 4, usize::MAX, &mut out).is_err());
        storage.entries(3, 4, usize::MAX, &mut out).unwrap();
        assert_eq!(out[0].index, 3);
    }

    #[test]
    fn applying_a_snapshot_keeps_a_matching_suffix_and_drops_a_conflicting_log() {
        let mut storage = MemStorage::new_with_voters(&[1]);
        storage
            .append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        let snapshot = |index, term| Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf: ConfState::default(),
            },
            data: Payload::empty(),
        };
        storage.apply_snapshot(snapshot(2, 1)).unwrap();
        assert_eq!((storage.first_index(), storage.last_index()), (3, 3));
        storage.apply_snapshot(snapshot(5, 4)).unwrap();
        assert_eq!((storage.first_index(), storage.last_index()), (6, 5));
        assert_eq!(storage.term(5).unwrap(), 4);
        assert_eq!(storage.hard_state().commit, 5);
        assert!(storage.apply_snapshot(snapshot(4, 4)).is_err());
    }

    #[test]
    fn entries_respects_byte_budget_but_returns_at_least_one() {
        let mut storage = MemStorage::new_with_voters(&[1]);
        storage
            .append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        let mut out = Vec::new();
        storage.entries(1, 4, 1, &mut out).unwrap();
        assert_eq!(out.len(), 1);
    }
}
