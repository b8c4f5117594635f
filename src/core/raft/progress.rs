//! What a leader knows about each member's log, and the quorum arithmetic over it.
//!
//! Each member has a [`Progress`]: its acknowledged match index, the next index to send, and
//! whether the leader is probing (one message at a time, after a rejection or on election) or
//! replicating (pipelined, bounded by an in-flight window). The tracker also holds the
//! configuration (voters and learners), which membership changes will extend in a later issue.

use std::collections::VecDeque;

use crate::limits::VOTERS_MAX;
use crate::types::{ConfState, Index, NodeId};

/// How the leader currently sends to one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Where the member's log ends is unknown: one AppendEntries per heartbeat until it answers.
    Probe,
    /// The member acknowledged a match: stream entries, up to the in-flight window.
    Replicate,
    /// The member needs entries the leader compacted: stream it a snapshot, in chunks.
    Snapshot,
}

/// A snapshot transfer to one member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotTransfer {
    /// Index of the snapshot being sent.
    pub index: Index,
    /// Its size in bytes.
    pub total_bytes: u64,
    /// Bytes sent so far (the next chunk starts here).
    pub sent_bytes: u64,
    /// Bytes the member confirmed receiving, in order.
    pub acked_bytes: u64,
    /// `acked_bytes` when the previous heartbeat answer arrived (to notice lost chunks).
    pub acked_at_last_heartbeat: u64,
}

/// The last index of each AppendEntries message in flight to one member, oldest first.
#[derive(Clone, Debug)]
pub struct Inflights {
    last_indexes: VecDeque<Index>,
    capacity: usize,
}

impl Inflights {
    /// A window of at most `capacity` messages (allocated once, here).
    pub fn new(capacity: usize) -> Inflights {
        Inflights {
            last_indexes: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Whether no further message may be sent until one is acknowledged.
    pub fn is_full(&self) -> bool {
        self.last_indexes.len() >= self.capacity
    }

    /// Records a message whose last entry is `index`.
    pub fn add(&mut self, index: Index) {
        debug_assert!(!self.is_full());
        self.last_indexes.push_back(index);
    }

    /// Frees every message whose entries are all at or below `index`.
    pub fn free_to(&mut self, index: Index) {
        while matches!(self.last_indexes.front(), Some(&last) if last <= index) {
            self.last_indexes.pop_front();
        }
    }

    /// Frees the oldest message (its answer may have been lost).
    pub fn free_first(&mut self) {
        self.last_indexes.pop_front();
    }

    /// Forgets every message (on a state change).
    pub fn reset(&mut self) {
        self.last_indexes.clear();
    }

    /// Messages in flight.
    pub fn count(&self) -> usize {
        self.last_indexes.len()
    }
}

/// The leader's view of one member.
#[derive(Clone, Debug)]
pub struct Progress {
    /// The member.
    pub id: NodeId,
    /// Highest index known to match the leader's log.
    pub match_index: Index,
    /// Next index to send.
    pub next_index: Index,
    /// Probing or replicating.
    pub state: ProgressState,
    /// In probe state: a message was sent and no answer or heartbeat has arrived since.
    pub probe_sent: bool,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Messages in flight (replicate state).
    pub inflights: Inflights,
    /// Learners replicate but do not vote or count toward a quorum.
    pub is_learner: bool,
    /// Highest ReadIndex round this member acknowledged in the leader's current term.
    pub read_round_acked: u64,
    /// The match index when the previous heartbeat answer arrived (to notice a stalled
    /// pipeline whose messages were lost).
    pub match_at_last_heartbeat: Index,
    /// The snapshot transfer in progress (snapshot state only).
    pub snapshot: SnapshotTransfer,
    /// Whether this member's acknowledgements count toward quorums (it says so in each one;
    /// a member rebuilt from an empty data directory says no).
    pub counted: bool,
    /// The commit index the last AppendEntries to this member carried.
    pub commit_sent: Index,
}

impl Progress {
    fn new(id: NodeId, next_index: Index, inflight_max: usize, is_learner: bool) -> Progress {
        Progress {
            id,
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            recent_active: false,
            inflights: Inflights::new(inflight_max),
            is_learner,
            read_round_acked: 0,
            match_at_last_heartbeat: 0,
            snapshot: SnapshotTransfer::default(),
            counted: true,
            commit_sent: 0,
        }
    }

    /// Resets to probing from `next_index` (on election or after a rejection).
    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Switches to pipelined replication after a successful match.
    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Starts streaming the snapshot at `index` of `total_bytes` bytes.
    pub fn become_snapshot(&mut self, index: Index, total_bytes: u64) {
        self.state = ProgressState::Snapshot;
        self.probe_sent = false;
        self.inflights.reset();
        self.snapshot = SnapshotTransfer {
            index,
            total_bytes,
            ..SnapshotTransfer::default()
        };
    }

    /// Records an acknowledgement up to `index`. Returns whether the match index moved.
    pub fn maybe_update(&mut self, index: Index) -> bool {
        let moved = index > self.match_index;
        if moved {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index + 1);
        moved
    }

    /// Handles a rejection of the append whose previous index was `rejected`, with the
    /// follower's hint `probe_index` of where the logs may match. Returns false when the
    /// rejection is stale (answers an older message) and was ignored.
    pub fn maybe_decrease_to(&mut self, rejected: Index, probe_index: Index) -> bool {
        if self.state == ProgressState::Snapshot {
            return false; // the snapshot transfer decides where replication resumes
        }
        if self.state == ProgressState::Replicate {
            if rejected <= self.match_index {
                return false;
            }
            self.next_index = self.match_index + 1;
            return true;
        }
        if self.next_index == 0 || self.next_index - 1 != rejected {
            return false;
        }
        self.next_index = rejected
            .min(probe_index + 1)
            .max(self.match_index + 1)
            .max(1);
        self.probe_sent = false;
        true
    }

    /// Whether the leader must wait before sending this member another append.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(),
            // Entries wait until the snapshot is installed.
            ProgressState::Snapshot => true,
        }
    }
}

