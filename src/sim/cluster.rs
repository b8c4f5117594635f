//! A simulated cluster: Raft nodes over in-memory storage, a simulated network, virtual time,
//! and the safety checks run after every step.
//!
//! Each node is driven exactly as a real runtime drives the core (see the Ready contract in
//! `core::raft`): send `messages`, persist `entries` and `hard_state`, `advance`, send
//! `persisted_messages`, apply `committed_entries`, serve `read_states`. A crash throws away
//! the node's memory and keeps only its `MemStorage`; a *torn* crash happens in the middle of
//! handling a `Ready`, after its messages went out and with only a prefix of its entries
//! written, so what was never durable is lost exactly as after a power cut.

use super::coord::{CoordChecks, CoordClient, Watcher, KEEPALIVE_MARK};
use super::history::{OpInput, OpOutput, Operation};
use super::invariants::{Invariants, Violation};
use super::kv::{Command, KvStore};
use super::network::{Event, Network, TICK_US};
use super::workload::Client;
use crate::core::raft::{ConfChange, Config, MemStorage, Raft, Role, Storage};
use crate::core::rng::Rng;
use crate::core::state::lease::SessionClock;
use crate::core::state::watch::WatchHub;
use crate::core::state::StateMachine;
use crate::error::Result;
use crate::types::{ConfState, EntryKind, Index, NodeId, Payload, Snapshot, Term};

/// `Ready` batches handled per node per step before yielding (a bound, never reached in
/// practice: each round consumes the node's pending work).
const READY_ROUNDS_MAX: usize = 64;

/// Settings of a simulated cluster's Raft nodes.
#[derive(Clone, Debug)]
pub struct RaftSettings {
    /// Election timeout in ticks.
    pub election_ticks: u32,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: u32,
    /// Pre-vote on or off.
    pub pre_vote: bool,
    /// Check-quorum on or off.
    pub check_quorum: bool,
    /// Byte budget of one AppendEntries message (small values split replication into many
    /// messages, which exposes ordering bugs).
    pub append_bytes_max: usize,
    /// AppendEntries messages in flight per follower.
    pub inflight_messages_max: usize,
}

impl Default for RaftSettings {
    fn default() -> RaftSettings {
        RaftSettings {
            election_ticks: 10,
            heartbeat_ticks: 2,
            pre_vote: true,
            check_quorum: true,
            append_bytes_max: crate::limits::APPEND_BYTES_MAX,
            inflight_messages_max: crate::limits::INFLIGHT_MESSAGES_MAX,
        }
    }
}

/// One simulated node.
pub(super) struct SimNode {
    pub(super) id: NodeId,
    /// `None` while crashed.
    pub(super) raft: Option<Raft<MemStorage>>,
    /// The durable state while crashed.
    pub(super) durable: Option<MemStorage>,
    pub(super) kv: KvStore,
    /// The product's state machine (sessions and primitives), next to the simulator's KV.
    pub(super) state: StateMachine,
    /// Session deadlines, kept while the node leads.
    pub(super) session_clock: SessionClock,
    /// The node's event history and its watchers' watches.
    pub(super) hub: WatchHub,
    /// How fast the node's clock runs against true time, in parts per million (within the
    /// drift the sessions allow for).
    pub(super) clock_ppm: i64,
    /// How far the node's clock jumped forward, in total.
    pub(super) clock_jump_us: u64,
    /// Confirmed reads waiting for the applied index to reach theirs: (request, index).
    pub(super) reads: Vec<(u64, Index)>,
    pub(super) incarnation: u32,
    /// Crash in the middle of handling the next `Ready`.
    pub(super) torn_crash_pending: bool,
    /// Frozen (a long GC or VM pause) until this virtual time.
    pub(super) paused_until: u64,
    /// Per-node tick interval (clocks drift a little apart).
    pub(super) tick_us: u64,
    /// The tick interval the node's clock returns to when clock faults heal.
    pub(super) nominal_tick_us: u64,
    /// Role and term last seen, to trace changes.
    pub(super) last_role: (Role, Term),
    /// Applied index of the last snapshot this node took.
    pub(super) snapshot_index: Index,
    /// Entries applied between two snapshots.
    pub(super) snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, for slow followers.
    pub(super) compaction_margin: u64,
    /// A bit flipped in a durable record: the node will refuse to start on it.
    pub(super) disk_corrupted: bool,
    /// The node was rebuilt from an empty data directory and may no longer vote.
    pub(super) may_vote: bool,
}

