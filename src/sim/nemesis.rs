//! The fault schedule: every few election timeouts the nemesis changes what is broken —
//! partitions (symmetric, one-way, a bridge node both halves see), lossy, duplicating,
//! reordering and slow links, crashes (clean, or torn in the middle of a write), long pauses —
//! and every so often hands a node a malformed message that it must refuse.

use super::cluster::Cluster;
use super::network::{Event, LinkFaults, TICK_US};
use crate::core::raft::{ConfChange, Message, MessageBody, Role};
use crate::error::Error;
use crate::limits::ENTRY_BYTES_MAX;
use crate::types::{ConfState, Entry, EntryKind, NodeId, Payload, SnapshotMeta};

/// Which kinds of fault a run injects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultSet {
    /// Lost messages.
    pub drop: bool,
    /// Messages delivered twice.
    pub duplicate: bool,
    /// Extra latency jitter, so messages overtake each other.
    pub reorder: bool,
    /// Messages held back up to 10× the election timeout.
    pub delay: bool,
    /// Symmetric, one-way and bridge partitions.
    pub partition: bool,
    /// Crashes (clean and torn) and restarts.
    pub crash: bool,
    /// Nodes frozen for longer than the election timeout.
    pub pause: bool,
    /// Malformed messages handed to nodes.
    pub bad_input: bool,
    /// Clock jumps: a node's clock leaps forward by many ticks at once, or runs fast or slow.
    pub clock: bool,
    /// Disk faults: a write or fsync fails (EIO, ENOSPC) and the node stops, keeping a prefix
    /// of its last write; or a bit flips in a durable record on a minority of nodes, which the
    /// node detects at its next start and refuses to start on, until it is repaired.
    pub disk: bool,
    /// Membership changes: learners added (spare nodes, or removed ones re-added), learners
    /// promoted, voters removed (the leader among them), learners removed. Not part of
    /// `all`, which keeps the membership fixed: ask for it as `all,membership`.
    pub membership: bool,
}

/// Names accepted by [`FaultSet::parse`], in the order of the fields.
pub const FAULT_NAMES: [&str; 11] = [
    "drop",
    "duplicate",
    "reorder",
    "delay",
    "partition",
    "crash",
    "pause",
    "bad-input",
    "clock",
    "disk",
    "membership",
];

impl FaultSet {
    /// Every fault.
    pub fn all() -> FaultSet {
        FaultSet {
            drop: true,
            duplicate: true,
            reorder: true,
            delay: true,
            partition: true,
            crash: true,
            pause: true,
            bad_input: true,
            clock: true,
            disk: true,
            membership: false,
        }
    }

    /// Parses `all`, `none`, or a comma-separated list of [`FAULT_NAMES`] (which may include
    /// `all`: `all,membership`).
    pub fn parse(text: &str) -> Result<FaultSet, String> {
        if text == "none" {
            return Ok(FaultSet::default());
        }
        let mut set = FaultSet::default();
        for name in text.split(',') {
            if name.trim() == "all" {
                set = FaultSet {
                    membership: set.membership,
                    ..FaultSet::all()
                };
                continue;
            }
            let flag = match name.trim() {
                "drop" => &mut set.drop,
                "duplicate" => &mut set.duplicate,
                "reorder" => &mut set.reorder,
                "delay" => &mut set.delay,
                "partition" => &mut set.partition,
                "crash" => &mut set.crash,
                "pause" => &mut set.pause,
                "bad-input" => &mut set.bad_input,
                "clock" => &mut set.clock,
                "disk" => &mut set.disk,
                "membership" => &mut set.membership,
                other => {
                    return Err(format!(
                        "unknown fault '{other}'; use all, none, or a list of: {}",
                        FAULT_NAMES.join(", ")
                    ))
                }
            };
            *flag = true;
        }
        Ok(set)
    }

    /// The canonical text form (parses back to the same set).
    pub fn name(&self) -> String {
        if *self == FaultSet::all() {
            return "all".into();
        }
        let all_but_membership = FaultSet {
            membership: false,
            ..*self
        };
        if self.membership && all_but_membership == FaultSet::all() {
            return "all,membership".into();
        }
        let flags = [
            self.drop,
            self.duplicate,
            self.reorder,
            self.delay,
            self.partition,
            self.crash,
            self.pause,
            self.bad_input,
            self.clock,
            self.disk,
            self.membership,
        ];
        let names: Vec<&str> = FAULT_NAMES
            .iter()
            .zip(flags)
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(",")
        }
    }

    fn any(&self) -> bool {
        *self != FaultSet::default()
    }
}