/// All members' progress plus the membership they belong to.
///
/// Quorums follow the membership: outside a change, a majority of the voters; while the
/// membership is joint, a majority of the incoming voters *and* a majority of the outgoing
/// ones (Raft thesis §4.3), so that neither the old nor the new configuration can decide
/// alone.
#[derive(Clone, Debug)]
pub struct ProgressTracker {
    progress: Vec<Progress>,
    conf: ConfState,
    inflight_max: usize,
}

/// The value a majority of `voters` has reached, for a per-member value `value_of`.
fn majority_value(
    progress: &[Progress],
    voters: &[NodeId],
    value_of: &impl Fn(&Progress) -> u64,
) -> u64 {
    let mut values = [0u64; VOTERS_MAX];
    let mut count = 0;
    for p in progress.iter().filter(|p| voters.contains(&p.id)) {
        // A member that may have forgotten a newer term counts as having acknowledged
        // nothing, so a deposed leader can never reach a quorum through it.
        values[count] = if p.counted { value_of(p) } else { 0 };
        count += 1;
    }
    let values = &mut values[..count];
    values.sort_unstable_by(|a, b| b.cmp(a));
    values.get(voters.len() / 2).copied().unwrap_or(0)
}

/// Tallies `votes` within one set of voters: `Some(true)` won, `Some(false)` lost.
fn majority_tally(voters: &[NodeId], votes: &[(NodeId, bool)]) -> Option<bool> {
    let quorum = voters.len() / 2 + 1;
    let count = |want: bool| {
        votes
            .iter()
            .filter(|(id, granted)| *granted == want && voters.contains(id))
            .count()
    };
    if count(true) >= quorum {
        Some(true)
    } else if count(false) > voters.len() - quorum {
        Some(false)
    } else {
        None
    }
}

impl ProgressTracker {
    /// A tracker for `conf`; every member starts probing at `next_index`.
    pub fn new(conf: &ConfState, next_index: Index, inflight_max: usize) -> ProgressTracker {
        let mut tracker = ProgressTracker {
            progress: Vec::new(),
            conf: ConfState::default(),
            inflight_max,
        };
        tracker.apply_conf(conf, next_index);
        tracker
    }

    /// Switches to membership `conf`: members that stay keep their progress, new ones start
    /// probing at `next_index`, removed ones are forgotten.
    pub fn apply_conf(&mut self, conf: &ConfState, next_index: Index) {
        self.progress.retain(|p| conf.is_member(p.id));
        for id in conf.members() {
            let is_learner = !conf.is_voter(id);
            match self.progress.iter_mut().find(|p| p.id == id) {
                Some(p) => p.is_learner = is_learner,
                None => {
                    self.progress
                        .push(Progress::new(id, next_index, self.inflight_max, is_learner))
                }
            }
        }
        self.progress.sort_by_key(|p| p.id);
        self.conf = conf.clone();
    }

    /// The membership tracked.
    pub fn conf(&self) -> &ConfState {
        &self.conf
    }

    /// Resets every member to probing at `next_index` (a new leader's term begins).
    pub fn reset(&mut self, next_index: Index) {
        for p in &mut self.progress {
            *p = Progress::new(p.id, next_index, self.inflight_max, p.is_learner);
        }
    }

    /// The progress of member `id`.
    pub fn get(&self, id: NodeId) -> Option<&Progress> {
        self.progress.iter().find(|p| p.id == id)
    }

    /// Mutable progress of member `id`.
    pub fn get_mut(&mut self, id: NodeId) -> Option<&mut Progress> {
        self.progress.iter_mut().find(|p| p.id == id)
    }

    /// Every member's progress.
    pub fn iter(&self) -> impl Iterator<Item = &Progress> {
        self.progress.iter()
    }