/// A simulated cluster and everything observed in it.
pub struct Cluster {
    /// Virtual time, in microseconds.
    pub now: u64,
    pub(super) nodes: Vec<SimNode>,
    pub(super) network: Network,
    pub(super) rng: Rng,
    pub(super) settings: RaftSettings,
    pub(super) invariants: Invariants,
    pub(super) history: Vec<Operation>,
    pub(super) clients: Vec<Client>,
    /// Writes whose success a client saw: (index, term) of their entries.
    pub(super) acked_writes: Vec<(Index, Term)>,
    /// The first violation seen; the run stops at it.
    pub violation: Option<Violation>,
    /// Events processed.
    pub steps: u64,
    /// Malformed messages the nodes correctly refused.
    pub bad_inputs_rejected: u64,
    /// Every confirmed read seen, oldest first: (node, request, read index). Bounded by
    /// [`crate::limits::SIM_HISTORY_OPERATIONS_MAX`]; tests inspect it.
    pub read_log: Vec<(NodeId, u64, Index)>,
    /// Messages sent, by kind, for tests that bound the traffic a mechanism needs.
    pub messages_by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Print role changes, crashes and restarts to stderr (`ACCORD_SIM_TRACE=1`).
    pub trace: bool,
    /// Faults the nemesis injects.
    pub(super) faults: super::nemesis::FaultSet,
    /// Virtual time at which the nemesis stops.
    pub(super) faults_until: u64,
    /// Nodes whose disk was corrupted in this run (never more than a minority).
    pub(super) corrupted_nodes: usize,
    /// Starts refused because the node detected a corrupt disk.
    pub corruptions_detected: u64,
    /// The first voters (ids 1..=n); nodes after them are spares, started when added.
    voters: Vec<NodeId>,
    /// Membership changes the nodes accepted (proposed and appended by a leader).
    pub conf_changes: u64,
    /// Nodes and spares: every id from 1 to this is a peer the transport knows.
    node_ids: usize,
    /// Coordination clients (sessions, locks, elections, queues).
    pub(super) coord_clients: Vec<CoordClient>,
    /// Watchers streaming members' change events.
    pub(super) watchers: Vec<Watcher>,
    /// What the coordination checks found.
    pub(super) coord: CoordChecks,
    /// Randomness of the coordination workload (its own stream, so that runs without it
    /// keep their schedules).
    pub(super) coord_rng: Rng,
}

impl Cluster {
    /// A healthy cluster of `nodes` voters, ids 1..=nodes, with no clients or faults yet.
    pub fn new(nodes: usize, seed: u64, settings: RaftSettings) -> Cluster {
        Cluster::with_spares(nodes, 0, seed, settings)
    }

    /// Like [`Cluster::new`], plus `spares` nodes (ids after the voters) that are not members:
    /// they start only once a membership change adds them.
    pub fn with_spares(nodes: usize, spares: usize, seed: u64, settings: RaftSettings) -> Cluster {
        assert!(
            nodes <= crate::limits::SIM_NODES_MAX && spares <= crate::limits::SIM_SPARES_MAX,
            "at most {} nodes and {} spares",
            crate::limits::SIM_NODES_MAX,
            crate::limits::SIM_SPARES_MAX
        );
        let mut rng = Rng::new(seed);
        let voters: Vec<NodeId> = (1..=nodes as NodeId).collect();
        let network = Network::new(rng.fork());
        let mut cluster = Cluster {
            now: 0,
            nodes: Vec::with_capacity(nodes),
            network,
            rng,
            settings,
            invariants: Invariants::default(),
            history: Vec::new(),
            clients: Vec::new(),
            acked_writes: Vec::new(),
            violation: None,
            steps: 0,
            bad_inputs_rejected: 0,
            read_log: Vec::new(),
            messages_by_kind: std::collections::BTreeMap::new(),
            trace: std::env::var_os("ACCORD_SIM_TRACE").is_some(),
            faults: super::nemesis::FaultSet::default(),
            faults_until: 0,
            corrupted_nodes: 0,
            corruptions_detected: 0,
            voters: voters.clone(),
            conf_changes: 0,
            node_ids: nodes + spares,
            coord_clients: Vec::new(),
            watchers: Vec::new(),
            coord: CoordChecks::default(),
            coord_rng: Rng::new(seed ^ 0xC00D_5EED_0000_0001),
        };
        for id in 1..=(nodes + spares) as NodeId {
            // Clocks drift: each node's tick lasts within ±2% of the nominal tick.
            let tick_us = cluster
                .rng
                .range(TICK_US * 98 / 100, TICK_US * 102 / 100 + 1);
            cluster.nodes.push(SimNode {
                id,
                raft: None,
                // A spare has no storage until it is added.
                durable: voters
                    .contains(&id)
                    .then(|| MemStorage::new_with_voters(&voters)),
                kv: KvStore::default(),
                state: StateMachine::new(),
                session_clock: SessionClock::new(),
                hub: WatchHub::new(0),
                // Within ±5 %: inside the 10 % the sessions' safety clock allows for.
                clock_ppm: cluster.coord_rng.range(0, 100_001) as i64 - 50_000,
                clock_jump_us: 0,
                reads: Vec::new(),
                incarnation: 0,
                torn_crash_pending: false,
                paused_until: 0,
                tick_us,
                nominal_tick_us: tick_us,
                last_role: (Role::Follower, 0),
                snapshot_index: 0,
                snapshot_every: cluster.rng.range(50, 150),
                compaction_margin: cluster.rng.range(0, 30),
                disk_corrupted: false,
                may_vote: true,
            });
            cluster.restart(id);
        }
        cluster
    }