impl Cluster {
    /// Starts the nemesis: faults from `faults` until virtual time `until`.
    pub fn start_nemesis(&mut self, faults: FaultSet, until: u64) {
        self.faults = faults;
        self.faults_until = until;
        if faults.any() {
            let first = self.now + self.election_us() * self.rng.range(1, 4);
            self.network.schedule(first, Event::Nemesis);
        }
        if faults.bad_input {
            let first = self.now + self.election_us();
            self.network.schedule(first, Event::BadInput);
        }
    }

    fn election_us(&self) -> u64 {
        u64::from(self.settings.election_ticks) * TICK_US
    }

    pub(super) fn nemesis(&mut self) {
        if self.now >= self.faults_until {
            return;
        }
        let mut actions: Vec<u8> = vec![0]; // 0: heal the network
        let f = self.faults;
        if f.drop || f.duplicate || f.reorder || f.delay {
            actions.push(1);
        }
        if f.partition {
            actions.extend([2, 3, 4]);
        }
        if f.crash {
            actions.extend([5, 5]);
        }
        if f.pause {
            actions.push(6);
        }
        if f.clock {
            actions.push(7);
        }
        if f.disk {
            actions.push(8);
        }
        if f.membership {
            actions.extend([9, 9]);
        }
        match *self.rng.pick(&actions).unwrap_or(&0) {
            1 => self.fault_links(),
            2 => self.fault_symmetric_partition(),
            3 => self.fault_one_way_partition(),
            4 => self.fault_bridge_partition(),
            5 => self.fault_crash(),
            6 => self.fault_pause(),
            7 => self.fault_clock(),
            8 => self.fault_disk(),
            9 => self.fault_membership(),
            _ => self.heal(),
        }
        let next = self.now + self.election_us() * self.rng.range(1, 6);
        self.network.schedule(next, Event::Nemesis);
    }

    fn fault_links(&mut self) {
        let f = self.faults;
        let election_us = self.election_us();
        let faults = LinkFaults {
            drop_per_mille: if f.drop { self.rng.range(0, 300) } else { 0 },
            duplicate_per_mille: if f.duplicate {
                self.rng.range(0, 200)
            } else {
                0
            },
            long_delay_per_mille: if f.delay { self.rng.range(0, 100) } else { 0 },
            long_delay_us_max: election_us * 10,
            jitter_us_max: if f.reorder {
                self.rng.range(0, TICK_US * 3)
            } else {
                0
            },
        };
        self.set_link_faults(faults);
    }

    fn shuffled_ids(&mut self) -> Vec<NodeId> {
        let mut ids = self.ids();
        for i in (1..ids.len()).rev() {
            let j = self.rng.range(0, i as u64 + 1) as usize;
            ids.swap(i, j);
        }
        ids
    }

    fn fault_symmetric_partition(&mut self) {
        let ids = self.shuffled_ids();
        let cut = self.rng.range(1, ids.len() as u64) as usize;
        self.partition(&ids[..cut]);
    }

    fn fault_one_way_partition(&mut self) {
        let ids = self.shuffled_ids();
        let cut = self.rng.range(1, ids.len() as u64) as usize;
        for &from in &ids[..cut] {
            for &to in &ids[cut..] {
                self.set_link(from, to, true);
            }
        }
    }

    fn fault_bridge_partition(&mut self) {
        let ids = self.shuffled_ids();
        if ids.len() < 3 {
            return;
        }
        // ids[0] is the bridge; the rest split in two halves that only the bridge joins.
        let cut = 1 + (ids.len() - 1) / 2;
        for &a in &ids[1..cut] {
            for &b in &ids[cut..] {
                self.set_link(a, b, true);
                self.set_link(b, a, true);
            }
        }
    }

    /// A running node chosen at random, if any.
    fn pick_running(&mut self) -> Option<NodeId> {
        let up: Vec<NodeId> = self
            .ids()
            .into_iter()
            .filter(|&id| self.is_up(id))
            .collect();
        self.rng.pick(&up).copied()
    }

    /// Restarts `victim` one to ten election timeouts from now.
    fn schedule_restart(&mut self, victim: NodeId) {
        let restart = self.now + self.election_us() * self.rng.range(1, 10);
        self.network.schedule(restart, Event::Restart(victim));
    }

    fn fault_crash(&mut self) {
        // Half the crashes hit the leader: leaders dying with entries half-replicated is what
        // exercises the subtle rules (Figure 8, leader completeness).
        let leader = self.leader().filter(|_| self.rng.chance(1, 2));
        let Some(victim) = leader.or_else(|| self.pick_running()) else {
            return;
        };
        if self.rng.chance(1, 2) {
            self.crash_torn(victim);
        } else {
            self.crash(victim);
        }
        self.schedule_restart(victim);
    }

