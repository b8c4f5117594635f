//! The Raft node: state, configuration, role changes, ticks and message dispatch.
//!
//! Elections live in `election.rs`, replication in `replication.rs`, ReadIndex in
//! `read_index.rs`, and the output batch in `ready.rs`; they are all `impl Raft` blocks.

use std::collections::VecDeque;

use super::membership::ConfHistory;
use super::message::{Message, MessageBody};
use super::progress::ProgressTracker;
use super::raft_log::RaftLog;
use super::read_index::PendingRead;
use super::ready::ReadState;
use super::storage::Storage;
use crate::core::rng::Rng;
use crate::error::{Error, Result};
use crate::limits::{
    APPEND_BYTES_MAX, APPEND_ENTRIES_COUNT_MAX, ELECTION_TICKS_MAX, ELECTION_TICKS_MIN,
    ENTRY_BYTES_MAX, INFLIGHT_MESSAGES_MAX, OUTBOX_MESSAGES_MAX, VOTERS_MAX,
};
use crate::types::{ConfState, Entry, EntryKind, HardState, Index, NodeId, Payload, Term, NO_NODE};

/// Settings of one Raft node. [`Config::new`] gives the defaults a cluster on a LAN wants.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// Ticks without hearing from a leader before campaigning; the actual timeout is drawn
    /// from `[election_ticks, 2 * election_ticks)` after every reset.
    pub election_ticks: u32,
    /// Ticks between a leader's heartbeats (must be less than `election_ticks`).
    pub heartbeat_ticks: u32,
    /// Run a pre-vote round before a real election, so a node that was cut off cannot raise
    /// the cluster's term and depose a healthy leader when it returns.
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum within an election timeout,
    /// and voters ignore vote requests while their leader's lease holds.
    pub check_quorum: bool,
    /// AppendEntries messages in flight to one follower.
    pub inflight_messages_max: usize,
    /// Byte budget of one AppendEntries message.
    pub append_bytes_max: usize,
    /// Seed for the election-timeout jitter.
    pub seed: u64,
    /// Whether this node may vote and campaign. `false` for a member whose data directory was
    /// lost and re-created: it cannot remember whom it voted for, so voting again could elect
    /// two leaders in one term. It still replicates and acknowledges entries (which is safe),
    /// so the cluster's data re-replicates to it.
    pub may_vote: bool,
    /// Every other node the transport knows as a member of this cluster, whatever the
    /// membership in this node's log says (it may be stale: see `validate`). Leaders'
    /// messages from these are accepted; from anyone else only if the membership names them.
    pub peers: Vec<NodeId>,
}

impl Config {
    /// Defaults: election after 10 ticks, heartbeat every tick, pre-vote and check-quorum on.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            inflight_messages_max: INFLIGHT_MESSAGES_MAX,
            append_bytes_max: APPEND_BYTES_MAX,
            seed: id,
            may_vote: true,
            peers: Vec::new(),
        }
    }

    /// Checks every field against the limits.
    pub fn validate(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::InvalidConfig(why));
        if self.id == NO_NODE {
            return invalid("node id must be non-zero".into());
        }
        if !(ELECTION_TICKS_MIN..=ELECTION_TICKS_MAX).contains(&self.election_ticks) {
            return invalid(format!(
                "election_ticks {} is outside {ELECTION_TICKS_MIN}..={ELECTION_TICKS_MAX}",
                self.election_ticks
            ));
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return invalid(format!(
                "heartbeat_ticks {} must be at least 1 and below election_ticks {}",
                self.heartbeat_ticks, self.election_ticks
            ));
        }
        if !(1..=INFLIGHT_MESSAGES_MAX).contains(&self.inflight_messages_max) {
            return invalid(format!(
                "inflight_messages_max {} is outside 1..={INFLIGHT_MESSAGES_MAX}",
                self.inflight_messages_max
            ));
        }
        if !(1..=APPEND_BYTES_MAX).contains(&self.append_bytes_max) {
            return invalid(format!(
                "append_bytes_max {} is outside 1..={APPEND_BYTES_MAX}",
                self.append_bytes_max
            ));
        }
        Ok(())
    }
}

/// The role a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking whether an election could succeed, without raising its term.
    PreCandidate,
    /// Campaigning in its current term.
    Candidate,
    /// Leads its current term.
    Leader,
}

