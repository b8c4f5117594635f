//! The log as the consensus core sees it: durable entries in [`Storage`] followed by
//! `unstable` entries that were appended in memory but are not yet known to be durable.
//!
//! Indexes kept here:
//! - `committed`: highest index known to be replicated on a quorum;
//! - `applied`: highest index handed to the application;
//! - `persisting`: highest index handed out in a `Ready` for persistence (entries after it are
//!   still to be handed out);
//! - the unstable entries start at `unstable_offset`; everything before is durable, or covered
//!   by `pending_snapshot`, a snapshot received from the leader and not yet durable.

use super::storage::Storage;
use crate::error::{Error, Result};
use crate::types::{Entry, Index, Snapshot, Term};

/// Durable plus in-memory log, with commit and apply positions.
#[derive(Debug)]
pub struct RaftLog<S: Storage> {
    /// The durable part. Written by the driver, read here.
    pub(crate) storage: S,
    unstable: Vec<Entry>,
    unstable_offset: Index,
    pub(crate) committed: Index,
    pub(crate) applied: Index,
    pub(crate) persisting: Index,
    /// A snapshot received from the leader that replaces the log up to its index; held until
    /// the driver reports it durable.
    pending_snapshot: Option<Snapshot>,
    /// The pending snapshot was handed out in a `Ready`.
    snapshot_handed_out: bool,
}

impl<S: Storage> RaftLog<S> {
    /// Wraps `storage`, whose recorded commit index is `committed`.
    pub fn new(storage: S, committed: Index) -> Result<RaftLog<S>> {
        let first = storage.first_index();
        let last = storage.last_index();
        if committed > last {
            return Err(Error::Corrupt(format!(
                "commit index {committed} is beyond the last stored entry {last}"
            )));
        }
        // The state machine restarts from the stored snapshot, which may lie after the first
        // held entry (a margin is kept for slow followers); it covers committed entries only.
        let snapshot_index = storage.snapshot()?.meta.index.max(first - 1);
        if snapshot_index > last {
            return Err(Error::Corrupt(format!(
                "snapshot at {snapshot_index} is beyond the last stored entry {last}"
            )));
        }
        let committed = committed.max(snapshot_index);
        Ok(RaftLog {
            storage,
            unstable: Vec::new(),
            unstable_offset: last + 1,
            committed,
            applied: snapshot_index,
            persisting: last,
            pending_snapshot: None,
            snapshot_handed_out: false,
        })
    }

    /// Replaces the log with a snapshot received from the leader (not yet durable). Entries
    /// after the snapshot that agree with it are kept; the rest are dropped.
    pub fn restore(&mut self, snapshot: Snapshot) {
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        debug_assert!(index > self.committed, "restoring an older snapshot");
        let keeps_suffix = index < self.last_index() && self.matches(index, term);
        if !keeps_suffix {
            // Storage drops its entries when the snapshot is applied.
            self.unstable.clear();
            self.unstable_offset = index + 1;
            self.persisting = index;
        } else if index >= self.unstable_offset {
            self.unstable
                .drain(..(index + 1 - self.unstable_offset) as usize);
            self.unstable_offset = index + 1;
            // Storage did not hold the snapshot's entry, so it drops everything it has: hand
            // out the kept entries again.
            self.persisting = index;
        }
        self.committed = index;
        self.applied = index;
        self.pending_snapshot = Some(snapshot);
        self.snapshot_handed_out = false;
    }

    /// The pending snapshot, if it has not been handed out yet; marks it handed out.
    pub fn take_pending_snapshot(&mut self) -> Option<Snapshot> {
        if self.snapshot_handed_out {
            return None;
        }
        self.snapshot_handed_out = true;
        self.pending_snapshot.clone()
    }

    /// Whether a received snapshot waits to be handed out for persistence.
    pub fn has_pending_snapshot(&self) -> bool {
        self.pending_snapshot.is_some() && !self.snapshot_handed_out
    }

    /// The driver made the snapshot at `index` durable.
    pub fn snapshot_stable(&mut self, index: Index) {
        if self
            .pending_snapshot
            .as_ref()
            .is_some_and(|s| s.meta.index == index && self.snapshot_handed_out)
        {
            self.pending_snapshot = None;
            self.snapshot_handed_out = false;
        }
    }

    /// Index of the last entry (durable or not).
    pub fn last_index(&self) -> Index {
        // Everything before `unstable_offset` is durable (or covered by a pending snapshot).
        match self.unstable.last() {
            Some(entry) => entry.index,
            None => self.unstable_offset - 1,
        }
    }

    /// Index of the first entry still held.
    pub fn first_index(&self) -> Index {
        match &self.pending_snapshot {
            Some(snapshot) => snapshot.meta.index + 1,
            None => self.storage.first_index(),
        }
    }

    /// Highest index known durable on this node.
    pub fn persisted_index(&self) -> Index {
        self.unstable_offset - 1
    }

    /// Term of the entry at `index`; `0` for index 0.
    pub fn term(&self, index: Index) -> Result<Term> {
        if index >= self.unstable_offset {
            return match self.unstable.get((index - self.unstable_offset) as usize) {
                Some(entry) => Ok(entry.term),
                None => Err(Error::Unavailable(index)),
            };
        }
        if index == 0 {
            return Ok(0);
        }
        if let Some(snapshot) = &self.pending_snapshot {
            if index == snapshot.meta.index {
                return Ok(snapshot.meta.term);
            }
            if index < snapshot.meta.index {
                return Err(Error::Compacted {
                    first_index: snapshot.meta.index + 1,
                });
            }
        }
        self.storage.term(index)
    }