    fn fault_pause(&mut self) {
        let clients = self.coord_client_count() as u64;
        if clients > 0 && self.coord_rng.chance(1, 2) {
            // A client process freezes (a GC or VM pause) for one to three session TTLs.
            let victim = self.coord_rng.range(0, clients) as u32;
            let ttl_us = crate::limits::SESSION_TTL_MS_MIN * 1000;
            let until = self.now + self.coord_rng.range(ttl_us, 3 * ttl_us);
            self.pause_coord_client(victim, until);
            return;
        }
        let ids = self.ids();
        let Some(&victim) = self.rng.pick(&ids) else {
            return;
        };
        let until = self.now + self.election_us() * self.rng.range(2, 15);
        self.pause(victim, until);
    }

    fn fault_disk(&mut self) {
        let Some(victim) = self.pick_running() else {
            return;
        };
        // Corruption is allowed on a minority of the voters only: repaired nodes stop voting,
        // and a majority of voters must remain for the cluster to elect leaders at all.
        if self.rng.chance(1, 2) && self.votes_remain_everywhere(&[victim]) {
            self.corrupt_disk(victim);
        } else {
            // EIO or ENOSPC on the next write: the node stops mid-write.
            self.crash_torn(victim);
            self.schedule_restart(victim);
        }
    }

    /// Changes the membership through the leader: adds a learner (a spare, or a node removed
    /// earlier), promotes a learner, or removes a learner or a voter (sometimes the leader
    /// itself), keeping at least three voters. Refusals (a change in progress, a learner not
    /// caught up) are part of the exercise.
    /// Whether `voters` keep a majority able to vote once `also` cannot (a corrupted or
    /// repaired node forgets its votes and no longer votes).
    pub(super) fn votes_remain(&self, voters: &[NodeId], also: &[NodeId]) -> bool {
        let unable = voters
            .iter()
            .filter(|&&id| also.contains(&id) || self.cannot_vote(id))
            .count();
        unable <= (voters.len() - 1) / 2
    }

    /// [`Cluster::votes_remain`] for every set of voters some running node's membership
    /// names (both halves of a joint one): an uncommitted membership may still be lost, and
    /// the one before it come back into force.
    fn votes_remain_everywhere(&self, also: &[NodeId]) -> bool {
        let mut confs: Vec<crate::types::ConfState> = self
            .ids()
            .into_iter()
            .filter_map(|id| self.stored_conf(id))
            .collect();
        confs.push(self.membership());
        confs.iter().all(|conf| {
            self.votes_remain(&conf.voters, also)
                && (conf.voters_outgoing.is_empty()
                    || self.votes_remain(&conf.voters_outgoing, also))
        })
    }

    fn fault_membership(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let conf = match self.raft(leader) {
            Some(raft) => raft.conf().clone(),
            None => return,
        };
        let outsiders: Vec<NodeId> = self
            .ids()
            .into_iter()
            .filter(|&id| !conf.is_member(id))
            .collect();
        let mut choices: Vec<ConfChange> = Vec::new();
        if let Some(&id) = self.rng.pick(&outsiders) {
            choices.push(ConfChange::AddLearner(id));
        }
        if let Some(&id) = self.rng.pick(&conf.learners) {
            let mut promoted = conf.voters.clone();
            promoted.push(id);
            if self.votes_remain(&promoted, &[]) {
                choices.extend([ConfChange::Promote(id), ConfChange::Promote(id)]);
            }
            choices.push(ConfChange::Remove(id));
        }
        if conf.voters.len() > 3 {
            let voter = if self.rng.chance(1, 3) {
                Some(leader)
            } else {
                self.rng.pick(&conf.voters).copied()
            };
            let remaining: Vec<NodeId> = conf
                .voters
                .iter()
                .copied()
                .filter(|&v| Some(v) != voter)
                .collect();
            if self.votes_remain(&remaining, &[]) {
                choices.extend(voter.map(ConfChange::Remove));
            }
        }
        if let Some(&change) = self.rng.pick(&choices) {
            // Refused proposals change nothing.
            let _ = self.propose_conf_change(leader, change);
        }
    }