    // ----- inspection -----

    /// The node's Raft state, if it is running.
    pub fn raft(&self, id: NodeId) -> Option<&Raft<MemStorage>> {
        self.node(id).and_then(|n| n.raft.as_ref())
    }

    /// Mutable access to a running node's Raft state (tests use it to inject inputs).
    pub fn raft_mut(&mut self, id: NodeId) -> Option<&mut Raft<MemStorage>> {
        self.node_mut(id).and_then(|n| n.raft.as_mut())
    }

    /// The ids of all nodes (members or not).
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The membership in force: the leader's, or else that of the running node with the
    /// longest log, or else the first voters.
    pub fn membership(&self) -> ConfState {
        let running = self.nodes.iter().filter_map(|n| n.raft.as_ref());
        let leader = self.leader().and_then(|id| self.raft(id));
        leader
            .or_else(|| running.max_by_key(|r| (r.term(), r.last_index())))
            .map(|r| r.conf().clone())
            .unwrap_or_else(|| ConfState::with_voters(&self.voters))
    }

    /// The members (voters and learners) of [`Cluster::membership`].
    pub fn members(&self) -> Vec<NodeId> {
        self.membership().members()
    }

    /// The membership node `id` is in, running or not: a crashed node's log may hold a
    /// membership nobody running has, which comes into force if it leads again.
    pub(super) fn stored_conf(&self, id: NodeId) -> Option<ConfState> {
        let node = self.node(id)?;
        if let Some(raft) = &node.raft {
            return Some(raft.conf().clone());
        }
        let storage = node.durable.as_ref()?;
        let newest = storage
            .all_entries()
            .iter()
            .rev()
            .find(|e| e.kind == EntryKind::ConfChange)
            .and_then(|e| ConfState::decode(e.data.as_slice()).ok());
        Some(newest.unwrap_or_else(|| storage.conf_state().clone()))
    }

    /// Whether node `id` cannot vote: its disk is corrupt, or it was rebuilt empty and has
    /// forgotten its votes.
    pub(super) fn cannot_vote(&self, id: NodeId) -> bool {
        self.node(id)
            .is_some_and(|n| n.disk_corrupted || !n.may_vote)
    }

    /// Whether node `id` has never been started (a spare not added yet).
    pub fn is_unprovisioned(&self, id: NodeId) -> bool {
        self.node(id)
            .is_some_and(|n| n.raft.is_none() && n.durable.is_none() && !n.disk_corrupted)
    }

    /// Proposes a membership change on node `id` (the leader). A spare added as a learner
    /// is started, with the new membership, so that it can receive the log.
    pub fn propose_conf_change(&mut self, id: NodeId, change: ConfChange) -> Result<Index> {
        let raft = self
            .raft_mut(id)
            .ok_or(crate::error::Error::NotLeader { leader: None })?;
        let index = raft.propose_conf_change(change, &[])?;
        let conf = raft.conf().clone();
        self.conf_changes += 1;
        if self.trace {
            eprintln!(
                "t={} node {id} proposed {change} at {index}: {conf}",
                self.now
            );
        }
        if let ConfChange::AddLearner(new) = change {
            if self.is_unprovisioned(new) {
                if let Some(node) = self.node_mut(new) {
                    node.durable = Some(MemStorage::new_with_conf(conf));
                }
                self.restart(new);
            } else if !self.is_up(new) {
                self.restart(new);
            }
        }
        self.process(id);
        Ok(index)
    }