/// One Raft node. See the module documentation for how to drive it.
pub struct Raft<S: Storage> {
    pub(super) id: NodeId,
    pub(super) term: Term,
    pub(super) vote: NodeId,
    pub(super) leader: NodeId,
    pub(super) role: Role,
    pub(super) config: Config,
    pub(super) log: RaftLog<S>,
    pub(super) tracker: ProgressTracker,
    pub(super) votes: Vec<(NodeId, bool)>,
    /// The own vote of a candidate, counted only once its term and vote are durable.
    pub(super) self_vote_pending: bool,
    pub(super) rng: Rng,
    pub(super) election_elapsed: u32,
    pub(super) heartbeat_elapsed: u32,
    pub(super) randomized_election_ticks: u32,
    pub(super) transfer_target: NodeId,
    /// Messages that may be sent at once.
    pub(super) outbox: Vec<Message>,
    /// Messages that may be sent only after the next `Ready` is durable.
    pub(super) outbox_after_persist: Vec<Message>,
    /// The leader has appended entries followers have not been sent yet.
    pub(super) broadcast_pending: bool,
    /// The commit index moved and followers should hear of it.
    pub(super) commit_broadcast_pending: bool,
    /// The leader has committed an entry of its own term (needed before serving reads).
    pub(super) committed_in_term: bool,
    pub(super) uncommitted_bytes: usize,
    pub(super) pending_reads: VecDeque<PendingRead>,
    pub(super) read_round: u64,
    pub(super) read_states: Vec<ReadState>,
    /// The hard state last handed out in a `Ready`.
    pub(super) last_hard_state: HardState,
    pub(super) append_scratch: Vec<Entry>,
    /// A snapshot being received from the leader, chunk by chunk.
    pub(super) incoming_snapshot: Option<super::snapshot::IncomingSnapshot>,
    /// The memberships in the log; the newest is in force.
    pub(super) confs: ConfHistory,
}

impl<S: Storage> Raft<S> {
    /// A node over `storage`, resuming from its recorded hard state and membership.
    pub fn new(config: Config, storage: S) -> Result<Raft<S>> {
        config.validate()?;
        let (hard_state, conf) = storage.initial_state()?;
        conf.validate()
            .map_err(|why| Error::InvalidConfig(format!("the stored membership: {why}")))?;
        let log = RaftLog::new(storage, hard_state.commit)?;
        let confs = Self::recover_confs(&log, conf, hard_state.commit)?;
        let tracker = ProgressTracker::new(
            confs.current(),
            log.last_index() + 1,
            config.inflight_messages_max,
        );
        let mut raft = Raft {
            id: config.id,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: NO_NODE,
            role: Role::Follower,
            rng: Rng::new(config.seed),
            config,
            log,
            tracker,
            votes: Vec::with_capacity(VOTERS_MAX),
            self_vote_pending: false,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_ticks: 0,
            transfer_target: NO_NODE,
            outbox: Vec::new(),
            outbox_after_persist: Vec::new(),
            broadcast_pending: false,
            commit_broadcast_pending: false,
            committed_in_term: false,
            uncommitted_bytes: 0,
            pending_reads: VecDeque::new(),
            read_round: 0,
            read_states: Vec::new(),
            last_hard_state: hard_state,
            append_scratch: Vec::new(),
            incoming_snapshot: None,
            confs,
        };
        raft.reset_election_timer();
        Ok(raft)
    }

    /// The memberships in force after restarting: the stored one (the snapshot's or the
    /// bootstrap's), then every membership entry in the log, the last one winning.
    fn recover_confs(log: &RaftLog<S>, base: ConfState, committed: Index) -> Result<ConfHistory> {
        let mut confs = ConfHistory::new(log.first_index() - 1, base);
        let last = log.last_index();
        let mut next = log.first_index();
        let mut batch = Vec::new();
        while next <= last {
            batch.clear();
            log.entries(next, last + 1, APPEND_BYTES_MAX, &mut batch)?;
            for entry in batch.iter().filter(|e| e.kind == EntryKind::ConfChange) {
                let (conf, context) =
                    ConfState::decode_entry(entry.data.as_slice()).map_err(|why| {
                        Error::Corrupt(format!("membership entry {}: {why}", entry.index))
                    })?;
                confs.push(entry.index, conf, context);
            }
            next = batch.last().map_or(last + 1, |e| e.index + 1);
        }
        confs.compact(committed);
        Ok(confs)
    }

