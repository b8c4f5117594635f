//! The output batch of the consensus core, and the `advance` that acknowledges it.

use super::message::Message;
use super::node::{Raft, Role};
use super::storage::Storage;
use crate::types::{Entry, HardState, Index, Snapshot, Term};

/// A linearizable read confirmed by the leader: serve it once the applied index reaches
/// `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The identifier given to [`Raft::read_index`].
    pub request: u64,
    /// The commit index the read must observe.
    pub index: Index,
}

/// Identifies what a `Ready` asked to persist; hand it back to [`Raft::advance`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PersistedMarker {
    /// Index of the last entry in the `Ready` (0 when it had none).
    pub last_index: Index,
    /// Term of that entry.
    pub last_term: Term,
    /// Index of the snapshot in the `Ready` (0 when it had none).
    pub snapshot_index: Index,
}

/// Everything the driver must do after feeding inputs; see the module documentation of
/// [`crate::core::raft`] for the order.
#[derive(Debug, Default)]
pub struct Ready {
    /// Send now, before or while persisting.
    pub messages: Vec<Message>,
    /// A snapshot from the leader: make it durable (replacing the log up to its index) before
    /// `entries`, and restore the state machine from it before applying `committed_entries`.
    pub snapshot: Option<Snapshot>,
    /// Append to storage, overwriting any conflicting suffix; make durable.
    pub entries: Vec<Entry>,
    /// Record if `Some`; make durable together with `entries`.
    pub hard_state: Option<HardState>,
    /// Send only after `entries` and `hard_state` are durable.
    pub persisted_messages: Vec<Message>,
    /// Apply in order.
    pub committed_entries: Vec<Entry>,
    /// Serve these reads once applied through their index.
    pub read_states: Vec<ReadState>,
    marker: PersistedMarker,
}

impl Ready {
    /// What to hand to [`Raft::advance`] once `entries` and `hard_state` are durable.
    pub fn persisted_marker(&self) -> PersistedMarker {
        self.marker
    }
}

impl<S: Storage> Raft<S> {
    /// Whether there is anything for the driver to do.
    pub fn has_ready(&self) -> bool {
        !self.outbox.is_empty()
            || !self.outbox_after_persist.is_empty()
            || !self.read_states.is_empty()
            || self.log.has_unpersisted()
            || self.log.has_pending_snapshot()
            || self.log.has_applicable()
            || self.hard_state() != self.last_hard_state
            || (self.role == Role::Leader
                && (self.broadcast_pending || self.commit_broadcast_pending))
            || self.has_unassigned_reads()
            || self.leads_without_a_vote()
    }

    /// Takes the pending work. Call [`Raft::advance`] before the next `ready`.
    pub fn ready(&mut self) -> Ready {
        if self.leads_without_a_vote() {
            self.hand_over_and_step_down();
        }
        if self.role == Role::Leader {
            if self.broadcast_pending || self.commit_broadcast_pending {
                self.broadcast_append();
            }
            self.assign_read_round();
        }
        let mut ready = Ready {
            snapshot: self.log.take_pending_snapshot(),
            ..Ready::default()
        };
        if let Some(snapshot) = &ready.snapshot {
            ready.marker.snapshot_index = snapshot.meta.index;
        }
        self.log.take_unpersisted(&mut ready.entries);
        if let Some(last) = ready.entries.last() {
            ready.marker.last_index = last.index;
            ready.marker.last_term = last.term;
        }
        let hard_state = self.hard_state();
        if hard_state != self.last_hard_state {
            ready.hard_state = Some(hard_state);
            self.last_hard_state = hard_state;
        }
        ready.messages = std::mem::take(&mut self.outbox);
        ready.persisted_messages = std::mem::take(&mut self.outbox_after_persist);
        ready.read_states = std::mem::take(&mut self.read_states);
        let applicable = self.log.applicable_index();
        if applicable > self.log.applied {
            let from = self.log.applied + 1;
            let budget = self.config.append_bytes_max;
            if self
                .log
                .entries(from, applicable + 1, budget, &mut ready.committed_entries)
                .is_ok()
            {
                if let Some(last) = ready.committed_entries.last() {
                    self.log.applied = last.index;
                }
            }
        }
        ready
    }

    /// Acknowledges that the `Ready` identified by `marker` is durable (or needed no write).
    pub fn advance(&mut self, marker: PersistedMarker) {
        if marker.snapshot_index > 0 {
            self.log.snapshot_stable(marker.snapshot_index);
        }
        if marker.last_index > 0 {
            self.log.stable_to(marker.last_index, marker.last_term);
        }
        match self.role {
            Role::Leader => {
                let persisted = self.log.persisted_index();
                self.leader_persisted(persisted);
            }
            Role::Candidate => self.count_self_vote(),
            _ => {}
        }
    }
}
