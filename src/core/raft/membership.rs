//! Membership changes by joint consensus (Raft thesis §4.3).
//!
//! A change of voters goes through a *joint* membership: the leader appends an entry naming
//! both the outgoing and the incoming voters; from then on every decision needs a majority
//! of each. Once that entry is committed the leader appends the incoming membership alone,
//! and the change is complete when that one is committed. Learners come and go with a single
//! entry, since they never count toward a quorum.
//!
//! Every member switches to the newest membership in its log as soon as the entry is
//! appended, committed or not; a follower whose log is overwritten falls back to the newest
//! membership that remains (which is why the history of uncommitted ones is kept).
//!
//! Rules the leader enforces before proposing a change:
//! - it has committed an entry of its own term (otherwise a change could be decided by a
//!   quorum that a previous leader's uncommitted change no longer recognizes: the bug in
//!   single-server changes that Ongaro described in 2015);
//! - no other change is in progress (the newest membership in its log is committed);
//! - a learner is promoted only once its log is within [`PROMOTE_LAG_ENTRIES_MAX`] entries
//!   of the leader's, so that adding it does not stall commits while it catches up;
//! - the last voter is never removed.
//!
//! A leader that removed itself keeps leading until the membership without it is committed,
//! then hands leadership to the most up-to-date remaining voter and steps down.

use std::collections::VecDeque;

use super::node::{Raft, Role};
use super::storage::Storage;
use crate::error::{Error, Result};
use crate::limits::{
    APPEND_BYTES_MAX, LEARNERS_MAX, MEMBERSHIP_CONTEXT_BYTES_MAX, PROMOTE_LAG_ENTRIES_MAX,
    VOTERS_MAX,
};
use crate::types::{ConfState, Entry, EntryKind, Index, NodeId, Payload, NO_NODE};

/// A change of membership, as a leader proposes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChange {
    /// Adds a member that replicates the log without voting.
    AddLearner(NodeId),
    /// Makes a learner a voter (refused until it has caught up).
    Promote(NodeId),
    /// Removes a voter or a learner (the leader itself included).
    Remove(NodeId),
}

impl std::fmt::Display for ConfChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfChange::AddLearner(id) => write!(f, "add learner {id}"),
            ConfChange::Promote(id) => write!(f, "promote {id}"),
            ConfChange::Remove(id) => write!(f, "remove {id}"),
        }
    }
}

/// The memberships in the log: the newest committed one and every newer (uncommitted) one,
/// by the index of their entry. The last is in force.
///
/// Bounded: a leader appends a membership only once the previous one is committed, so the
/// uncommitted ones a follower holds are few; the committed ones before the newest are
/// dropped as the commit index passes them.
#[derive(Clone, Debug)]
pub(super) struct ConfHistory {
    entries: VecDeque<(Index, ConfState)>,
    /// The context of the membership in force (copied into the entry that leaves a joint
    /// membership, so that it carries the same addresses).
    context: Payload,
}

impl ConfHistory {
    /// A history holding `conf`, in force from `index` (a snapshot's, or 0 for the bootstrap
    /// membership).
    pub(super) fn new(index: Index, conf: ConfState) -> ConfHistory {
        ConfHistory {
            entries: VecDeque::from([(index, conf)]),
            context: Payload::empty(),
        }
    }

    /// The membership in force.
    pub(super) fn current(&self) -> &ConfState {
        &self.entries.back().expect("a history is never empty").1
    }

    /// The index of the entry that set the membership in force.
    pub(super) fn current_index(&self) -> Index {
        self.entries.back().expect("a history is never empty").0
    }

    /// Adds a membership newer than every one held, with its entry's context.
    pub(super) fn push(&mut self, index: Index, conf: ConfState, context: &[u8]) {
        self.entries.push_back((index, conf));
        self.context = Payload::from_slice(context);
    }

    /// Forgets memberships set at `index` or later (their entries were overwritten); the
    /// oldest one is always kept.
    fn truncate_from(&mut self, index: Index) {
        while self.entries.len() > 1 && self.entries.back().is_some_and(|(i, _)| *i >= index) {
            self.entries.pop_back();
        }
    }

    /// Drops memberships that a newer committed one replaced.
    pub(super) fn compact(&mut self, committed: Index) {
        while self.entries.len() > 1 && self.entries[1].0 <= committed {
            self.entries.pop_front();
        }
    }
}

