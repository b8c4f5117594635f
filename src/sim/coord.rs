//! The coordination workload and its checks: simulated clients with sessions (kept alive
//! through the leader, with the client-side safety clock), taking a mutex, campaigning in an
//! election, claiming and acknowledging queue items, and writing to an external resource
//! guarded by fencing tokens; simulated watchers streaming change events from members'
//! watch hubs. Clients pause for longer than their TTL and members' clocks drift and jump.
//!
//! The checks:
//! - locks: no two clients believe they hold the mutex (or a queue item) at the same instant
//!   of true time; the cluster never expires a session while its client is still inside its
//!   safe time; the fenced resource never accepts a write out of token order; grant tokens
//!   increase strictly per name;
//! - elections: at most one leader per name at every revision, on every member, and no two
//!   clients believe they lead at the same instant;
//! - queues: each enqueued item is acknowledged at most once, and after the run exactly once
//!   or still queued;
//! - watches: each watcher receives exactly the committed events of its prefix, in order,
//!   with no gap and no duplicate, across member crashes and reconnections.
//!
//! A client learns of an outcome or a grant when the first member applies it: the earliest
//! any real client could, which makes the overlap checks as strict as they can be.

use std::collections::BTreeMap;

use super::cluster::Cluster;
use super::network::{Event as SimEvent, TICK_US};
use crate::core::raft::Role;
use crate::core::state::machine::Applied;
use crate::core::state::watch::{WatchKey, WatchRefused};
use crate::core::state::{
    Command, Ended, Event, EventKind, LockKind, Mode, Outcome, Request, Space,
};
use crate::limits::SIM_HISTORY_OPERATIONS_MAX;
use crate::types::{NodeId, Payload};

/// `Request::client` of simulated coordination clients: this bit plus the client's index.
const CLIENT_MARK: u64 = 1 << 48;

/// Read requests that are keepalives carry this bit (plain reads never set it).
pub(super) const KEEPALIVE_MARK: u64 = 1 << 63;

/// Session TTL of the simulated clients, in milliseconds (the product's minimum).
const TTL_MS: u64 = crate::limits::SESSION_TTL_MS_MIN;

/// Ticks after which an unanswered command is sent again (same sequence: applied once).
const RETRY_TICKS: u64 = 20;

/// What a client holds.
#[derive(Clone, Debug)]
struct Holding {
    space: Space,
    name: Vec<u8>,
    /// Queue item (0 for locks and elections).
    item: u64,
    token: u64,
    /// True time the client started believing it holds.
    since: u64,
    /// When it will let go.
    release_at: u64,
    /// Next write to the fenced resource (mutex holders only).
    next_write: u64,
}

/// One simulated coordination client.
pub(super) struct CoordClient {
    index: u32,
    target: NodeId,
    next_seq: u64,
    session: Option<u64>,
    /// True time until which the client may rely on its session (its safety clock).
    safe_until: u64,
    /// (request id, send time) of the keepalive in flight.
    keepalive: Option<(u64, u64)>,
    next_keepalive_at: u64,
    keepalive_counter: u64,
    /// The command in flight: (sequence, command, first send time, last send time).
    outstanding: Option<(u64, Command, u64, u64)>,
    /// Waiting for a grant in this space (after a `Queued` outcome).
    waiting: Option<Space>,
    holding: Option<Holding>,
    paused_until: u64,
    stop_at: u64,
}

/// A simulated watcher: one watch on one member's hub at a time.
pub(super) struct Watcher {
    space: Space,
    prefix: Vec<u8>,
    /// The member it is connected to and that member's incarnation (0: not connected).
    node: NodeId,
    incarnation: u32,
    /// Next revision wanted.
    next: u64,
    /// Position in the reference event list of the next event this watcher must receive.
    cursor: usize,
    /// Events received so far.
    received: u64,
}

impl Watcher {
    /// The member `node` lost its history (a snapshot replaced its state): reconnect.
    pub(super) fn disconnect_from(&mut self, node: NodeId) {
        if self.node == node {
            self.node = 0;
        }
    }
}

/// What the coordination checks counted in a run.
#[derive(Clone, Debug, Default)]
pub struct CoordReport {
    /// See [`super::run::SeedReport::lock_violations`].
    pub lock_violations: u64,
    /// Elections with two leaders at once.
    pub election_violations: u64,
    /// Queue items acknowledged twice or lost.
    pub queue_violations: u64,
    /// Watch streams with a missing, repeated or reordered event.
    pub watch_violations: u64,
    /// The first violation's description.
    pub first_violation: Option<String>,
    /// Grants made.
    pub grants: u64,
    /// Sessions expired.
    pub expiries: u64,
    /// Events delivered to watchers.
    pub watch_events: u64,
}