    /// The leader of the highest term among running nodes, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|n| n.raft.as_ref())
            .filter(|r| r.role() == Role::Leader)
            .max_by_key(|r| r.term())
            .map(|r| r.id())
    }

    /// The value a node's replica holds for `key`.
    pub fn kv_value(&self, id: NodeId, key: u32) -> Option<u64> {
        self.node(id).and_then(|n| n.kv.get(key))
    }

    /// The recorded client history.
    pub fn history(&self) -> &[Operation] {
        &self.history
    }

    /// Number of times some node became leader.
    pub fn elections(&self) -> u64 {
        self.invariants.elections
    }

    /// Highest index applied anywhere.
    pub fn applied_anywhere(&self) -> Index {
        self.invariants.applied_len()
    }

    /// One line describing every node (role, term, log and commit positions, and the
    /// leader's view of its followers), for failure reports.
    pub fn describe_nodes(&self) -> String {
        let mut parts = Vec::new();
        for node in &self.nodes {
            let Some(raft) = node.raft.as_ref() else {
                parts.push(format!("node {} down", node.id));
                continue;
            };
            let mut part = format!(
                "node {} {:?} term={} last={} commit={} applied={} ({}{})",
                node.id,
                raft.role(),
                raft.term(),
                raft.last_index(),
                raft.commit_index(),
                raft.applied_index(),
                raft.conf(),
                if node.may_vote { "" } else { ", may not vote" }
            );
            if raft.role() == Role::Leader {
                for p in raft.tracker().iter() {
                    part += &format!(
                        " [{}: match={} next={} {:?} paused={} inflight={}]",
                        p.id,
                        p.match_index,
                        p.next_index,
                        p.state,
                        p.is_paused(),
                        p.inflights.count()
                    );
                }
            }
            parts.push(part);
        }
        parts.join("; ")
    }

    pub(super) fn node(&self, id: NodeId) -> Option<&SimNode> {
        self.nodes.get((id as usize).checked_sub(1)?)
    }

    pub(super) fn node_mut(&mut self, id: NodeId) -> Option<&mut SimNode> {
        self.nodes.get_mut((id as usize).checked_sub(1)?)
    }

    // ----- control -----

    /// Proposes a raw command on node `id` and handles the resulting `Ready`.
    pub fn propose(&mut self, id: NodeId, data: &[u8]) -> Result<Index> {
        let raft = self
            .raft_mut(id)
            .ok_or(crate::error::Error::NotLeader { leader: None })?;
        let index = raft.propose(Payload::from_slice(data))?;
        self.process(id);
        Ok(index)
    }

    /// Cuts every link to and from `id`.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.ids() {
            if other != id {
                self.network.set_blocked(id, other, true);
                self.network.set_blocked(other, id, true);
            }
        }
    }

    /// Splits the cluster: nodes in `side` can talk only among themselves, the rest likewise.
    pub fn partition(&mut self, side: &[NodeId]) {
        for a in self.ids() {
            for b in self.ids() {
                let split = side.contains(&a) != side.contains(&b);
                self.network.set_blocked(a, b, split);
            }
        }
    }

    /// Cuts (or restores) the one-way link `from` → `to`.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, blocked: bool) {
        self.network.set_blocked(from, to, blocked);
    }

    /// Restores every link, removes every link fault, cancels pending torn crashes and sets
    /// every clock back to its nominal speed.
    pub fn heal(&mut self) {
        self.network.heal();
        for node in &mut self.nodes {
            node.torn_crash_pending = false;
            node.tick_us = node.nominal_tick_us;
        }
    }

    /// Sets the link faults (drop, duplicate, delay, jitter) in force.
    pub fn set_link_faults(&mut self, faults: super::network::LinkFaults) {
        self.network.faults = faults;
    }

    /// Stops node `id` at once, keeping only what it made durable.
    pub fn crash(&mut self, id: NodeId) {
        let Some(node) = self.node_mut(id) else {
            return;
        };
        let Some(raft) = node.raft.take() else {
            return;
        };
        node.durable = Some(raft.into_storage());
        node.kv = KvStore::default();
        node.state = StateMachine::new();
        node.session_clock.clear();
        node.hub = WatchHub::new(0);
        node.reads.clear();
        node.incarnation += 1;
        node.torn_crash_pending = false;
        if self.trace {
            eprintln!("t={} node {id} crashed", self.now);
        }
        self.abandon_client_ops_on(id);
    }

    /// Makes node `id` crash midway through handling its next `Ready`.
    pub fn crash_torn(&mut self, id: NodeId) {
        if let Some(node) = self.node_mut(id) {
            node.torn_crash_pending = node.raft.is_some();
        }
    }

    /// Starts a crashed node from its durable state.
    pub fn restart(&mut self, id: NodeId) {
        let seed = self.rng.next_u64();
        let settings = self.settings.clone();
        let now = self.now;
        let node_count = self.node_ids;
        let Some(node) = self.node_mut(id) else {
            return;
        };
        if node.disk_corrupted {
            // The WAL's checksums catch the flipped bit: the node refuses to start on it, and
            // an operator repairs it a while later.
            if node.durable.is_some() {
                self.corruptions_detected += 1;
                let repair = now + u64::from(settings.election_ticks) * TICK_US * 3;
                self.network.schedule(repair, Event::Repair(id));
            }
            return;
        }
        let Some(storage) = node.durable.take() else {
            return;
        };
        let mut config = Config::new(id);
        config.election_ticks = settings.election_ticks;
        config.heartbeat_ticks = settings.heartbeat_ticks;
        config.pre_vote = settings.pre_vote;
        config.check_quorum = settings.check_quorum;
        config.append_bytes_max = settings.append_bytes_max;
        config.inflight_messages_max = settings.inflight_messages_max;
        config.seed = seed;
        config.may_vote = node.may_vote;
        config.peers = (1..=node_count as NodeId).filter(|&p| p != id).collect();
        let snapshot = storage.snapshot().unwrap_or_default();
        let replica = if snapshot.meta.index == 0 {
            Some((KvStore::default(), StateMachine::new()))
        } else {
            decode_replica(snapshot.data.as_slice())
        };
        let Some((kv, state)) = replica else {
            node.durable = Some(storage);
            self.fail(format!("node {id} cannot decode its own snapshot"));
            return;
        };
        match Raft::new(config, storage.clone()) {
            Ok(raft) => node.raft = Some(raft),
            Err(error) => {
                node.durable = Some(storage);
                self.fail(format!(
                    "node {id} cannot restart from its storage: {error}"
                ));
                return;
            }
        }
        node.kv = kv;
        node.hub = WatchHub::new(state.revision());
        node.state = state;
        node.session_clock.clear();
        node.snapshot_index = snapshot.meta.index;
        let (incarnation, tick_us) = (node.incarnation, node.tick_us);
        if self.trace {
            let state = self.raft(id).map(|r| {
                (
                    r.hard_state(),
                    r.log().first_index(),
                    r.last_index(),
                    r.applied_index(),
                )
            });
            eprintln!(
                "t={now} node {id} restarted with (hard state, first, last, applied) {state:?}"
            );
        }
        let phase = self.rng.range(1, tick_us);
        self.network.schedule(
            now + phase,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
    }

    /// Flips a bit in node `id`'s durable storage; it keeps running on its in-memory state and
    /// stops at its next crash, refusing to restart on the damaged data.
    pub fn corrupt_disk(&mut self, id: NodeId) {
        if let Some(node) = self.node_mut(id) {
            if !node.disk_corrupted {
                node.disk_corrupted = true;
                self.corrupted_nodes += 1;
            }
        }
        // The damage is found when the node next starts; make that happen soon.
        self.crash(id);
        let restart = self.now + u64::from(self.settings.election_ticks) * TICK_US;
        self.network.schedule(restart, Event::Restart(id));
    }

    /// The documented repair: move the damaged data directory aside and start the node empty.
    /// It re-replicates from the others; having forgotten its votes, it no longer votes.
    fn repair(&mut self, id: NodeId) {
        let conf = self.membership();
        let Some(node) = self.node_mut(id) else {
            return;
        };
        if !node.disk_corrupted || node.raft.is_some() {
            return;
        }
        node.disk_corrupted = false;
        node.may_vote = false;
        node.durable = Some(MemStorage::new_with_conf(conf));
        node.snapshot_index = 0;
        if self.trace {
            eprintln!(
                "t={} node {id} repaired with an empty data directory",
                self.now
            );
        }
        self.restart(id);
    }

    /// Freezes node `id` (no ticks, messages held) until `until`.
    pub fn pause(&mut self, id: NodeId, until: u64) {
        if let Some(node) = self.node_mut(id) {
            node.paused_until = until;
        }
    }

    /// Sets how long node `id`'s ticks last (its clock runs fast or slow).
    pub fn set_tick_interval(&mut self, id: NodeId, tick_us: u64) {
        if let Some(node) = self.node_mut(id) {
            node.tick_us = tick_us.max(1);
        }
    }

    /// Whether node `id` is running.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.raft(id).is_some()
    }

    pub(super) fn fail(&mut self, violation: Violation) {
        if self.violation.is_none() {
            self.violation = Some(violation);
        }
    }

    // ----- running -----

    /// Runs until virtual time `until` (or a violation, or the step bound).
    pub fn run_until(&mut self, until: u64) {
        while self.violation.is_none() && self.steps < crate::limits::SIM_STEPS_MAX {
            if !self.step_before(until) {
                break;
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `ticks` nominal ticks.
    pub fn run_ticks(&mut self, ticks: u64) {
        let until = self.now + ticks * TICK_US;
        self.run_until(until);
    }

    /// Runs until `done` holds (checked after every step) or `ticks` pass; returns whether
    /// `done` held.
    pub fn run_until_true(&mut self, ticks: u64, done: impl Fn(&Cluster) -> bool) -> bool {
        let until = self.now + ticks * TICK_US;
        while self.violation.is_none() && self.steps < crate::limits::SIM_STEPS_MAX {
            if done(self) {
                return true;
            }
            if !self.step_before(until) {
                break;
            }
        }
        done(self)
    }

    /// Handles the next event if it is due before `until`. Returns false when none is.
    fn step_before(&mut self, until: u64) -> bool {
        match self.network.pop() {
            Some((at, event)) if at <= until => {
                self.now = self.now.max(at);
                self.steps += 1;
                self.handle(event);
                true
            }
            Some((at, event)) => {
                self.network.schedule(at, event);
                false
            }
            None => false,
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver(message) => self.deliver(message),
            Event::Tick { node, incarnation } => self.tick(node, incarnation),
            Event::ClientNext(client) => self.client_next(client),
            Event::ClientTimeout { client, seq } => self.client_timeout(client, seq),
            Event::Nemesis => self.nemesis(),
            Event::Restart(id) => self.restart(id),
            Event::BadInput => self.inject_bad_input(),
            Event::Repair(id) => self.repair(id),
            Event::CoordNext(client) => self.coord_next(client),
            Event::ResourceWrite { token } => self.resource_write(token),
        }
    }

    fn deliver(&mut self, message: crate::core::raft::Message) {
        let (from, to) = (message.from, message.to);
        let now = self.now;
        let Some(node) = self.node_mut(to) else {
            return;
        };
        if node.paused_until > now {
            let at = node.paused_until;
            self.network.schedule(at, Event::Deliver(message));
            return;
        }
        // A partition that arose while the message was in flight also loses it.
        if self.network.is_blocked(from, to) {
            return;
        }
        let Some(raft) = self.node_mut(to).and_then(|n| n.raft.as_mut()) else {
            return;
        };
        match raft.step(message) {
            Ok(()) => {}
            // Membership changes make this legitimate: a removed node still asking for votes,
            // an answer from a member the leader has just removed. The core refuses them.
            Err(crate::error::Error::UnknownNode(_)) => return,
            Err(error) => {
                self.fail(format!(
                    "node {to} refused a valid message from {from}: {error}"
                ));
                return;
            }
        }
        self.process(to);
    }

    fn tick(&mut self, id: NodeId, incarnation: u32) {
        let now = self.now;
        let Some(node) = self.node_mut(id) else {
            return;
        };
        if node.incarnation != incarnation || node.raft.is_none() {
            return;
        }
        let next = now + node.tick_us;
        let running = node.paused_until <= now;
        if running {
            if let Some(raft) = node.raft.as_mut() {
                raft.tick();
            }
        }
        self.network.schedule(
            next,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
        self.process(id);
        if running && self.violation.is_none() {
            self.coord_tick(id);
            self.process(id);
        }
        if !self.watchers.is_empty() {
            self.connect_watchers();
        }
    }

    fn trace_role_change(&mut self, id: NodeId) {
        let now = self.now;
        let node = &mut self.nodes[(id - 1) as usize];
        let Some(raft) = node.raft.as_ref() else {
            return;
        };
        let seen = (raft.role(), raft.term());
        if seen != node.last_role {
            node.last_role = seen;
            eprintln!(
                "t={now} node {id} {:?} term={} last={}/{} commit={} vote={}",
                seen.0,
                seen.1,
                raft.last_index(),
                raft.log().last_term(),
                raft.commit_index(),
                raft.hard_state().vote
            );
        }
    }

    /// Drives node `id` through its pending `Ready` batches, then checks the invariants.
    pub(super) fn process(&mut self, id: NodeId) {
        for _ in 0..READY_ROUNDS_MAX {
            let has_ready = self.raft(id).is_some_and(|r| r.has_ready());
            if !has_ready || self.violation.is_some() {
                break;
            }
            self.handle_ready(id);
        }
        if self.trace {
            self.trace_role_change(id);
        }
        self.coord_sync_leadership(id);
        if let Some(raft) = self.raft(id) {
            if raft.role() == Role::Leader {
                let result = {
                    let node = &self.nodes[(id - 1) as usize];
                    let raft = node.raft.as_ref().expect("checked running above");
                    self.invariants.check_leader(id, raft)
                };
                if let Err(violation) = result {
                    self.fail(violation);
                }
            }
        }
    }

    fn handle_ready(&mut self, id: NodeId) {
        let now = self.now;
        let index = (id - 1) as usize;
        let torn = self.nodes[index].torn_crash_pending;
        let Some(raft) = self.nodes[index].raft.as_mut() else {
            return;
        };
        let ready = raft.ready();
        for message in ready.messages.iter().cloned() {
            self.send(now, message);
        }
        if torn {
            self.persist_torn(id, &ready);
            self.crash(id);
            return;
        }
        if let Some(snapshot) = &ready.snapshot {
            if let Err(violation) = self.install_snapshot(id, snapshot) {
                self.fail(violation);
                return;
            }
        }
        let Some(raft) = self.nodes[index].raft.as_mut() else {
            return;
        };
        if let Some(first) = ready.entries.first() {
            let prev_term = raft.log_term(first.index - 1).unwrap_or(0);
            if let Err(violation) = self
                .invariants
                .check_persisted(id, &ready.entries, prev_term)
            {
                self.fail(violation);
                return;
            }
        }
        if let Err(error) = raft.storage_mut().append(&ready.entries) {
            self.fail(format!("node {id} storage refused its Ready: {error}"));
            return;
        }
        if let Some(hard_state) = ready.hard_state {
            raft.storage_mut().set_hard_state(hard_state);
        }
        raft.advance(ready.persisted_marker());
        let node_term = raft.term();
        for message in ready.persisted_messages {
            self.send(now, message);
        }
        for entry in &ready.committed_entries {
            if entry.kind == EntryKind::Normal {
                self.apply_command(id, entry.index, entry.term, entry.data.as_slice());
            } else {
                if entry.kind == EntryKind::ConfChange {
                    let conf = ConfState::decode_entry(entry.data.as_slice()).map(|(conf, _)| conf);
                    if let (Ok(conf), Some(raft)) = (conf, self.nodes[index].raft.as_mut()) {
                        raft.storage_mut().set_applied_conf(conf);
                    }
                }
                self.nodes[index].state.apply_noop(entry.index);
                self.coord_applied(id, entry.index, None, Vec::new());
            }
            let node = &self.nodes[index];
            let state = replica_fingerprint(&node.kv, &node.state);
            if let Err(violation) = self.invariants.check_applied(id, node_term, entry, state) {
                self.fail(violation);
                return;
            }
        }
        self.maybe_snapshot(id);
        for state in &ready.read_states {
            if self.read_log.len() < crate::limits::SIM_HISTORY_OPERATIONS_MAX {
                self.read_log.push((id, state.request, state.index));
            }
        }
        self.nodes[index].reads.extend(
            ready
                .read_states
                .iter()
                .map(|state| (state.request, state.index)),
        );
        self.serve_reads(id);
    }

    /// Makes a snapshot from the leader durable and restores the replica from it.
    fn install_snapshot(
        &mut self,
        id: NodeId,
        snapshot: &Snapshot,
    ) -> std::result::Result<(), Violation> {
        let node = &mut self.nodes[(id - 1) as usize];
        let (kv, state) = decode_replica(snapshot.data.as_slice())
            .ok_or_else(|| format!("node {id} received an undecodable snapshot"))?;
        let raft = node
            .raft
            .as_mut()
            .ok_or_else(|| "node is down".to_string())?;
        raft.storage_mut()
            .apply_snapshot(snapshot.clone())
            .map_err(|error| format!("node {id} storage refused a snapshot: {error}"))?;
        self.invariants.check_snapshot_state(
            id,
            snapshot.meta.index,
            replica_fingerprint(&kv, &state),
        )?;
        node.kv = kv;
        // The history no longer connects: the node's watchers reconnect and resume.
        node.hub.reset(state.revision());
        node.state = state;
        node.snapshot_index = snapshot.meta.index;
        for watcher in &mut self.watchers {
            watcher.disconnect_from(id);
        }
        Ok(())
    }

    /// Takes a snapshot every `snapshot_every` applied entries and compacts the log behind it,
    /// keeping `compaction_margin` entries for slow followers.
    fn maybe_snapshot(&mut self, id: NodeId) {
        let node = &mut self.nodes[(id - 1) as usize];
        let Some(raft) = node.raft.as_mut() else {
            return;
        };
        let applied = raft.applied_index();
        if applied < node.snapshot_index + node.snapshot_every {
            return;
        }
        let data = Payload::from(encode_replica(&node.kv, &node.state));
        let storage = raft.storage_mut();
        let result = storage
            .create_snapshot(applied, data)
            .and_then(|()| storage.compact(applied.saturating_sub(node.compaction_margin)));
        node.snapshot_index = applied;
        if let Err(error) = result {
            self.fail(format!(
                "node {id} could not snapshot at {applied}: {error}"
            ));
        }
    }

    fn send(&mut self, now: u64, message: crate::core::raft::Message) {
        *self
            .messages_by_kind
            .entry(message.body.kind_name())
            .or_insert(0) += 1;
        self.network.send(now, message);
    }

    /// Writes a prefix of the `Ready`'s entries (and the hard state only if all of them made
    /// it), as a crash in the middle of a write would leave the disk.
    fn persist_torn(&mut self, id: NodeId, ready: &crate::core::raft::Ready) {
        let keep = self.rng.range(0, ready.entries.len() as u64 + 1) as usize;
        let keep_hard_state = keep == ready.entries.len() && self.rng.chance(1, 2);
        let index = (id - 1) as usize;
        let Some(raft) = self.nodes[index].raft.as_mut() else {
            return;
        };
        if let Some(snapshot) = &ready.snapshot {
            // The snapshot is written first; entries and hard state only follow it.
            if self.rng.chance(1, 2) {
                return;
            }
            if let Err(error) = raft.storage_mut().apply_snapshot(snapshot.clone()) {
                self.fail(format!("node {id} storage refused a snapshot: {error}"));
                return;
            }
        }
        let entries = &ready.entries[..keep];
        if let Some(first) = entries.first() {
            let prev_term = raft.log_term(first.index - 1).unwrap_or(0);
            if let Err(violation) = self.invariants.check_persisted(id, entries, prev_term) {
                self.fail(violation);
                return;
            }
        }
        if let Err(error) = raft.storage_mut().append(entries) {
            self.fail(format!("node {id} storage refused a torn write: {error}"));
            return;
        }
        if let (true, Some(hard_state)) = (keep_hard_state, ready.hard_state) {
            raft.storage_mut().set_hard_state(hard_state);
        }
    }

    fn apply_command(&mut self, id: NodeId, index: Index, term: Term, data: &[u8]) {
        let Some(command) = Command::decode(data) else {
            // The product's commands (and probes, which it skips) go to its state machine.
            let node = &mut self.nodes[(id - 1) as usize];
            let applied = node.state.apply(index, data);
            let events = node.state.take_events();
            self.coord_applied(id, index, applied, events);
            return;
        };
        self.nodes[(id - 1) as usize].state.apply_noop(index);
        self.coord_applied(id, index, None, Vec::new());
        let output = self.nodes[(id - 1) as usize].kv.apply(&command);
        let acknowledged = self.complete_client_op(command.client, command.seq, id, output);
        let is_write = !matches!(command.input, OpInput::Get);
        if acknowledged && is_write {
            self.acked_writes.push((index, term));
        }
    }

    /// Answers every confirmed read whose index node `id` has applied.
    fn serve_reads(&mut self, id: NodeId) {
        let index = (id - 1) as usize;
        let Some(applied) = self.nodes[index].raft.as_ref().map(|r| r.applied_index()) else {
            return;
        };
        let mut position = 0;
        while position < self.nodes[index].reads.len() {
            let (request, read_index) = self.nodes[index].reads[position];
            if read_index > applied {
                position += 1;
                continue;
            }
            self.nodes[index].reads.swap_remove(position);
            if request & KEEPALIVE_MARK != 0 {
                self.coord_keepalive_confirmed(id, request);
                continue;
            }
            let (client, seq) = ((request >> 32) as u32, request & 0xffff_ffff);
            let Some(key) = self.client_read_key(client, seq, id) else {
                continue;
            };
            let value = self.nodes[index].kv.get(key);
            self.complete_client_op(client, seq, id, OpOutput::Value(value));
        }
    }
}

/// A replica's snapshot: the simulator's KV and the product's state machine, one after the
/// other (`kv length:u32 | kv | state`).
fn encode_replica(kv: &KvStore, state: &StateMachine) -> Vec<u8> {
    let kv = kv.encode();
    let mut out = Vec::with_capacity(4 + kv.len() + state.encoded_len());
    out.extend_from_slice(&(kv.len() as u32).to_le_bytes());
    out.extend_from_slice(&kv);
    out.extend_from_slice(&state.encode());
    out
}

/// Decodes what [`encode_replica`] wrote.
fn decode_replica(bytes: &[u8]) -> Option<(KvStore, StateMachine)> {
    let length = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let kv = KvStore::decode(bytes.get(4..4usize.checked_add(length)?)?)?;
    let state = StateMachine::decode(&bytes[4 + length..]).ok()?;
    Some((kv, state))
}

/// A fingerprint of a replica's state after an index: the KV's, and the state machine's
/// revision and applied index, with a hash of its whole encoding every 16th index (whole
/// encodings after every entry would cost more than the rest of the run).
fn replica_fingerprint(kv: &KvStore, state: &StateMachine) -> u64 {
    let mut hash: u64 = kv.fingerprint() ^ 0x9e37_79b9_7f4a_7c15;
    let mut mix = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    mix(&state.revision().to_le_bytes());
    mix(&state.applied_index().to_le_bytes());
    if state.applied_index().is_multiple_of(16) {
        mix(&state.encode());
    }
    hash
}
