//! Raft's safety properties, checked after every simulated step.
//!
//! - Election safety: at most one leader per term.
//! - Log matching: an entry at (index, term) always has the same content and the same
//!   predecessor term on every node (by induction, logs that share an entry share the whole
//!   prefix before it). Checked on every durable append.
//! - State-machine safety: no two nodes apply different entries at one index.
//! - Leader completeness: a leader of term T holds every entry committed in a term before T.
//!   (The term in which an entry was committed is bounded above by the term of any node that
//!   applied it; the smallest such term is recorded, so the check never flags a legal stale
//!   leader of an older term that wins its election late, say after a long pause.)
//! - No acknowledged write lost: checked at the end of a run against every node's applied log.

use std::collections::{BTreeMap, HashMap};

use crate::core::raft::{MemStorage, Raft};
use crate::types::{Entry, Index, NodeId, Term};

/// A property violation, with what was seen.
pub type Violation = String;

/// Fingerprint of an entry's content.
fn fingerprint(entry: &Entry) -> u64 {
    // FNV-1a over kind and payload: cheap, deterministic, good enough to tell entries apart.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let kind_byte = [entry.kind as u8];
    for byte in kind_byte.iter().chain(entry.data.as_slice()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// What has been observed so far, across all nodes.
#[derive(Default)]
pub struct Invariants {
    leaders: BTreeMap<Term, NodeId>,
    /// (index, term) → (content fingerprint, predecessor's term).
    entries: HashMap<(Index, Term), (u64, Term)>,
    /// Entry applied at each index (position 0 is index 1): (term, fingerprint).
    applied: Vec<(Term, u64)>,
    /// For each applied index, the smallest term of a node that applied it: the entry was
    /// committed in that term or earlier.
    committed_by_term: Vec<Term>,
    /// For each applied index, the fingerprint of the replica's state right after applying it.
    state_after: Vec<u64>,
    /// Number of times some node became leader.
    pub elections: u64,
}

impl Invariants {
    /// Records the leaders among `nodes` and checks election safety and leader completeness
    /// for any node that just became leader (`new_leader`).
    pub fn check_leader(&mut self, id: NodeId, raft: &Raft<MemStorage>) -> Result<(), Violation> {
        let term = raft.term();
        match self.leaders.get(&term) {
            Some(&other) if other != id => {
                return Err(format!(
                    "election safety: nodes {other} and {id} both led term {term}"
                ))
            }
            Some(_) => return Ok(()),
            None => {
                self.leaders.insert(term, id);
                self.elections += 1;
            }
        }
        let first_held = raft.log().first_index();
        for (position, &(applied_term, _)) in self.applied.iter().enumerate() {
            let index = position as Index + 1;
            // Compacted entries are covered by the leader's snapshot, whose state is checked
            // against `state_after` when it is taken and installed.
            if self.committed_by_term[position] >= term || index < first_held {
                continue;
            }
            if raft.log_term(index) != Some(applied_term) {
                return Err(format!(
                    "leader completeness: node {id} leads term {term} without entry \
                     {index} (term {applied_term}) that was applied; it has {:?}",
                    raft.log_term(index)
                ));
            }
        }
        Ok(())
    }

    /// Checks entries a node just made durable; `prev_term` is the term of the entry before
    /// the first of them in that node's log.
    pub fn check_persisted(
        &mut self,
        id: NodeId,
        entries: &[Entry],
        mut prev_term: Term,
    ) -> Result<(), Violation> {
        for entry in entries {
            let seen = (fingerprint(entry), prev_term);
            match self.entries.get(&(entry.index, entry.term)) {
                Some(&recorded) if recorded != seen => {
                    return Err(format!(
                        "log matching: node {id} holds entry {}/{} with (content, previous \
                         term) {seen:?}, another node has {recorded:?}",
                        entry.index, entry.term
                    ))
                }
                Some(_) => {}
                None => {
                    self.entries.insert((entry.index, entry.term), seen);
                }
            }
            prev_term = entry.term;
        }
        Ok(())
    }

    /// Checks an entry a node in term `node_term` applied, and the state it reached
    /// (`state` fingerprint), against what every other node applied there.
    pub fn check_applied(
        &mut self,
        id: NodeId,
        node_term: Term,
        entry: &Entry,
        state: u64,
    ) -> Result<(), Violation> {
        let seen = (entry.term, fingerprint(entry));
        let position = (entry.index - 1) as usize;
        match self.applied.get(position) {
            Some(&recorded) if recorded != seen => Err(format!(
                "state-machine safety: node {id} applied {:?} at index {}, another node \
                 applied {recorded:?}",
                seen, entry.index
            )),
            Some(_) => {
                let bound = &mut self.committed_by_term[position];
                *bound = (*bound).min(node_term);
                match self.state_after.get(position) {
                    Some(&recorded) if recorded != state => Err(format!(
                        "state-machine safety: node {id} reached state {state:#x} after index \
                         {}, another node reached {recorded:#x}",
                        entry.index
                    )),
                    _ => Ok(()),
                }
            }
            None if position == self.applied.len() => {
                self.applied.push(seen);
                self.committed_by_term.push(node_term);
                self.state_after.push(state);
                Ok(())
            }
            None => Err(format!(
                "state-machine safety: node {id} applied index {} before index {}",
                entry.index,
                self.applied.len() + 1
            )),
        }
    }

    /// Checks a state a node restored from a snapshot at `index` against the state every node
    /// that applied the log reached there.
    pub fn check_snapshot_state(
        &self,
        id: NodeId,
        index: Index,
        state: u64,
    ) -> Result<(), Violation> {
        let Some(position) = index.checked_sub(1).map(|p| p as usize) else {
            return Ok(());
        };
        match self.state_after.get(position) {
            Some(&recorded) if recorded != state => Err(format!(
                "snapshot safety: node {id} restored state {state:#x} at index {index}, the log \
                 gives {recorded:#x}"
            )),
            Some(_) => Ok(()),
            None => Err(format!(
                "snapshot safety: node {id} restored a snapshot at index {index}, which no node \
                 has applied"
            )),
        }
    }

    /// The term of the entry applied at `index`, if any node applied one.
    pub fn applied_term(&self, index: Index) -> Option<Term> {
        let position = index.checked_sub(1)? as usize;
        self.applied.get(position).map(|&(term, _)| term)
    }

    /// Highest index any node applied.
    pub fn applied_len(&self) -> Index {
        self.applied.len() as Index
    }
}