impl<S: Storage> Raft<S> {
    /// The membership in force on this node (the newest in its log).
    pub fn conf(&self) -> &ConfState {
        self.confs.current()
    }

    /// The context stored with the newest membership entry in the log (empty when the
    /// membership came from a snapshot or the bootstrap).
    pub fn conf_context(&self) -> &[u8] {
        self.confs.context.as_slice()
    }

    /// The index of the entry that set the membership in force (0 for the bootstrap one).
    pub fn conf_index(&self) -> Index {
        self.confs.current_index()
    }

    /// Sets the other nodes the transport knows as members (see `Config::peers`): leaders'
    /// messages from them are accepted even before the membership in this node's log names
    /// them.
    pub fn set_peers(&mut self, mut peers: Vec<NodeId>) {
        peers.sort_unstable();
        peers.dedup();
        self.config.peers = peers;
    }

    /// Whether this node may start an election: it votes in the membership in force, or in
    /// one its log holds that is not yet superseded by a committed one. The second case is
    /// for liveness: a voter whose log holds an uncommitted membership without it may have
    /// the longest log, which the others need before they can elect anyone; it campaigns,
    /// leads until the membership without it commits, then hands over.
    pub(super) fn may_campaign(&self) -> bool {
        self.confs
            .entries
            .iter()
            .any(|(_, conf)| conf.is_voter(self.id))
    }

    /// Forgets memberships that a committed newer one replaced.
    pub(super) fn compact_confs(&mut self) {
        self.confs.compact(self.log.committed);
    }

    /// Whether a membership change is in progress: the newest membership in the log is not
    /// committed yet, or it is joint.
    pub fn conf_change_pending(&self) -> bool {
        self.confs.current_index() > self.log.committed || self.conf().is_joint()
    }