/// What a client can hold: (space, name, queue item or 0).
type Held = (Space, Vec<u8>, u64);

/// Violation counters and the facts they are checked against.
#[derive(Default)]
pub(super) struct CoordChecks {
    /// Belief intervals per (space, name, item): (since, until, client).
    intervals: BTreeMap<Held, Vec<(u64, u64, u32)>>,
    /// Highest grant token per (space, name).
    last_token: BTreeMap<(Space, Vec<u8>), u64>,
    /// Highest token the fenced resource accepted.
    resource_highest: u64,
    /// Successful acknowledgements per item.
    acks: BTreeMap<u64, u32>,
    /// Items ever enqueued.
    enqueued: Vec<u64>,
    /// Every committed event, in order (the reference the watchers are checked against).
    pub(super) reference: Vec<Event>,
    /// The reference overflowed its bound: watchers are no longer checked.
    reference_full: bool,
    /// Hash of each applied index's events, by the first member to apply it.
    event_hashes: Vec<u64>,
    /// Highest log index applied anywhere (outcomes are delivered when it grows).
    pub(super) first_applied: u64,
    pub(super) lock_violations: u64,
    pub(super) election_violations: u64,
    pub(super) queue_violations: u64,
    pub(super) watch_violations: u64,
    /// The first violation's description.
    pub(super) first_violation: Option<String>,
    pub(super) grants: u64,
    pub(super) expiries: u64,
    pub(super) watch_events: u64,
    pub(super) watch_resyncs: u64,
}

impl CoordChecks {
    fn violation(&mut self, kind: &str, what: String) {
        match kind {
            "lock" => self.lock_violations += 1,
            "election" => self.election_violations += 1,
            "queue" => self.queue_violations += 1,
            _ => self.watch_violations += 1,
        }
        if self.first_violation.is_none() {
            self.first_violation = Some(format!("{kind}: {what}"));
        }
    }

    /// Records a belief interval and checks it against the other clients'.
    fn believed(&mut self, key: Held, since: u64, until: u64, client: u32) {
        if until <= since {
            return;
        }
        let kind = if key.0 == Space::Election {
            "election"
        } else if key.0 == Space::Queue {
            "queue"
        } else {
            "lock"
        };
        let overlap = self.intervals.get(&key).and_then(|list| {
            list.iter()
                .find(|(s, u, c)| *c != client && *s < until && since < *u)
                .copied()
        });
        if let Some((s, u, c)) = overlap {
            self.violation(
                kind,
                format!(
                    "clients {c} and {client} both believed they held {:?} {} item {} during \
                     [{s}, {u}) and [{since}, {until}) µs",
                    key.0,
                    String::from_utf8_lossy(&key.1),
                    key.2
                ),
            );
        }
        let list = self.intervals.entry(key).or_default();
        if list.len() < SIM_HISTORY_OPERATIONS_MAX {
            list.push((since, until, client));
        }
    }
}