    /// Term of the last entry.
    pub fn last_term(&self) -> Term {
        self.term(self.last_index()).unwrap_or(0)
    }

    /// True when the log holds an entry at `index` with `term` (index 0 always matches term 0).
    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index).map(|t| t == term).unwrap_or(false)
    }

    /// True when a candidate whose log ends at (`index`, `term`) is at least as up to date as
    /// this log (Raft §5.4.1).
    pub fn is_up_to_date(&self, index: Index, term: Term) -> bool {
        let last_term = self.last_term();
        term > last_term || (term == last_term && index >= self.last_index())
    }

    /// The first entry of `entries` that conflicts with the log (same index, different term) or
    /// lies beyond its end; `None` when every entry is already present.
    pub fn find_conflict(&self, entries: &[Entry]) -> Option<Index> {
        entries
            .iter()
            .find(|entry| !self.matches(entry.index, entry.term))
            .map(|entry| entry.index)
    }

    /// The largest index `<= index` whose term is `<= term`, used to skip whole terms when a
    /// follower's log diverges (the fast backtracking of etcd-io/raft).
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> (Index, Term) {
        let mut index = index.min(self.last_index());
        let floor = self.first_index().saturating_sub(1);
        // Bounded: the index only decreases, and stops at the compaction floor.
        while index > floor {
            match self.term(index) {
                Ok(t) if t > term => index -= 1,
                Ok(t) => return (index, t),
                Err(_) => break,
            }
        }
        (index, self.term(index).unwrap_or(0))
    }

    /// Appends `entries` (consecutive), overwriting any conflicting suffix from the first one on.
    /// Committed entries are never overwritten; the caller checks that first.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        debug_assert!(
            first.index > self.committed,
            "overwriting a committed entry"
        );
        debug_assert!(first.index <= self.last_index() + 1, "append leaves a gap");
        if first.index >= self.unstable_offset {
            self.unstable
                .truncate((first.index - self.unstable_offset) as usize);
        } else {
            // The conflict reaches into durable entries: the new suffix replaces them once it
            // is persisted (storage truncates on append).
            self.unstable.clear();
            self.unstable_offset = first.index;
        }
        self.persisting = self.persisting.min(first.index - 1);
        self.unstable.extend_from_slice(entries);
    }

    /// Appends one entry the leader created at the next index.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.unstable.push(entry);
    }

    /// Drops unstable entries from `index` on (a proposal batch the leader refused).
    pub fn truncate_unstable_from(&mut self, index: Index) {
        debug_assert!(index >= self.unstable_offset && index > self.persisting);
        self.unstable
            .truncate(index.saturating_sub(self.unstable_offset) as usize);
    }

    /// Appends entries `[low, high)` to `out`, capped by `bytes_max` (at least one entry).
    pub fn entries(
        &self,
        low: Index,
        high: Index,
        bytes_max: usize,
        out: &mut Vec<Entry>,
    ) -> Result<()> {
        if low >= high {
            return Ok(());
        }
        if high > self.last_index() + 1 {
            return Err(Error::Unavailable(high - 1));
        }
        if low < self.first_index() {
            return Err(Error::Compacted {
                first_index: self.first_index(),
            });
        }
        let start_len = out.len();
        if low < self.unstable_offset {
            let stored_high = high.min(self.unstable_offset);
            self.storage.entries(low, stored_high, bytes_max, out)?;
            if (out.len() - start_len) < (stored_high - low) as usize {
                return Ok(()); // byte budget reached inside storage
            }
        }
        let mut bytes: usize = out[start_len..].iter().map(Entry::size_bytes).sum();
        let from = low.max(self.unstable_offset);
        for index in from..high {
            let entry = &self.unstable[(index - self.unstable_offset) as usize];
            bytes += entry.size_bytes();
            if bytes > bytes_max && out.len() > start_len {
                break;
            }
            out.push(entry.clone());
        }
        Ok(())
    }

    /// Unstable entries not yet handed out for persistence, marking them handed out.
    pub fn take_unpersisted(&mut self, out: &mut Vec<Entry>) {
        let from = (self.persisting + 1).max(self.unstable_offset);
        if from > self.last_index() {
            return;
        }
        let start = (from - self.unstable_offset) as usize;
        out.extend_from_slice(&self.unstable[start..]);
        self.persisting = self.last_index();
    }

    /// The driver made entries up to (`index`, `term`) durable: drop them from memory.
    /// Ignored when the log has since been overwritten at that index.
    pub fn stable_to(&mut self, index: Index, term: Term) {
        if index < self.unstable_offset || !self.matches(index, term) {
            return;
        }
        self.unstable
            .drain(..(index + 1 - self.unstable_offset) as usize);
        self.unstable_offset = index + 1;
    }

    /// Raises the commit index (never lowers it). Returns whether it moved.
    pub fn commit_to(&mut self, index: Index) -> bool {
        if index > self.committed {
            debug_assert!(index <= self.last_index());
            self.committed = index;
            return true;
        }
        false
    }

    /// Highest index that may be applied now: committed and durable here.
    pub fn applicable_index(&self) -> Index {
        self.committed.min(self.persisted_index())
    }

    /// Whether there are committed, durable entries not yet handed to the application.
    pub fn has_applicable(&self) -> bool {
        self.applicable_index() > self.applied
    }

    /// Whether entries wait to be handed out for persistence.
    pub fn has_unpersisted(&self) -> bool {
        self.last_index() > self.persisting.max(self.unstable_offset - 1)
    }
}