    /// Proposes a membership change (on the leader). Returns the index of its entry; a voter
    /// change completes only when the leader's follow-up entry (leaving the joint membership)
    /// is committed, which [`Raft::conf_change_pending`] reports.
    ///
    /// `context` is stored with the membership (opaque to consensus, at most
    /// `MEMBERSHIP_CONTEXT_BYTES_MAX` bytes): the runtime records the members' addresses there.
    pub fn propose_conf_change(&mut self, change: ConfChange, context: &[u8]) -> Result<Index> {
        self.check_can_propose()?;
        if context.len() > MEMBERSHIP_CONTEXT_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "a membership context of {} bytes exceeds {MEMBERSHIP_CONTEXT_BYTES_MAX}",
                context.len()
            )));
        }
        if !self.committed_in_term {
            return Err(Error::Busy(
                "membership change: the leader has not committed an entry of its term yet",
            ));
        }
        if self.conf_change_pending() {
            return Err(Error::Busy(
                "membership change: another change is in progress",
            ));
        }
        let conf = self.conf().clone();
        let refuse = |why: String| Err(Error::Rejected(format!("{change}: {why}")));
        let next = match change {
            ConfChange::AddLearner(id) => {
                if id == NO_NODE {
                    return refuse("node id 0 is reserved".into());
                }
                if conf.is_member(id) {
                    return refuse(format!("node {id} is already a member"));
                }
                if conf.learners.len() >= LEARNERS_MAX {
                    return refuse(format!("the cluster has {LEARNERS_MAX} learners already"));
                }
                let mut next = conf.clone();
                next.learners.push(id);
                next
            }
            ConfChange::Promote(id) => {
                if !conf.learners.contains(&id) {
                    return refuse(format!("node {id} is not a learner"));
                }
                if conf.voters.len() >= VOTERS_MAX {
                    return refuse(format!("the cluster has {VOTERS_MAX} voters already"));
                }
                let matched = self.tracker.get(id).map_or(0, |p| p.match_index);
                let behind = self.log.last_index().saturating_sub(matched);
                if behind > PROMOTE_LAG_ENTRIES_MAX {
                    return refuse(format!(
                        "node {id} is {behind} entries behind the leader (at most \
                         {PROMOTE_LAG_ENTRIES_MAX}): promote it once it has caught up"
                    ));
                }
                ConfState {
                    voters: conf.voters.iter().copied().chain([id]).collect(),
                    learners: conf.learners.iter().copied().filter(|&l| l != id).collect(),
                    voters_outgoing: conf.voters.clone(),
                }
            }
            ConfChange::Remove(id) => {
                if conf.learners.contains(&id) {
                    let mut next = conf.clone();
                    next.learners.retain(|&l| l != id);
                    next
                } else if conf.voters.contains(&id) {
                    if conf.voters.len() == 1 {
                        return refuse("the last voter cannot be removed".into());
                    }
                    ConfState {
                        voters: conf.voters.iter().copied().filter(|&v| v != id).collect(),
                        learners: conf.learners.clone(),
                        voters_outgoing: conf.voters.clone(),
                    }
                } else {
                    return refuse(format!("node {id} is not a member"));
                }
            }
        };
        Ok(self.append_conf(next, context))
    }

    /// Appends a membership entry of the current term on the leader; it takes effect now.
    fn append_conf(&mut self, conf: ConfState, context: &[u8]) -> Index {
        debug_assert!(conf.validate().is_ok());
        let mut data = conf.encode();
        data.extend_from_slice(context);
        let entry = Entry {
            term: self.term,
            index: self.log.last_index() + 1,
            kind: EntryKind::ConfChange,
            data: Payload::from(data),
        };
        let index = entry.index;
        self.log.push(entry.clone());
        self.entries_appended(std::slice::from_ref(&entry));
        self.broadcast_pending = true;
        index
    }

    /// Entries were appended to the log (overwriting any from the first one's index on):
    /// membership entries among them take effect, overwritten ones stop having effect.
    pub(super) fn entries_appended(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let before = self.confs.current_index();
        self.confs.truncate_from(first.index);
        for entry in entries.iter().filter(|e| e.kind == EntryKind::ConfChange) {
            match ConfState::decode_entry(entry.data.as_slice()) {
                Ok((conf, context)) => self.confs.push(entry.index, conf, context),
                // The leader validated it; a member that cannot read it keeps its membership
                // rather than guess (and the simulator's invariants would notice).
                Err(_) => continue,
            }
        }
        self.confs.compact(self.log.committed);
        if self.confs.current_index() != before {
            self.apply_current_conf();
        }
    }

    /// A snapshot replaced the log: its membership is the one in force.
    pub(super) fn conf_restored(&mut self, index: Index, conf: ConfState) {
        let context = std::mem::take(&mut self.confs.context);
        self.confs = ConfHistory::new(index, conf);
        // The driver restores the addresses from the snapshot's state; keep what we had.
        self.confs.context = context;
        self.apply_current_conf();
    }

    fn apply_current_conf(&mut self) {
        let conf = self.confs.current().clone();
        let next = self.log.last_index() + 1;
        self.tracker.apply_conf(&conf, next);
        if self.role == Role::Leader {
            // New members are probed at once instead of waiting for the next heartbeat.
            self.broadcast_pending = true;
        }
    }

    /// The leader's commit index moved: a committed joint membership is followed by the
    /// incoming one alone.
    pub(super) fn leader_committed(&mut self) {
        self.confs.compact(self.log.committed);
        if self.role != Role::Leader || self.confs.current_index() > self.log.committed {
            return;
        }
        let conf = self.conf().clone();
        if conf.is_joint() {
            let context = self.confs.context.clone();
            self.append_conf(
                ConfState {
                    voters_outgoing: Vec::new(),
                    ..conf
                },
                context.as_slice(),
            );
        }
    }

    /// Whether this node leads under a committed membership in which it does not vote (it
    /// removed itself): it must hand over and step down, which the next `Ready` does.
    pub(super) fn leads_without_a_vote(&self) -> bool {
        self.role == Role::Leader
            && !self.conf().is_voter(self.id)
            && self.confs.current_index() <= self.log.committed
    }

    /// Asks the most up-to-date voter to campaign at once (TimeoutNow), then follows. Called
    /// from `ready`, between inputs, so that no handler is left half-way as leader.
    pub(super) fn hand_over_and_step_down(&mut self) {
        let last = self.log.last_index();
        let successor = self
            .tracker
            .iter()
            .filter(|p| p.id != self.id && self.tracker.is_voter(p.id))
            .max_by_key(|p| p.match_index)
            .filter(|p| p.match_index == last)
            .map(|p| p.id);
        if let Some(successor) = successor {
            self.send(successor, super::message::MessageBody::TimeoutNow);
        }
        let term = self.term;
        self.become_follower(term, NO_NODE);
    }
}

// A membership entry must always fit one append message.
const _: () = assert!(
    16 + 8 * (2 * VOTERS_MAX + LEARNERS_MAX) + MEMBERSHIP_CONTEXT_BYTES_MAX < APPEND_BYTES_MAX
);