fn hash_events(events: &[Event]) -> u64 {
    let mut bytes = Vec::new();
    for event in events {
        event.encode(&mut bytes);
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl Cluster {
    /// Adds `count` coordination clients working until virtual time `stop_at`, and `watchers`
    /// watchers.
    pub fn add_coord_clients(&mut self, count: usize, watchers: usize, stop_at: u64) {
        for _ in 0..count.min(crate::limits::SIM_CLIENTS_MAX) {
            let index = self.coord_clients.len() as u32;
            let target = self.coord_rng.range(1, self.nodes.len() as u64 + 1);
            self.coord_clients.push(CoordClient {
                index,
                target,
                next_seq: 1,
                session: None,
                safe_until: 0,
                keepalive: None,
                next_keepalive_at: 0,
                keepalive_counter: 0,
                outstanding: None,
                waiting: None,
                holding: None,
                paused_until: 0,
                stop_at,
            });
            let start = self.now + self.coord_rng.range(0, TICK_US);
            self.network.schedule(start, SimEvent::CoordNext(index));
        }
        let spaces = [Space::Lock, Space::Election, Space::Queue, Space::Session];
        for _ in 0..watchers {
            let space = spaces[self.coord_rng.range(0, spaces.len() as u64) as usize];
            self.watchers.push(Watcher {
                space,
                prefix: Vec::new(),
                node: 0,
                incarnation: 0,
                next: 1,
                cursor: 0,
                received: 0,
            });
        }
    }

    /// Pauses coordination client `index` (a stop-the-world pause of its process) until
    /// `until`: no keepalives, no actions, outcomes held until it resumes.
    pub fn pause_coord_client(&mut self, index: u32, until: u64) {
        if let Some(client) = self.coord_clients.get_mut(index as usize) {
            client.paused_until = client.paused_until.max(until);
        }
    }

    /// What the coordination checks counted so far.
    pub fn coord_report(&self) -> CoordReport {
        let c = &self.coord;
        CoordReport {
            lock_violations: c.lock_violations,
            election_violations: c.election_violations,
            queue_violations: c.queue_violations,
            watch_violations: c.watch_violations,
            first_violation: c.first_violation.clone(),
            grants: c.grants,
            expiries: c.expiries,
            watch_events: c.watch_events,
        }
    }

    /// Number of coordination clients.
    pub fn coord_client_count(&self) -> usize {
        self.coord_clients.len()
    }

    /// A coordination client's turn: check its safety clock, keep its session alive, let go
    /// of what it holds when its time is up, start something new.
    pub(super) fn coord_next(&mut self, index: u32) {
        let now = self.now;
        let Some(client) = self.coord_clients.get(index as usize) else {
            return;
        };
        if client.paused_until > now {
            let at = client.paused_until;
            self.network.schedule(at, SimEvent::CoordNext(index));
            return;
        }
        self.check_safety_clock(index);
        self.keep_alive_if_due(index);
        self.retry_if_due(index);
        self.let_go_if_due(index);
        self.start_something(index);
        let next = now + self.coord_rng.range(TICK_US / 2, TICK_US * 2);
        let stop_at = self.coord_clients[index as usize].stop_at;
        let busy = {
            let c = &self.coord_clients[index as usize];
            c.holding.is_some() || c.waiting.is_some() || c.outstanding.is_some()
        };
        if now < stop_at || busy || self.coord_clients[index as usize].session.is_some() {
            self.network.schedule(next, SimEvent::CoordNext(index));
        }
    }

    /// Past its safe time the client stops relying on its session: what it held, it believed
    /// until exactly then.
    fn check_safety_clock(&mut self, index: u32) {
        let now = self.now;
        let client = &mut self.coord_clients[index as usize];
        if client.session.is_none() || now < client.safe_until {
            return;
        }
        let safe_until = client.safe_until;
        client.session = None;
        client.waiting = None;
        client.keepalive = None;
        if let Some(holding) = client.holding.take() {
            let key = (holding.space, holding.name, holding.item);
            self.coord.believed(key, holding.since, safe_until, index);
        }
    }

    fn keep_alive_if_due(&mut self, index: u32) {
        let now = self.now;
        let interval = TTL_MS * 1000 / 3;
        let client = &mut self.coord_clients[index as usize];
        let Some(_) = client.session else {
            return;
        };
        let stale = client
            .keepalive
            .is_some_and(|(_, sent)| now >= sent + interval);
        if now < client.next_keepalive_at || (client.keepalive.is_some() && !stale) {
            return;
        }
        client.keepalive_counter += 1;
        let request =
            KEEPALIVE_MARK | (u64::from(index) << 32) | (client.keepalive_counter & 0xffff_ffff);
        let target = client.target;
        let is_leader = self.raft(target).is_some_and(|r| r.role() == Role::Leader);
        if !is_leader {
            self.retarget(index);
            self.coord_clients[index as usize].next_keepalive_at = now + TICK_US;
            return;
        }
        let client = &mut self.coord_clients[index as usize];
        client.keepalive = Some((request, now));
        client.next_keepalive_at = now + interval;
        let accepted = self
            .raft_mut(target)
            .is_some_and(|raft| raft.read_index(request).is_ok());
        if accepted {
            self.process(target);
        } else {
            self.coord_clients[index as usize].keepalive = None;
        }
    }

    /// Points the client at the leader its member knows, or at a random member.
    fn retarget(&mut self, index: u32) {
        let target = self.coord_clients[index as usize].target;
        let known = self.raft(target).and_then(|r| r.leader());
        let next = match known {
            Some(leader) if leader != target => leader,
            _ => self.coord_rng.range(1, self.nodes.len() as u64 + 1),
        };
        self.coord_clients[index as usize].target = next;
    }

    /// Sends the command in flight again if it went unanswered for a while.
    fn retry_if_due(&mut self, index: u32) {
        let now = self.now;
        let Some((seq, command, first, last)) =
            self.coord_clients[index as usize].outstanding.clone()
        else {
            return;
        };
        if now < last + RETRY_TICKS * TICK_US {
            return;
        }
        self.retarget(index);
        self.coord_clients[index as usize].outstanding = Some((seq, command.clone(), first, now));
        self.send_command(index, seq, command);
    }

    fn send_command(&mut self, index: u32, seq: u64, command: Command) {
        let target = self.coord_clients[index as usize].target;
        let request = Request {
            client: CLIENT_MARK | u64::from(index),
            sequence: seq,
            command,
        };
        let result = self
            .raft_mut(target)
            .map(|raft| raft.propose(Payload::from(request.encode())));
        match result {
            Some(Ok(_)) => self.process(target),
            _ => self.retarget(index), // sent again at the next retry
        }
    }

    fn issue(&mut self, index: u32, command: Command) {
        let now = self.now;
        let client = &mut self.coord_clients[index as usize];
        let seq = client.next_seq;
        client.next_seq += 1;
        client.outstanding = Some((seq, command.clone(), now, now));
        self.send_command(index, seq, command);
    }

    fn let_go_if_due(&mut self, index: u32) {
        let now = self.now;
        let client = &self.coord_clients[index as usize];
        let (Some(holding), Some(session)) = (client.holding.clone(), client.session) else {
            return;
        };
        if client.outstanding.is_some() {
            return;
        }
        if now < holding.release_at {
            if holding.space == Space::Lock && now >= holding.next_write {
                // A write to the fenced resource, arriving after a network delay.
                let delay = self.coord_rng.range(0, 5 * TICK_US);
                self.network.schedule(
                    now + delay,
                    SimEvent::ResourceWrite {
                        token: holding.token,
                    },
                );
                if let Some(h) = self.coord_clients[index as usize].holding.as_mut() {
                    h.next_write = now + self.coord_rng.range(TICK_US, 5 * TICK_US);
                }
            }
            return;
        }
        // Stop believing first, then tell the cluster.
        self.coord_clients[index as usize].holding = None;
        let key = (holding.space, holding.name.clone(), holding.item);
        self.coord.believed(key, holding.since, now, index);
        let command = match holding.space {
            Space::Queue if self.coord_rng.chance(4, 5) => Command::Ack {
                queue: holding.name,
                item: holding.item,
                token: holding.token,
            },
            Space::Queue => Command::Requeue {
                queue: holding.name,
                item: holding.item,
                token: holding.token,
            },
            space => Command::Release {
                space,
                name: holding.name,
                session,
            },
        };
        self.issue(index, command);
    }

    fn start_something(&mut self, index: u32) {
        let now = self.now;
        let client = &self.coord_clients[index as usize];
        if client.outstanding.is_some() || client.holding.is_some() || client.waiting.is_some() {
            return;
        }
        if now >= client.stop_at {
            // Done: close the session so that the run ends with nothing held.
            if let Some(session) = client.session {
                self.coord_clients[index as usize].session = None;
                self.issue(index, Command::CloseSession { session });
            }
            return;
        }
        let Some(session) = client.session else {
            self.issue(index, Command::CreateSession { ttl_ms: TTL_MS });
            return;
        };
        let command = match self.coord_rng.range(0, 9) {
            0..=2 => Command::Acquire {
                space: Space::Lock,
                name: b"m".to_vec(),
                session,
                kind: LockKind::Mutex,
                mode: Mode::Exclusive,
                value: Vec::new(),
                wait: self.coord_rng.chance(3, 4),
            },
            3 | 4 => Command::Acquire {
                space: Space::Election,
                name: b"e".to_vec(),
                session,
                kind: LockKind::Election,
                mode: Mode::Exclusive,
                value: format!("c{index}").into_bytes(),
                wait: true,
            },
            5 => Command::Enqueue {
                queue: b"q".to_vec(),
                payload: vec![index as u8],
            },
            _ => Command::Claim {
                queue: b"q".to_vec(),
                session,
                wait: self.coord_rng.chance(1, 2),
            },
        };
        self.issue(index, command);
    }

    /// A keepalive confirmed by member `node` (its leadership was confirmed after the
    /// keepalive arrived): restart the session's deadline and answer the client.
    pub(super) fn coord_keepalive_confirmed(&mut self, node: NodeId, request: u64) {
        let index = ((request & !KEEPALIVE_MARK) >> 32) as u32;
        let Some(client) = self.coord_clients.get(index as usize) else {
            return;
        };
        let Some((pending, sent)) = client.keepalive else {
            return;
        };
        let Some(session) = client.session else {
            return;
        };
        if pending != request {
            return;
        }
        let local_ms = self.local_ms(node);
        let Some(sim_node) = self.node_mut(node) else {
            return;
        };
        // Like the runtime, a member answers keepalives only while it leads with its clock
        // running; otherwise the client tries another member.
        let is_leader = sim_node
            .raft
            .as_ref()
            .is_some_and(|r| r.role() == Role::Leader)
            && sim_node.session_clock.is_running();
        let ttl = if is_leader {
            sim_node.session_clock.keepalive(session, local_ms)
        } else {
            None
        };
        let client = &mut self.coord_clients[index as usize];
        client.keepalive = None;
        match ttl {
            Some(ttl_ms) if is_leader => {
                // Safe until the send time plus the TTL less the drift allowance.
                let safe = ttl_ms * 1000 * (1000 - crate::limits::SESSION_DRIFT_PER_MILLE) / 1000;
                client.safe_until = client.safe_until.max(sent + safe);
            }
            None if is_leader => {
                // The cluster no longer has the session. If the client still thought itself
                // safe, it was expired early.
                if self.now < client.safe_until {
                    let what = format!(
                        "session {session} of client {index} was gone at {} µs, inside its safe \
                         time (until {} µs)",
                        self.now, self.coord_clients[index as usize].safe_until
                    );
                    self.coord.violation("lock", what);
                }
            }
            _ => self.retarget(index),
        }
    }

    /// Node `id` applied the entry at `index`: keep its session clock and watch hub in step,
    /// check its primitives, and, if it is the first member to apply the entry, deliver the
    /// outcome and the grants to the clients.
    pub(super) fn coord_applied(
        &mut self,
        id: NodeId,
        index: u64,
        applied: Option<Applied>,
        events: Vec<Event>,
    ) {
        let local_ms = self.local_ms(id);
        let incarnation = self.node(id).map_or(0, |n| n.incarnation);
        // At most one election leader per name, at every revision, on every member.
        let leaders = self
            .node(id)
            .map_or(0, |n| n.state.holders(Space::Election, b"e").len());
        if leaders > 1 {
            let what = format!("node {id} has {leaders} leaders of election e after index {index}");
            self.coord.violation("election", what);
        }
        let Some(node) = self.node_mut(id) else {
            return;
        };
        if node.session_clock.is_running() {
            for event in &events {
                match event.kind {
                    EventKind::SessionCreated => {
                        let session =
                            u64::from_be_bytes(event.key[..8].try_into().unwrap_or([0; 8]));
                        node.session_clock.created(session, event.item, local_ms);
                    }
                    EventKind::SessionEnded(_) => node.session_clock.ended(event.session),
                    _ => {}
                }
            }
        }
        let routed = node.hub.publish(events.clone());
        // Determinism: every member produces the same events for the same entry.
        let hash = hash_events(&events);
        let position = (index - 1) as usize;
        if let Some(&recorded) = self.coord.event_hashes.get(position) {
            if recorded != hash {
                self.fail(format!(
                    "state-machine safety: node {id} produced other events for index {index}"
                ));
            }
        } else if position == self.coord.event_hashes.len() {
            self.coord.event_hashes.push(hash);
        }
        if index > self.coord.first_applied {
            self.coord.first_applied = index;
            self.first_apply(applied, &events);
        }
        for (key, events) in routed {
            self.watcher_receive(key, id, incarnation, events);
        }
    }

    /// Outcomes and grants, delivered to clients at the first apply anywhere.
    fn first_apply(&mut self, applied: Option<Applied>, events: &[Event]) {
        let now = self.now;
        if !self.coord.reference_full {
            if self.coord.reference.len() + events.len() > 4 * SIM_HISTORY_OPERATIONS_MAX {
                self.coord.reference_full = true;
            } else {
                self.coord.reference.extend(events.iter().cloned());
            }
        }
        for event in events {
            self.check_event(event);
        }
        if let Some(applied) = applied {
            if applied.client & CLIENT_MARK != 0 {
                let index = (applied.client & !CLIENT_MARK) as u32;
                self.deliver_outcome(index, applied.sequence, applied.outcome);
            }
        }
        for event in events {
            if event.kind != EventKind::Granted {
                continue;
            }
            let holder = self
                .coord_clients
                .iter()
                .position(|c| c.session == Some(event.session) && c.waiting == Some(event.space));
            if let Some(holder) = holder {
                let item = if event.space == Space::Queue {
                    event.item
                } else {
                    0
                };
                self.coord_clients[holder].waiting = None;
                self.start_holding(holder as u32, event.space, &event.key, item, event.token);
            }
        }
        let _ = now;
    }

    fn check_event(&mut self, event: &Event) {
        let now = self.now;
        match event.kind {
            EventKind::Granted => {
                self.coord.grants += 1;
                let key = (event.space, event.key.clone());
                let last = self.coord.last_token.get(&key).copied().unwrap_or(0);
                if event.token <= last {
                    let kind = if event.space == Space::Election {
                        "election"
                    } else {
                        "lock"
                    };
                    let what = format!(
                        "{:?} {} granted token {} after token {last}",
                        event.space,
                        String::from_utf8_lossy(&event.key),
                        event.token
                    );
                    self.coord.violation(kind, what);
                }
                self.coord.last_token.insert(key, event.token);
            }
            EventKind::Enqueued => self.coord.enqueued.push(event.item),
            EventKind::SessionEnded(Ended::SessionExpired) => {
                self.coord.expiries += 1;
                // The cluster must not expire a session its client may still rely on.
                let early = self
                    .coord_clients
                    .iter()
                    .find(|c| c.session == Some(event.session) && now < c.safe_until);
                if let Some(client) = early {
                    let what = format!(
                        "session {} of client {} expired at {now} µs, inside its safe time \
                         (until {} µs)",
                        event.session, client.index, client.safe_until
                    );
                    self.coord.violation("lock", what);
                }
            }
            _ => {}
        }
    }

    fn deliver_outcome(&mut self, index: u32, seq: u64, outcome: Outcome) {
        let now = self.now;
        let Some(client) = self.coord_clients.get_mut(index as usize) else {
            return;
        };
        let Some((outstanding, command, first_sent, _)) = client.outstanding.clone() else {
            return;
        };
        if outstanding != seq {
            return;
        }
        client.outstanding = None;
        match (command, outcome) {
            (Command::CreateSession { ttl_ms }, Outcome::Session { session, .. }) => {
                // The deadline started when the entry applied, after the first send.
                let safe = ttl_ms * 1000 * (1000 - crate::limits::SESSION_DRIFT_PER_MILLE) / 1000;
                client.session = Some(session);
                client.safe_until = first_sent + safe;
                client.next_keepalive_at = now;
            }
            (Command::Acquire { space, name, .. }, Outcome::Acquired { token, .. }) => {
                self.start_holding(index, space, &name, 0, token);
            }
            (Command::Acquire { space, .. }, Outcome::Queued { .. }) => {
                client.waiting = Some(space);
            }
            (Command::Claim { queue, .. }, Outcome::Claimed { item, token, .. }) => {
                self.start_holding(index, Space::Queue, &queue, item, token);
            }
            (Command::Claim { .. }, Outcome::Queued { .. }) => client.waiting = Some(Space::Queue),
            (Command::Ack { item, .. }, Outcome::Done { ok: true, .. }) => {
                let acks = self.coord.acks.entry(item).or_insert(0);
                *acks += 1;
                if *acks > 1 {
                    let what = format!("item {item} was acknowledged {acks} times");
                    self.coord.violation("queue", what);
                }
            }
            (_, Outcome::Refused { reason, .. })
                if reason.contains("does not exist")
                    && client.session.is_some()
                    && now < client.safe_until =>
            {
                let what = format!(
                    "client {index}'s session was gone at {now} µs inside its safe time: {reason}"
                );
                self.coord.violation("lock", what);
            }
            _ => {}
        }
    }

    /// The client learns it holds something: it believes so from now, if it is running and
    /// its session is still safe (a paused client learns when it resumes; by then its safe
    /// time may have passed).
    fn start_holding(&mut self, index: u32, space: Space, name: &[u8], item: u64, token: u64) {
        let now = self.now;
        let hold = self.coord_rng.range(1, 40) * TICK_US;
        let client = &mut self.coord_clients[index as usize];
        let since = now.max(client.paused_until);
        if client.session.is_none() || since >= client.safe_until {
            return; // it will not rely on it; the session's expiry releases it
        }
        client.holding = Some(Holding {
            space,
            name: name.to_vec(),
            item,
            token,
            since,
            release_at: since + hold,
            next_write: since,
        });
    }

    /// The fenced resource receives a write.
    pub(super) fn resource_write(&mut self, token: u64) {
        // The resource admits tokens no lower than the highest it has seen (a fence), and
        // each admitted token must be one the cluster granted for the mutex.
        if token < self.coord.resource_highest {
            return; // refused: a deposed holder's late write
        }
        let granted = self
            .coord
            .last_token
            .get(&(Space::Lock, b"m".to_vec()))
            .is_some_and(|&last| token <= last);
        if !granted {
            let what = format!("the resource admitted token {token}, which was never granted");
            self.coord.violation("lock", what);
        }
        self.coord.resource_highest = token;
    }

    /// Member `id`'s local clock, in ms: true time at the member's drifting rate, plus the
    /// jumps it took.
    pub(super) fn local_ms(&self, id: NodeId) -> u64 {
        let Some(node) = self.node(id) else {
            return 0;
        };
        let scaled = (self.now as i128 * (1_000_000 + node.clock_ppm as i128) / 1_000_000) as u64;
        (scaled + node.clock_jump_us) / 1000
    }

    /// Starts the session clock when node `id` becomes leader (every session gets a full TTL
    /// from now) and stops it when it stops leading, as the runtime does after every turn.
    pub(super) fn coord_sync_leadership(&mut self, id: NodeId) {
        let local_ms = self.local_ms(id);
        let Some(node) = self.node_mut(id) else {
            return;
        };
        let leading = node.raft.as_ref().is_some_and(|r| r.role() == Role::Leader);
        if !leading {
            node.session_clock.clear();
        } else if !node.session_clock.is_running() {
            let sessions: Vec<(u64, u64)> = node.state.sessions().collect();
            node.session_clock.restart(local_ms, sessions.into_iter());
        }
    }

    /// On every tick of a leader: propose the expiry of sessions whose keepalives stopped.
    pub(super) fn coord_tick(&mut self, id: NodeId) {
        self.coord_sync_leadership(id);
        let local_ms = self.local_ms(id);
        let election_ms = u64::from(self.settings.election_ticks) * TICK_US / 1000;
        let Some(node) = self.node_mut(id) else {
            return;
        };
        if !node.session_clock.is_running() {
            return;
        }
        let stall_ms = 4 * TICK_US / 1000;
        let due = node.session_clock.due(local_ms, stall_ms, 2 * election_ms);
        if due.is_empty() {
            return;
        }
        let request = Request {
            client: 0,
            sequence: 0,
            command: Command::ExpireSessions { sessions: due },
        };
        if let Some(raft) = node.raft.as_mut() {
            let _ = raft.propose(Payload::from(request.encode()));
        }
    }

    // ----- watchers -----

    /// Connects every disconnected watcher to a running member, from its next revision.
    pub(super) fn connect_watchers(&mut self) {
        for w in 0..self.watchers.len() {
            let (node, incarnation) = (self.watchers[w].node, self.watchers[w].incarnation);
            let connected = self
                .node(node)
                .is_some_and(|n| n.raft.is_some() && n.incarnation == incarnation);
            if connected {
                continue;
            }
            let running: Vec<NodeId> = self
                .ids()
                .into_iter()
                .filter(|&id| self.is_up(id))
                .collect();
            let Some(&node) =
                running.get(self.coord_rng.range(0, running.len().max(1) as u64) as usize)
            else {
                continue;
            };
            let incarnation = self.node(node).map_or(0, |n| n.incarnation);
            let watcher = &self.watchers[w];
            let key = WatchKey {
                slot: w,
                serial: u64::from(incarnation),
                watch: 1,
            };
            let (space, prefix, next) = (watcher.space, watcher.prefix.clone(), watcher.next);
            let Some(sim_node) = self.node_mut(node) else {
                continue;
            };
            let revision = sim_node.state.revision();
            sim_node.hub.note_revision(revision);
            match sim_node.hub.add(key, space, prefix, next) {
                Ok(past) => {
                    let watcher = &mut self.watchers[w];
                    watcher.node = node;
                    watcher.incarnation = incarnation;
                    self.watcher_receive(key, node, incarnation, past);
                }
                Err(WatchRefused::Compacted(revision)) => {
                    // List again at the member's revision and watch from the next one: the
                    // reference cursor moves to the first event after it.
                    self.coord.watch_resyncs += 1;
                    let cursor = self
                        .coord
                        .reference
                        .iter()
                        .position(|e| e.revision > revision)
                        .unwrap_or(self.coord.reference.len());
                    let watcher = &mut self.watchers[w];
                    watcher.next = revision + 1;
                    watcher.cursor = cursor;
                }
                Err(WatchRefused::Limit(why)) => {
                    self.fail(format!("watcher {w} refused: {why}"));
                }
            }
        }
    }

    /// Events for a watcher from member `node`: they must be the next committed events of
    /// its space and prefix, in order.
    fn watcher_receive(
        &mut self,
        key: WatchKey,
        node: NodeId,
        incarnation: u32,
        events: Vec<Event>,
    ) {
        let Some(watcher) = self.watchers.get(key.slot) else {
            return;
        };
        if watcher.node != node || watcher.incarnation != incarnation || events.is_empty() {
            return;
        }
        let (space, prefix) = (watcher.space, watcher.prefix.clone());
        let mut cursor = watcher.cursor;
        let mut problem = None;
        let full = self.coord.reference_full;
        for event in &events {
            if full {
                break;
            }
            // Skip reference events the watch does not cover.
            while let Some(next) = self.coord.reference.get(cursor) {
                if next.space == space
                    && next.key.starts_with(&prefix)
                    && next.revision >= watcher.next
                {
                    break;
                }
                cursor += 1;
            }
            match self.coord.reference.get(cursor) {
                Some(expected) if expected == event => cursor += 1,
                expected => {
                    problem = Some(format!(
                        "watcher {} on node {node} got {:?} at revision {}, expected {:?}",
                        key.slot,
                        event.kind,
                        event.revision,
                        expected.map(|e| (&e.kind, e.revision))
                    ));
                    break;
                }
            }
        }
        let last = events.last().map_or(0, |e| e.revision);
        self.coord.watch_events += events.len() as u64;
        let watcher = &mut self.watchers[key.slot];
        watcher.cursor = cursor;
        watcher.received += events.len() as u64;
        watcher.next = watcher.next.max(last + 1);
        if let Some(what) = problem {
            self.coord.violation("watch", what);
        }
    }

    /// After the run: every watcher got every event of its prefix; every item was
    /// acknowledged once or is still queued; nobody holds anything past its safe time.
    pub fn coord_finish(&mut self) {
        let now = self.now;
        for index in 0..self.coord_clients.len() {
            if let Some(holding) = self.coord_clients[index].holding.take() {
                let until = now.min(self.coord_clients[index].safe_until);
                let key = (holding.space, holding.name, holding.item);
                self.coord.believed(key, holding.since, until, index as u32);
            }
        }
        // Every watcher catches up with the end of the reference.
        self.connect_watchers();
        if !self.coord.reference_full {
            for w in 0..self.watchers.len() {
                let watcher = &self.watchers[w];
                // Up to what the watcher's member has applied (the reference may run ahead).
                let applied = self.node(watcher.node).map_or(0, |n| n.state.revision());
                let missing = self.coord.reference
                    [watcher.cursor.min(self.coord.reference.len())..]
                    .iter()
                    .filter(|e| {
                        e.space == watcher.space
                            && e.key.starts_with(&watcher.prefix)
                            && e.revision >= watcher.next
                            && e.revision <= applied
                    })
                    .count();
                if missing > 0 && watcher.node != 0 {
                    let what = format!(
                        "watcher {w} on node {} missed the last {missing} events of its prefix",
                        watcher.node
                    );
                    self.coord.violation("watch", what);
                }
            }
        }
        // Items: acknowledged once, or still in the queue.
        // A member's replica: a node removed from the cluster stopped applying.
        let Some(reference) = self.members().into_iter().find(|&id| self.is_up(id)) else {
            return;
        };
        let present: Vec<u64> = self
            .node(reference)
            .map(|n| n.state.queue_items(b"q"))
            .unwrap_or_default();
        let enqueued = self.coord.enqueued.clone();
        for item in enqueued {
            let acked = self.coord.acks.get(&item).copied().unwrap_or(0);
            let queued = present.contains(&item);
            if acked == 0 && !queued {
                // An ack whose answer the client never saw still removed it: fine only if
                // the queue's history says so.
                let acked_in_log = self.coord.reference.iter().any(|e| {
                    e.space == Space::Queue && e.kind == EventKind::Acked && e.item == item
                });
                if !acked_in_log && !self.coord.reference_full {
                    self.coord
                        .violation("queue", format!("item {item} vanished without an ack"));
                }
            }
            if acked == 1 && queued {
                self.coord.violation(
                    "queue",
                    format!("item {item} was acked and is still queued"),
                );
            }
        }
    }
}