    /// Every member's progress, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Progress> {
        self.progress.iter_mut()
    }

    /// Whether `id` is a member (voter or learner).
    pub fn contains(&self, id: NodeId) -> bool {
        self.get(id).is_some()
    }

    /// Whether `id` is a voter (in either half of a joint membership).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.conf.is_voter(id)
    }

    /// The largest value that a quorum has reached, for a per-voter value `value_of` (match
    /// index for commit, acknowledged read round for ReadIndex).
    pub fn quorum_value(&self, value_of: impl Fn(&Progress) -> u64) -> u64 {
        let incoming = majority_value(&self.progress, &self.conf.voters, &value_of);
        if self.conf.is_joint() {
            incoming.min(majority_value(
                &self.progress,
                &self.conf.voters_outgoing,
                &value_of,
            ))
        } else {
            incoming
        }
    }

    /// Whether a quorum has been heard from recently (for check-quorum).
    pub fn quorum_active(&self, self_id: NodeId) -> bool {
        let active = |voters: &[NodeId]| {
            let heard = self
                .progress
                .iter()
                .filter(|p| {
                    voters.contains(&p.id) && (p.id == self_id || (p.recent_active && p.counted))
                })
                .count();
            voters.is_empty() || heard > voters.len() / 2
        };
        active(&self.conf.voters) && active(&self.conf.voters_outgoing)
    }

    /// Tallies votes: `Some(true)` won, `Some(false)` lost, `None` still open. While joint,
    /// winning takes both majorities and losing either one loses.
    pub fn tally(&self, votes: &[(NodeId, bool)]) -> Option<bool> {
        let incoming = majority_tally(&self.conf.voters, votes);
        if !self.conf.is_joint() {
            return incoming;
        }
        match (incoming, majority_tally(&self.conf.voters_outgoing, votes)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(voters: &[NodeId]) -> ProgressTracker {
        let conf = ConfState {
            voters: voters.to_vec(),
            learners: vec![9],
            ..ConfState::default()
        };
        ProgressTracker::new(&conf, 1, 4)
    }

    #[test]
    fn quorum_value_is_the_majority_minimum_and_ignores_learners() {
        let mut t = tracker(&[1, 2, 3, 4, 5]);
        for (id, m) in [(1, 10), (2, 7), (3, 3), (4, 9), (5, 1), (9, 100)] {
            t.get_mut(id).unwrap().match_index = m;
        }
        assert_eq!(t.quorum_value(|p| p.match_index), 7);
    }

    #[test]
    fn tally_needs_a_majority_and_ignores_non_voters() {
        let t = tracker(&[1, 2, 3]);
        assert_eq!(t.tally(&[(1, true)]), None);
        assert_eq!(t.tally(&[(1, true), (9, true)]), None);
        assert_eq!(t.tally(&[(1, true), (2, true)]), Some(true));
        assert_eq!(t.tally(&[(1, true), (2, false), (3, false)]), Some(false));
    }

    #[test]
    fn a_joint_membership_needs_both_majorities() {
        let conf = ConfState {
            voters: vec![1, 2, 4],
            voters_outgoing: vec![1, 2, 3],
            learners: vec![9],
        };
        let mut t = ProgressTracker::new(&conf, 1, 4);
        for (id, m) in [(1, 10), (2, 2), (3, 9), (4, 1)] {
            t.get_mut(id).unwrap().match_index = m;
        }
        // Old {1,2,3}: 9 by a majority; new {1,2,4}: only 2.
        assert_eq!(t.quorum_value(|p| p.match_index), 2);
        assert_eq!(t.tally(&[(1, true), (3, true)]), None);
        assert_eq!(t.tally(&[(1, true), (3, true), (4, true)]), Some(true));
        assert_eq!(t.tally(&[(2, false), (4, false)]), Some(false));
        // Leaving the joint membership keeps the progress of those who stay.
        t.apply_conf(&ConfState::with_voters(&[1, 2, 4]), 7);
        assert!(!t.contains(3) && !t.contains(9));
        assert_eq!(t.get(1).unwrap().match_index, 10);
        assert_eq!(t.quorum_value(|p| p.match_index), 2);
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut t = tracker(&[1, 2]);
        let p = t.get_mut(2).unwrap();
        p.match_index = 5;
        p.become_replicate();
        p.next_index = 9;
        assert!(!p.maybe_decrease_to(4, 0));
        assert!(p.maybe_decrease_to(7, 0));
        assert_eq!(p.next_index, 6);
        p.become_probe();
        assert!(!p.maybe_decrease_to(9, 0));
    }

    #[test]
    fn inflight_window_fills_and_frees() {
        let mut w = Inflights::new(2);
        w.add(3);
        w.add(6);
        assert!(w.is_full());
        w.free_to(4);
        assert_eq!(w.count(), 1);
        w.free_to(6);
        assert_eq!(w.count(), 0);
    }
}