    fn fault_clock(&mut self) {
        let ids = self.ids();
        let Some(&victim) = self.rng.pick(&ids) else {
            return;
        };
        if self.rng.chance(1, 2) {
            // A jump forward: many ticks at once.
            let ticks = self
                .rng
                .range(1, 3 * u64::from(self.settings.election_ticks));
            if let Some(raft) = self.raft_mut(victim) {
                for _ in 0..ticks {
                    raft.tick();
                }
            }
            // The session clock leaps with it.
            if let Some(node) = self.node_mut(victim) {
                node.clock_jump_us += ticks * TICK_US;
            }
            self.process(victim);
        } else {
            // The clock runs between half and twice its nominal speed from now on.
            let tick_us = self.rng.range(TICK_US / 2, TICK_US * 2);
            self.set_tick_interval(victim, tick_us);
        }
    }

    /// Hands a running node a malformed message; it must refuse it with an error.
    pub(super) fn inject_bad_input(&mut self) {
        if self.now < self.faults_until {
            let next = self.now + self.election_us() * self.rng.range(1, 4);
            self.network.schedule(next, Event::BadInput);
        }
        let Some(target) = self.pick_running() else {
            return;
        };
        let kind = self.rng.range(0, 9);
        let Some(message) = self.bad_message(target, kind) else {
            return;
        };
        let Some(raft) = self.raft_mut(target) else {
            return;
        };
        match raft.step(message.clone()) {
            Err(Error::UnknownNode(_) | Error::InvalidMessage(_) | Error::EntryTooLarge { .. }) => {
                self.bad_inputs_rejected += 1;
            }
            other => self.fail(format!(
                "node {target} accepted a malformed message (kind {kind}): {message:?} -> {other:?}"
            )),
        }
    }

    /// Builds malformed message number `kind` for `target`, if that kind applies to it now.
    fn bad_message(&mut self, target: NodeId, kind: u64) -> Option<Message> {
        let raft = self.raft(target)?;
        let (term, last, role) = (raft.term(), raft.last_index(), raft.role());
        let peer = self.ids().into_iter().find(|&id| id != target)?;
        let entry = |index, term, data: Payload| Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data,
        };
        let append = |from, term, entries: Vec<Entry>, prev_index| Message {
            from,
            to: target,
            term,
            body: MessageBody::Append {
                prev_index,
                prev_term: 0,
                entries,
                commit: 0,
            },
        };
        let small = Payload::from_slice(b"x");
        let voters = self.ids();
        let snapshot_meta = |index, term| SnapshotMeta {
            index,
            term,
            conf: ConfState::with_voters(&voters),
        };
        Some(match kind {
            // From a node that is not a member.
            0 => append(99, term, Vec::new(), 0),
            // A future term with entries whose indexes skip.
            1 => append(
                peer,
                term + 3,
                vec![entry(1, term + 3, small.clone()), entry(5, term + 3, small)],
                0,
            ),
            // An entry over the size limit.
            2 => append(
                peer,
                term + 1,
                vec![entry(
                    1,
                    term + 1,
                    Payload::from(vec![0u8; ENTRY_BYTES_MAX + 1]),
                )],
                0,
            ),
            // Entries from a term later than the message's own.
            3 => append(peer, term, vec![entry(last + 1, term + 9, small)], last),
            // Addressed to someone else.
            4 => Message {
                to: peer,
                ..append(peer, term, Vec::new(), 0)
            },
            // A leader is told a follower holds entries far beyond the leader's log.
            5 if role == Role::Leader => Message {
                from: peer,
                to: target,
                term,
                body: MessageBody::AppendResponse {
                    index: last + 1000,
                    reject: false,
                    hint_index: 0,
                    hint_term: 0,
                    counted: true,
                },
            },
            // A leader is told a follower confirmed a read round it never started.
            6 if role == Role::Leader => Message {
                from: peer,
                to: target,
                term,
                body: MessageBody::HeartbeatResponse {
                    read_round: u64::MAX,
                    counted: true,
                },
            },
            // A snapshot chunk reaching past the snapshot's end.
            7 => Message {
                from: peer,
                to: target,
                term: term + 1,
                body: MessageBody::InstallSnapshot {
                    meta: snapshot_meta(last + 5, term + 1),
                    total_bytes: 4,
                    offset: 2,
                    chunk: Payload::from_slice(b"abcd"),
                },
            },
            // A snapshot claiming a size beyond the limit.
            8 => Message {
                from: peer,
                to: target,
                term: term + 1,
                body: MessageBody::InstallSnapshot {
                    meta: snapshot_meta(last + 5, term + 1),
                    total_bytes: u64::MAX,
                    offset: 0,
                    chunk: Payload::from_slice(b"abcd"),
                },
            },
            _ => append(0, term, Vec::new(), 0),
        })
    }
}