    // ----- getters -----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this node follows in its term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        (self.leader != NO_NODE).then_some(self.leader)
    }

    /// The commit index.
    pub fn commit_index(&self) -> Index {
        self.log.committed
    }

    /// Index of the last log entry.
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }

    /// The term of the entry at `index`, if held.
    pub fn log_term(&self, index: Index) -> Option<Term> {
        self.log.term(index).ok()
    }

    /// The highest index this node has applied (handed out in `committed_entries`).
    pub fn applied_index(&self) -> Index {
        self.log.applied
    }

    /// The current hard state (term, vote, commit).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    /// The members' progress (meaningful on the leader).
    pub fn tracker(&self) -> &ProgressTracker {
        &self.tracker
    }

    /// The log, for inspection by tests and the simulator.
    pub fn log(&self) -> &RaftLog<S> {
        &self.log
    }

    /// The durable storage, for the driver to write `Ready` contents into.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.log.storage
    }

    /// The durable storage.
    pub fn storage(&self) -> &S {
        &self.log.storage
    }

    /// Gives back the storage (on shutdown, or to simulate a crash and restart).
    pub fn into_storage(self) -> S {
        self.log.storage
    }

    // ----- inputs -----

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        // A commit index learned from heartbeats alone may have settled a membership.
        self.compact_confs();
        if self.may_campaign() && self.election_elapsed >= self.randomized_election_ticks {
            self.election_elapsed = 0;
            self.start_election(false);
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.tracker.quorum_active(self.id) {
                let term = self.term;
                self.become_follower(term, NO_NODE);
                return;
            }
            for p in self.tracker.iter_mut() {
                p.recent_active = false;
            }
            // A transfer that has not completed within an election timeout is abandoned.
            self.transfer_target = NO_NODE;
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Proposes one command. On the leader, the entry is appended and will be replicated with
    /// the next `Ready`; elsewhere it fails with [`Error::NotLeader`].
    pub fn propose(&mut self, data: Payload) -> Result<Index> {
        self.propose_batch(std::iter::once(data))
    }

    /// Proposes several commands at once; they are appended together and replicated in the
    /// same messages. Returns the index of the last one. Either all are accepted or none.
    pub fn propose_batch(&mut self, batch: impl IntoIterator<Item = Payload>) -> Result<Index> {
        self.check_can_propose()?;
        let term = self.term;
        let first_new = self.log.last_index() + 1;
        let mut index = first_new - 1;
        let mut bytes = 0usize;
        for data in batch {
            if data.len() > ENTRY_BYTES_MAX {
                self.discard_proposals_from(first_new);
                return Err(Error::EntryTooLarge {
                    bytes: data.len(),
                    max: ENTRY_BYTES_MAX,
                });
            }
            if index + 1 - first_new >= crate::limits::PROPOSAL_BATCH_COUNT_MAX as u64 {
                self.discard_proposals_from(first_new);
                return Err(Error::Busy("proposal batch"));
            }
            index += 1;
            bytes += data.len();
            self.log.push(Entry {
                term,
                index,
                kind: EntryKind::Normal,
                data,
            });
        }
        if bytes + self.uncommitted_bytes > crate::limits::UNCOMMITTED_BYTES_MAX {
            self.discard_proposals_from(first_new);
            return Err(Error::Busy("uncommitted log"));
        }
        self.uncommitted_bytes += bytes;
        self.broadcast_pending = index >= first_new || self.broadcast_pending;
        Ok(index)
    }

    pub(super) fn check_can_propose(&self) -> Result<()> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader(),
            });
        }
        if self.transfer_target != NO_NODE {
            return Err(Error::TransferInProgress);
        }
        Ok(())
    }

    /// Removes entries this call appended at `first_new` and after (a rejected batch).
    fn discard_proposals_from(&mut self, first_new: Index) {
        if self.log.last_index() >= first_new {
            self.log.truncate_unstable_from(first_new);
        }
    }

    /// Handles a message from another member. Invalid messages are rejected with an error and
    /// change nothing.
    pub fn step(&mut self, message: Message) -> Result<()> {
        self.validate(&message)?;
        if message.term > self.term && !self.step_higher_term(&message) {
            return Ok(());
        }
        if message.term < self.term {
            self.step_lower_term(&message);
            return Ok(());
        }
        match message.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => {
                self.handle_vote_request(&message)
            }
            MessageBody::PreVoteResponse { granted } | MessageBody::VoteResponse { granted } => {
                self.handle_vote_response(&message, granted)
            }
            MessageBody::Append { .. } => self.handle_append(message),
            MessageBody::AppendResponse { .. } => self.handle_append_response(&message),
            MessageBody::Heartbeat { commit, read_round } => {
                self.handle_heartbeat(&message, commit, read_round)
            }
            MessageBody::HeartbeatResponse {
                read_round,
                counted,
            } => self.handle_heartbeat_response(message.from, read_round, counted),
            MessageBody::InstallSnapshot { .. } => self.handle_install_snapshot(message),
            MessageBody::SnapshotProgress {
                index,
                received_bytes,
            } => self.handle_snapshot_progress(message.from, index, received_bytes),
            MessageBody::TimeoutNow => self.handle_timeout_now(),
            MessageBody::ReadIndex { request } => self.handle_forwarded_read(message.from, request),
            MessageBody::ReadIndexResponse { request, index } => {
                self.handle_read_index_response(&message, request, index)
            }
        }
        Ok(())
    }

    /// A message from a higher term. Returns whether to go on handling it.
    fn step_higher_term(&mut self, message: &Message) -> bool {
        match message.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => {
                let transfer = matches!(message.body, MessageBody::Vote { transfer: true, .. });
                let in_lease = self.config.check_quorum
                    && self.leader != NO_NODE
                    && self.election_elapsed < self.config.election_ticks;
                if in_lease && !transfer {
                    // Our leader was heard from recently: a healthy leader is not deposed by a
                    // node that merely lost contact with it.
                    return false;
                }
                if matches!(message.body, MessageBody::Vote { .. }) {
                    self.become_follower(message.term, NO_NODE);
                }
                true
            }
            MessageBody::PreVoteResponse { granted: true } => true,
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.become_follower(message.term, message.from);
                true
            }
            _ => {
                self.become_follower(message.term, NO_NODE);
                true
            }
        }
    }

    /// A message from an older term: tell a stale leader or candidate about the newer term.
    fn step_lower_term(&mut self, message: &Message) {
        let stale_leader = matches!(
            message.body,
            MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
        );
        if stale_leader && (self.config.check_quorum || self.config.pre_vote) {
            // With pre-vote or check-quorum, a node cut off from the leader does not raise its
            // term, so an old leader may never learn of the new term unless answered here.
            self.send(
                message.from,
                MessageBody::AppendResponse {
                    index: 0,
                    reject: true,
                    hint_index: 0,
                    hint_term: 0,
                    counted: self.config.may_vote,
                },
            );
        } else if matches!(message.body, MessageBody::PreVote { .. }) {
            self.send(
                message.from,
                MessageBody::PreVoteResponse { granted: false },
            );
        }
    }

    /// Rejects messages that are malformed or name nodes outside the cluster.
    fn validate(&self, message: &Message) -> Result<()> {
        if message.to != self.id {
            return Err(Error::InvalidMessage("addressed to another node"));
        }
        if message.from == self.id {
            return Err(Error::UnknownNode(message.from));
        }
        // A leader's messages are also accepted from a known peer that the membership in this
        // node's log does not name (yet): a member just added, or re-added after a removal,
        // has not seen the entries that name a newer leader, and a term has one leader
        // whoever it is. Everything else from a non-member (a vote request from a removed
        // node, an answer) is refused, so that a removed node cannot disrupt the cluster.
        let from_a_leader = matches!(
            message.body,
            MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
                | MessageBody::TimeoutNow
        );
        let known = self.tracker.contains(message.from)
            || (from_a_leader && self.config.peers.contains(&message.from));
        if !known {
            return Err(Error::UnknownNode(message.from));
        }
        if let MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit: _,
        } = &message.body
        {
            if *prev_term > message.term {
                return Err(Error::InvalidMessage(
                    "previous entry's term is in the future",
                ));
            }
            if entries.len() > APPEND_ENTRIES_COUNT_MAX {
                return Err(Error::InvalidMessage("too many entries in one append"));
            }
            let mut expected_index = prev_index.saturating_add(1);
            let mut expected_term_min = *prev_term;
            for entry in entries {
                if entry.data.len() > ENTRY_BYTES_MAX {
                    return Err(Error::EntryTooLarge {
                        bytes: entry.data.len(),
                        max: ENTRY_BYTES_MAX,
                    });
                }
                if entry.index != expected_index {
                    return Err(Error::InvalidMessage("append entries are not consecutive"));
                }
                if entry.term < expected_term_min || entry.term > message.term {
                    return Err(Error::InvalidMessage("append entry terms out of order"));
                }
                expected_index = expected_index.saturating_add(1);
                expected_term_min = entry.term;
            }
        }
        if let MessageBody::InstallSnapshot {
            meta,
            total_bytes,
            offset,
            chunk,
        } = &message.body
        {
            let end = offset.saturating_add(chunk.len() as u64);
            if *total_bytes > crate::limits::SNAPSHOT_BYTES_MAX as u64 || end > *total_bytes {
                return Err(Error::InvalidMessage("snapshot chunk out of bounds"));
            }
            if chunk.len() > APPEND_BYTES_MAX {
                return Err(Error::InvalidMessage("snapshot chunk too large"));
            }
            if meta.term > message.term || meta.index == 0 {
                return Err(Error::InvalidMessage("snapshot metadata is impossible"));
            }
            if meta.conf.validate().is_err() {
                return Err(Error::InvalidMessage("snapshot membership is impossible"));
            }
        }
        if message.term == self.term {
            self.validate_current_term(message)?;
        }
        Ok(())
    }

    /// Checks a current-term message against what this node knows.
    fn validate_current_term(&self, message: &Message) -> Result<()> {
        match message.body {
            MessageBody::AppendResponse { index, reject, .. }
                if self.role == Role::Leader && !reject && index > self.log.last_index() =>
            {
                return Err(Error::InvalidMessage(
                    "acknowledged index is beyond the leader's log",
                ));
            }
            MessageBody::HeartbeatResponse { read_round, .. }
                if self.role == Role::Leader && read_round > self.read_round =>
            {
                return Err(Error::InvalidMessage(
                    "acknowledged a read round never sent",
                ));
            }
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. }
                if self.role == Role::Leader =>
            {
                return Err(Error::InvalidMessage("a second leader in the same term"));
            }
            MessageBody::SnapshotProgress {
                index,
                received_bytes,
            } if self.role == Role::Leader => {
                let transfer = self.tracker.get(message.from).map(|p| p.snapshot);
                if transfer.is_some_and(|t| t.index == index && received_bytes > t.total_bytes) {
                    return Err(Error::InvalidMessage(
                        "acknowledged more snapshot bytes than exist",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ----- role transitions -----

    pub(super) fn reset_to_term(&mut self, term: Term) {
        if self.term != term {
            self.term = term;
            self.vote = NO_NODE;
        }
        self.leader = NO_NODE;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_election_timer();
        self.votes.clear();
        self.self_vote_pending = false;
        self.transfer_target = NO_NODE;
        self.committed_in_term = false;
        self.uncommitted_bytes = 0;
        self.pending_reads.clear();
        self.broadcast_pending = false;
        self.commit_broadcast_pending = false;
    }

    pub(super) fn reset_election_timer(&mut self) {
        let base = u64::from(self.config.election_ticks);
        self.randomized_election_ticks = self.rng.range(base, 2 * base) as u32;
    }

    /// Becomes a follower in `term`, following `leader` (or nobody).
    pub(super) fn become_follower(&mut self, term: Term, leader: NodeId) {
        self.reset_to_term(term);
        self.role = Role::Follower;
        self.leader = leader;
    }

    /// Becomes leader of the current term: resets progress and appends the term's no-op.
    pub(super) fn become_leader(&mut self) {
        debug_assert!(self.role == Role::Candidate);
        let term = self.term;
        self.reset_to_term(term);
        self.role = Role::Leader;
        self.leader = self.id;
        let last = self.log.last_index();
        self.tracker.reset(last + 1);
        let own_persisted = self.log.persisted_index();
        if let Some(own) = self.tracker.get_mut(self.id) {
            own.match_index = own_persisted;
            own.become_replicate();
            own.recent_active = true;
        }
        self.read_round = 0;
        self.log.push(Entry {
            term,
            index: last + 1,
            kind: EntryKind::NoOp,
            data: Payload::empty(),
        });
        self.broadcast_pending = true;
    }

    /// Queues a message to `to` in the current term.
    pub(super) fn send(&mut self, to: NodeId, body: MessageBody) {
        let term = self.term;
        self.send_with_term(to, term, body);
    }

    pub(super) fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let after_persist = body.is_response();
        let queue = if after_persist {
            &mut self.outbox_after_persist
        } else {
            &mut self.outbox
        };
        if queue.len() >= OUTBOX_MESSAGES_MAX {
            // Dropping is safe: Raft retransmits on heartbeat and timeouts.
            return;
        }
        queue.push(Message {
            from: self.id,
            to,
            term,
            body,
        });
    }
}
