//! The state machine: keys with values, versions and revisions, one global revision
//! counter, sessions and the coordination primitives bound to them, and the last outcome per
//! client so that a retried request is applied once. Applying also produces change events
//! (see [`super::event`]) for watches and blocking calls.

use std::collections::BTreeMap;

use super::barrier::{Barriers, Counters};
use super::command::{Command, Compare, Condition, Op, Outcome, Request};
use super::event::{Effects, Ended, Event, EventKind, Space};
use super::group::{Groups, Member};
use super::lock::{AcquireRequest, Holder, Locks};
use super::queue::{ClaimedItem, Queues};
use super::session::Sessions;
use crate::codec::{Put, Reader};
use crate::limits::{
    CLIENT_RESULTS_MAX, KEY_BYTES_MAX, PRIMITIVES_MAX, RANGE_BYTES_MAX, RANGE_KEY_OVERHEAD_BYTES,
    RANGE_RESULTS_MAX, SESSIONS_MAX, SESSIONS_PER_CLIENT_MAX, VALUE_BYTES_MAX,
};
use crate::types::Index;

/// Version of the snapshot encoding written now (1: KV and clients only, still read).
pub const SNAPSHOT_VERSION: u8 = 3;

/// One key as stored, with its history counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Revision of the write that created the key.
    pub create_revision: u64,
    /// Revision of the last write to the key.
    pub mod_revision: u64,
    /// Writes since the key was created (1 after the first).
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    value: Vec<u8>,
    create_revision: u64,
    mod_revision: u64,
    version: u64,
}

/// The last request applied for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ClientRecord {
    sequence: u64,
    outcome: Outcome,
    /// Revision when the client was last active (for forgetting the least recent one).
    last_active: u64,
}

/// The replicated state of one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateMachine {
    revision: u64,
    applied_index: Index,
    data: BTreeMap<Vec<u8>, Stored>,
    clients: BTreeMap<u64, ClientRecord>,
    /// (last_active, client) for every remembered client, to find the least recent one.
    clients_by_activity: BTreeMap<(u64, u64), ()>,
    sessions: Sessions,
    locks: Locks,
    groups: Groups,
    queues: Queues,
    barriers: Barriers,
    counters: Counters,
    /// The context of the newest applied membership entry (the runtime keeps the members'
    /// addresses there), so that snapshots carry it.
    membership_context: Vec<u8>,
    /// Transactions refused because a fencing token no longer held (a statistic for the
    /// metrics: not part of the replicated state, not in snapshots).
    fencing_rejections: u64,
    /// Events of the entries applied since the last [`StateMachine::take_events`] (not part
    /// of the replicated state: callers drain it after every apply).
    events: Vec<Event>,
}

/// What applying one log entry produced, for answering the client that asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The client that issued the request.
    pub client: u64,
    /// Its sequence number.
    pub sequence: u64,
    /// The outcome (the stored one, for a retry of an applied request).
    pub outcome: Outcome,
    /// A claimed queue item's payload (for a claim granted at once).
    pub payload: Option<Vec<u8>>,
}

impl StateMachine {
    /// An empty store at revision 0.
    pub fn new() -> StateMachine {
        StateMachine::default()
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The last log index applied.
    pub fn applied_index(&self) -> Index {
        self.applied_index
    }

    /// Applies the entry at `index` holding `data`. Malformed data is skipped identically on
    /// every member (it cannot come from our own proposals, which are validated first).
    pub fn apply(&mut self, index: Index, data: &[u8]) -> Option<Applied> {
        debug_assert!(index > self.applied_index, "entries applied out of order");
        self.applied_index = index;
        let request = Request::decode(data).ok()?;
        if request.command.validate().is_err() {
            return None;
        }
        let outcome = self.apply_request(&request);
        let payload = match (&request.command, &outcome) {
            (Command::Claim { queue, .. }, Outcome::Claimed { item, .. }) => {
                self.queues.claimed(queue, *item).map(|c| c.payload)
            }
            _ => None,
        };
        Some(Applied {
            client: request.client,
            sequence: request.sequence,
            outcome,
            payload,
        })
    }

    /// The events produced by the entries applied since the last call, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Records that a no-op entry at `index` was applied.
    pub fn apply_noop(&mut self, index: Index) {
        self.applied_index = self.applied_index.max(index);
    }

    /// Applies a membership entry at `index`: records its context (no revision: nothing a
    /// client watches changed).
    pub fn apply_membership(&mut self, index: Index, context: &[u8]) {
        self.apply_noop(index);
        self.membership_context = context.to_vec();
    }

    /// Transactions this replica refused because a fencing token no longer held.
    pub fn fencing_rejections(&self) -> u64 {
        self.fencing_rejections
    }

    /// Lock, read-write lock and semaphore grants held.
    pub fn locks_held(&self) -> usize {
        self.locks.held(Space::Lock)
    }

    /// The context of the newest applied membership entry (empty before the first).
    pub fn membership_context(&self) -> &[u8] {
        &self.membership_context
    }

    fn apply_request(&mut self, request: &Request) -> Outcome {
        if request.sequence != 0 {
            if let Some(record) = self.clients.get(&request.client) {
                if request.sequence == record.sequence {
                    return record.outcome.clone(); // a retry: answer, do not apply again
                }
                if request.sequence < record.sequence {
                    return Outcome::Stale {
                        revision: self.revision,
                    };
                }
            }
        }
        let outcome = self.execute(request.client, &request.command);
        if request.sequence != 0 {
            self.remember(request.client, request.sequence, outcome.clone());
        }
        outcome
    }

    fn execute(&mut self, client: u64, command: &Command) -> Outcome {
        match command {
            Command::Put { key, value } => {
                self.revision += 1;
                self.put(key, value);
                Outcome::Put {
                    revision: self.revision,
                }
            }
            Command::Delete { key } => {
                let deleted = self.data.contains_key(key);
                if deleted {
                    self.revision += 1;
                    self.delete(key);
                }
                Outcome::Delete {
                    revision: self.revision,
                    deleted,
                }
            }
            Command::CompareAndSwap {
                key,
                expected,
                value,
            } => {
                let current = self.data.get(key).map(|s| &s.value);
                let swapped = current == expected.as_ref();
                if swapped {
                    self.revision += 1;
                    self.put(key, value);
                }
                Outcome::CompareAndSwap {
                    revision: self.revision,
                    swapped,
                }
            }
            Command::Txn {
                conditions,
                success,
                failure,
            } => {
                let succeeded = conditions.iter().all(|c| self.holds(c));
                let fenced = |c: &Condition| {
                    matches!(c.compare, Compare::LockToken(_) | Compare::LeaderToken(_))
                };
                if !succeeded && conditions.iter().any(|c| fenced(c) && !self.holds(c)) {
                    self.fencing_rejections += 1;
                }
                let ops = if succeeded { success } else { failure };
                if !ops.is_empty() {
                    self.revision += 1;
                    for op in ops {
                        match op {
                            Op::Put { key, value } => self.put(key, value),
                            Op::Delete { key } => self.delete(key),
                        }
                    }
                }
                Outcome::Txn {
                    revision: self.revision,
                    succeeded,
                }
            }
            _ => match self.check_owner(client, command) {
                Ok(()) => self.execute_primitive(client, command),
                Err(reason) => Outcome::Refused {
                    revision: self.revision,
                    reason,
                },
            },
        }
    }

    /// Sessions and the primitives bound to them.
    /// A session is used only by the client that created it, and sessions are expired only
    /// by the leader (client 0): a client cannot release, close or expire another's.
    fn check_owner(&self, client: u64, command: &Command) -> Result<(), String> {
        let session = match command {
            Command::ExpireSessions { .. } if client != 0 => {
                return Err("sessions are expired by the leader only".into())
            }
            Command::CloseSession { session }
            | Command::Acquire { session, .. }
            | Command::Release { session, .. }
            | Command::Join { session, .. }
            | Command::Leave { session, .. }
            | Command::Claim { session, .. }
            | Command::Enter { session, .. }
            | Command::Exit { session, .. } => *session,
            _ => return Ok(()),
        };
        match self.sessions.get(session) {
            Some(found) if found.owner != client => {
                Err(format!("session {session} belongs to another client"))
            }
            _ => Ok(()),
        }
    }

    fn execute_primitive(&mut self, client: u64, command: &Command) -> Outcome {
        let refused = |revision: u64, reason: String| Outcome::Refused { revision, reason };
        let now = self.revision;
        match command {
            Command::CreateSession { ttl_ms } => {
                if self.sessions.len() >= SESSIONS_MAX {
                    return refused(now, format!("{SESSIONS_MAX} sessions are open already"));
                }
                if self.sessions.owned_by(client) >= SESSIONS_PER_CLIENT_MAX {
                    return refused(
                        now,
                        format!(
                            "this client has {SESSIONS_PER_CLIENT_MAX} sessions open already \
                             (the limit per client); close some first"
                        ),
                    );
                }
                let mut fx = self.effects();
                let id = fx.bump();
                fx.emit(Space::Session, &id.to_be_bytes(), EventKind::SessionCreated)
                    .item = *ttl_ms;
                let _ = self.sessions.create(id, *ttl_ms, client); // room checked above
                Outcome::Session {
                    revision: id,
                    session: id,
                }
            }
            Command::CloseSession { session } => {
                let ok = self.end_session(*session, Ended::SessionClosed);
                Outcome::Done {
                    revision: self.revision,
                    ok,
                }
            }
            Command::ExpireSessions { sessions } => {
                let mut ok = false;
                for session in sessions {
                    ok |= self.end_session(*session, Ended::SessionExpired);
                }
                Outcome::Done {
                    revision: self.revision,
                    ok,
                }
            }
            Command::Acquire {
                space,
                name,
                session,
                kind,
                mode,
                value,
                wait,
            } => {
                if let Err(reason) = self.admit(*space, name, *session) {
                    return refused(now, reason);
                }
                let request = AcquireRequest {
                    space: *space,
                    name,
                    session: *session,
                    kind: *kind,
                    mode: *mode,
                    value,
                    wait: *wait,
                };
                let mut fx = Effects {
                    revision: &mut self.revision,
                    events: &mut self.events,
                };
                let outcome = self.locks.acquire(request, &mut fx);
                self.note_hold(*space, name, *session);
                outcome
            }
            Command::Release {
                space,
                name,
                session,
            } => {
                let mut fx = Effects {
                    revision: &mut self.revision,
                    events: &mut self.events,
                };
                let ok = if *space == Space::Queue {
                    self.queues.cancel_wait(name, *session, &mut fx)
                } else {
                    self.locks
                        .release(*space, name, *session, Ended::ByRequest, &mut fx)
                };
                self.note_hold(*space, name, *session);
                Outcome::Done {
                    revision: self.revision,
                    ok,
                }
            }
            Command::Proclaim { name, token, value } => {
                let mut fx = Effects {
                    revision: &mut self.revision,
                    events: &mut self.events,
                };
                let ok = self.locks.proclaim(name, *token, value, &mut fx);
                Outcome::Done {
                    revision: self.revision,
                    ok,
                }
            }
            Command::Join {
                group,
                member,
                session,
                metadata,
            } => {
                if let Err(reason) = self.admit(Space::Group, group, *session) {
                    return refused(now, reason);
                }
                let mut fx = Effects {
                    revision: &mut self.revision,
                    events: &mut self.events,
                };
                let outcome = self.groups.join(group, member, *session, metadata, &mut fx);
                self.note_hold(Space::Group, group, *session);
                outcome
            }
            Command::Leave {
                group,
                member,
                session,
            } => {
                let mut fx = Effects {
                    revision: &mut self.revision,
                    events: &mut self.events,
                };
                let ok = self
                    .groups
                    .leave(group, member, *session, Ended::ByRequest, &mut fx);
                self.note_hold(Space::Group, group, *session);
                Outcome::Done {
                    revision: self.revision,
                    ok,
                }
            }
            Command::Enqueue { queue, payload } => {
                if let Err(reason) = self.room_for(Space::Queue, queue) {
                    return refused(now, reason);
                }
                let mut fx = Effects {
                    revision: &mut self.revision,
                    events: &mut self.events,
                };
                self.queues.enqueue(queue, payload, &mut fx)
            }
            Command::Claim {
                queue,
                session,
                wait,
            } => {
                if let Err(reason) = self.admit(Space::Queue, queue, *session) {
                    return refused(now, reason);
                }
                let mut fx = Effects {
                    revision: &mut self.revision,
                    events: &mut self.events,
                };
                let outcome = self.queues.claim(queue, *session, *wait, &mut fx);
                self.note_hold(Space::Queue, queue, *session);
                outcome
            }
            Command::Ack { queue, item, token } | Command::Requeue { queue, item, token } => {
                let ack = matches!(command, Command::Ack { .. });
                let claimer = self.queues.claimed(queue, *item).map(|c| c.session);
                let mut fx = Effects {
                    revision: &mut self.revision,
                    events: &mut self.events,
                };
                let ok = self.queues.settle(queue, *item, *token, ack, &mut fx);
                if let Some(session) = claimer {
                    self.note_hold(Space::Queue, queue, session);
                }
                Outcome::Done {
                    revision: self.revision,
                    ok,
                }
            }
            Command::Enter {
                barrier,
                participants,
                session,
            } => {
                if let Err(reason) = self.admit(Space::Barrier, barrier, *session) {
                    return refused(now, reason);
                }
                let mut fx = Effects {
                    revision: &mut self.revision,
                    events: &mut self.events,
                };
                let (outcome, released) =
                    self.barriers
                        .enter(barrier, *participants, *session, &mut fx);
                self.note_hold(Space::Barrier, barrier, *session);
                for other in released {
                    self.note_hold(Space::Barrier, barrier, other);
                }
                outcome
            }
            Command::Exit { barrier, session } => {
                let mut fx = Effects {
                    revision: &mut self.revision,
                    events: &mut self.events,
                };
                let ok = self
                    .barriers
                    .exit(barrier, *session, Ended::ByRequest, &mut fx);
                self.note_hold(Space::Barrier, barrier, *session);
                Outcome::Done {
                    revision: self.revision,
                    ok,
                }
            }
            Command::Add { counter, delta } => {
                if let Err(reason) = self.room_for(Space::Counter, counter) {
                    return refused(now, reason);
                }
                let mut fx = Effects {
                    revision: &mut self.revision,
                    events: &mut self.events,
                };
                self.counters.add(counter, *delta, &mut fx)
            }
            Command::Put { .. }
            | Command::Delete { .. }
            | Command::CompareAndSwap { .. }
            | Command::Txn { .. } => unreachable!("key-value commands are executed above"),
        }
    }

    fn effects(&mut self) -> Effects<'_> {
        Effects {
            revision: &mut self.revision,
            events: &mut self.events,
        }
    }

    /// Checks that `session` is alive and may take one more name, and that a new name fits.
    fn admit(&self, space: Space, name: &[u8], session: u64) -> Result<(), String> {
        self.sessions.check(session, &(space, name.to_vec()))?;
        self.room_for(space, name)
    }

    /// Checks that `name` exists already or one more primitive fits.
    fn room_for(&self, space: Space, name: &[u8]) -> Result<(), String> {
        let exists = match space {
            Space::Lock | Space::Election => self.locks.contains(space, name),
            Space::Group => self.groups.contains(name),
            Space::Queue => self.queues.contains(name),
            Space::Barrier => self.barriers.contains(name),
            Space::Counter => self.counters.contains(name),
            Space::Kv | Space::Session => true,
        };
        let count = self.locks.len()
            + self.groups.len()
            + self.queues.len()
            + self.barriers.len()
            + self.counters.len();
        if !exists && count >= PRIMITIVES_MAX {
            return Err(format!(
                "{PRIMITIVES_MAX} locks, elections, groups, queues, barriers and counters exist already"
            ));
        }
        Ok(())
    }

    /// Keeps the session's index of held names in step with the primitive.
    fn note_hold(&mut self, space: Space, name: &[u8], session: u64) {
        let involved = match space {
            Space::Lock | Space::Election => self.locks.involves(space, name, session),
            Space::Group => self.groups.involves(name, session),
            Space::Queue => self.queues.involves(name, session),
            Space::Barrier => self.barriers.involves(name, session),
            Space::Kv | Space::Counter | Space::Session => false,
        };
        let resource = (space, name.to_vec());
        if involved {
            self.sessions.hold(session, resource);
        } else {
            self.sessions.unhold(session, &resource);
        }
    }

    /// Ends a session and releases everything it held; false if it did not exist.
    fn end_session(&mut self, session: u64, why: Ended) -> bool {
        let Some(ended) = self.sessions.remove(session) else {
            return false;
        };
        let mut fx = Effects {
            revision: &mut self.revision,
            events: &mut self.events,
        };
        fx.bump();
        fx.emit(
            Space::Session,
            &session.to_be_bytes(),
            EventKind::SessionEnded(why),
        )
        .session = session;
        for (space, name) in ended.holds {
            match space {
                Space::Lock | Space::Election => {
                    self.locks.release(space, &name, session, why, &mut fx);
                }
                Space::Group => self.groups.end_session(&name, session, why, &mut fx),
                Space::Queue => self.queues.end_session(&name, session, why, &mut fx),
                Space::Barrier => {
                    self.barriers.exit(&name, session, why, &mut fx);
                }
                Space::Kv | Space::Counter | Space::Session => {}
            }
        }
        true
    }

    /// Writes `key` at the current revision.
    fn put(&mut self, key: &[u8], value: &[u8]) {
        let revision = self.revision;
        let mut event = Event::new(revision, Space::Kv, key, EventKind::Put);
        event.value = value.to_vec();
        self.events.push(event);
        match self.data.get_mut(key) {
            Some(stored) => {
                stored.value = value.to_vec();
                stored.mod_revision = revision;
                stored.version += 1;
            }
            None => {
                self.data.insert(
                    key.to_vec(),
                    Stored {
                        value: value.to_vec(),
                        create_revision: revision,
                        mod_revision: revision,
                        version: 1,
                    },
                );
            }
        }
    }

    /// Deletes `key` (if present) at the current revision.
    fn delete(&mut self, key: &[u8]) {
        if self.data.remove(key).is_some() {
            let event = Event::new(self.revision, Space::Kv, key, EventKind::Delete);
            self.events.push(event);
        }
    }

    fn holds(&self, condition: &Condition) -> bool {
        let stored = self.data.get(&condition.key);
        match &condition.compare {
            Compare::Exists(exists) => stored.is_some() == *exists,
            Compare::Value(value) => stored.is_some_and(|s| &s.value == value),
            Compare::Version(version) => stored.map_or(0, |s| s.version) == *version,
            Compare::ModRevision(revision) => stored.map_or(0, |s| s.mod_revision) == *revision,
            Compare::LockToken(token) => self.locks.held_with(Space::Lock, &condition.key, *token),
            Compare::LeaderToken(token) => {
                self.locks
                    .held_with(Space::Election, &condition.key, *token)
            }
        }
    }

    fn remember(&mut self, client: u64, sequence: u64, outcome: Outcome) {
        let last_active = self.revision;
        if let Some(old) = self.clients.insert(
            client,
            ClientRecord {
                sequence,
                outcome,
                last_active,
            },
        ) {
            self.clients_by_activity.remove(&(old.last_active, client));
        }
        self.clients_by_activity.insert((last_active, client), ());
        // Bounded: forget the least recently active client once over the limit.
        while self.clients.len() > CLIENT_RESULTS_MAX {
            let Some(((_, oldest), ())) = self.clients_by_activity.pop_first() else {
                break;
            };
            self.clients.remove(&oldest);
        }
    }

    /// The key, if present.
    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.data.get(key).map(|stored| to_key_value(key, stored))
    }

    /// Keys starting with `prefix`, in order, at most `limit` (capped by
    /// [`RANGE_RESULTS_MAX`]) and about [`RANGE_BYTES_MAX`] bytes (always at least one key);
    /// the flag says whether more matched.
    pub fn range(&self, prefix: &[u8], limit: usize) -> (Vec<KeyValue>, bool) {
        // 0 asks for as many as one reply holds (as the C ABI documents); never fewer than 1.
        let limit = if limit == 0 {
            RANGE_RESULTS_MAX
        } else {
            limit.min(RANGE_RESULTS_MAX)
        };
        let mut matching = self
            .data
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .peekable();
        let mut found = Vec::new();
        let mut bytes = 0usize;
        // Bounded by `limit` and the byte budget.
        while let Some((key, stored)) = matching
            .next_if(|_| found.len() < limit && (found.is_empty() || bytes < RANGE_BYTES_MAX))
        {
            bytes += key.len() + stored.value.len() + RANGE_KEY_OVERHEAD_BYTES;
            found.push(to_key_value(key, stored));
        }
        let more = matching.peek().is_some();
        (found, more)
    }

    /// The live sessions with their TTLs (ms), in id order.
    pub fn sessions(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.sessions.iter()
    }

    /// A live session's TTL in ms.
    pub fn session_ttl_ms(&self, session: u64) -> Option<u64> {
        self.sessions.get(session).map(|s| s.ttl_ms)
    }

    /// The holders of a lock (the leader of an election), in grant order.
    pub fn holders(&self, space: Space, name: &[u8]) -> &[Holder] {
        self.locks.holders(space, name)
    }

    /// The sessions waiting for a lock or an election, first in line first.
    pub fn waiters(&self, space: Space, name: &[u8]) -> Vec<u64> {
        self.locks.waiters(space, name)
    }

    /// A group's members.
    pub fn members(&self, group: &[u8]) -> Vec<Member> {
        self.groups.list(group)
    }

    /// A claimed queue item.
    pub fn claimed(&self, queue: &[u8], item: u64) -> Option<ClaimedItem> {
        self.queues.claimed(queue, item)
    }

    /// The ids of a queue's items.
    pub fn queue_items(&self, queue: &[u8]) -> Vec<u64> {
        self.queues.items(queue)
    }

    /// (items, unclaimed items, waiting sessions) of a queue.
    pub fn queue_counts(&self, queue: &[u8]) -> (usize, usize, usize) {
        self.queues.counts(queue)
    }

    /// (arrived, participants) of a barrier not yet open.
    pub fn barrier(&self, name: &[u8]) -> Option<(u32, u32)> {
        self.barriers.state(name)
    }

    /// A counter's value (0 when never added to).
    pub fn counter(&self, name: &[u8]) -> i64 {
        self.counters.get(name)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Encodes the whole state (the snapshot of this state machine).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        let _ = self.encode_into(&mut out); // writing to a Vec cannot fail
        out
    }

    /// Bytes [`StateMachine::encode`] produces, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        let keys: usize = self
            .data
            .iter()
            .map(|(key, stored)| 8 + key.len() + stored.value.len() + 24)
            .sum();
        let clients: usize = self
            .clients
            .values()
            .map(|record| 24 + record.outcome.encoded_len())
            .sum();
        1 + 24
            + keys
            + 8
            + clients
            + self.encode_primitives().len()
            + 4
            + self.membership_context.len()
    }

    /// The sessions and primitives, encoded (small next to the keys: bounded by the limits
    /// on sessions, holders and waiters, so they are encoded in one piece).
    fn encode_primitives(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.sessions.encode(&mut out);
        self.locks.encode(&mut out);
        self.groups.encode(&mut out);
        self.queues.encode(&mut out);
        self.barriers.encode(&mut out);
        self.counters.encode(&mut out);
        out
    }

    /// Streams the encoding into `writer`, a key at a time (no copy of the whole state is
    /// ever held in memory).
    pub fn encode_into(&self, writer: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(4096);
        out.put_u8(SNAPSHOT_VERSION);
        out.put_u64(self.revision);
        out.put_u64(self.applied_index);
        out.put_u64(self.data.len() as u64);
        for (key, stored) in &self.data {
            out.put_bytes(key);
            out.put_bytes(&stored.value);
            out.put_u64(stored.create_revision);
            out.put_u64(stored.mod_revision);
            out.put_u64(stored.version);
            if out.len() >= 64 * 1024 {
                writer.write_all(&out)?;
                out.clear();
            }
        }
        out.put_u64(self.clients.len() as u64);
        for (client, record) in &self.clients {
            out.put_u64(*client);
            out.put_u64(record.sequence);
            out.put_u64(record.last_active);
            record.outcome.encode(&mut out);
            if out.len() >= 64 * 1024 {
                writer.write_all(&out)?;
                out.clear();
            }
        }
        writer.write_all(&out)?;
        writer.write_all(&self.encode_primitives())?;
        let mut tail = Vec::with_capacity(4 + self.membership_context.len());
        tail.put_bytes(&self.membership_context);
        writer.write_all(&tail)
    }

    /// Decodes what [`StateMachine::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<StateMachine, String> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8()?;
        if !(1..=SNAPSHOT_VERSION).contains(&version) {
            return Err(format!("unknown state snapshot version {version}"));
        }
        let mut state = StateMachine {
            revision: reader.u64()?,
            applied_index: reader.u64()?,
            ..StateMachine::default()
        };
        let keys = reader.u64()?;
        // Bounded by the input: every key takes at least 32 bytes.
        if keys > reader.bytes.len() as u64 / 32 {
            return Err(format!("{keys} keys cannot fit in the snapshot"));
        }
        for _ in 0..keys {
            let key = reader.bytes(KEY_BYTES_MAX)?.to_vec();
            let stored = Stored {
                value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
                create_revision: reader.u64()?,
                mod_revision: reader.u64()?,
                version: reader.u64()?,
            };
            state.data.insert(key, stored);
        }
        let clients = reader.u64()?;
        if clients > CLIENT_RESULTS_MAX as u64 {
            return Err(format!("{clients} client records exceed the limit"));
        }
        for _ in 0..clients {
            let client = reader.u64()?;
            let record = ClientRecord {
                sequence: reader.u64()?,
                last_active: reader.u64()?,
                outcome: Outcome::decode(&mut reader)?,
            };
            state
                .clients_by_activity
                .insert((record.last_active, client), ());
            state.clients.insert(client, record);
        }
        if version >= 2 {
            state.sessions = Sessions::decode(&mut reader)?;
            state.locks = Locks::decode(&mut reader)?;
            state.groups = Groups::decode(&mut reader)?;
            state.queues = Queues::decode(&mut reader)?;
            state.barriers = Barriers::decode(&mut reader)?;
            state.counters = Counters::decode(&mut reader)?;
        }
        if version >= 3 {
            state.membership_context = reader
                .bytes(crate::limits::MEMBERSHIP_CONTEXT_BYTES_MAX)?
                .to_vec();
        }
        reader.finish()?;
        Ok(state)
    }
}

fn to_key_value(key: &[u8], stored: &Stored) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: stored.value.clone(),
        create_revision: stored.create_revision,
        mod_revision: stored.mod_revision,
        version: stored.version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::command::{LockKind, Mode};

    fn request(client: u64, sequence: u64, command: Command) -> Vec<u8> {
        Request {
            client,
            sequence,
            command,
        }
        .encode()
    }

    fn put(key: &str, value: &str) -> Command {
        Command::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn revisions_versions_and_ranges() {
        let mut state = StateMachine::new();
        state.apply(1, &request(1, 0, put("a/1", "x")));
        state.apply(2, &request(1, 0, put("a/2", "y")));
        state.apply(3, &request(1, 0, put("a/1", "z")));
        state.apply(4, &request(1, 0, put("b", "w")));
        let a1 = state.get(b"a/1").unwrap();
        assert_eq!((a1.create_revision, a1.mod_revision, a1.version), (1, 3, 2));
        let (found, more) = state.range(b"a/", 10);
        assert_eq!(found.len(), 2);
        assert!(!more);
        let (found, more) = state.range(b"a/", 1);
        assert_eq!((found.len(), more), (1, true));
        assert_eq!(state.revision(), 4);
    }

    #[test]
    fn a_range_of_large_values_stops_at_its_byte_budget() {
        let mut state = StateMachine::new();
        let big = vec![b'x'; 400 * 1024];
        for i in 0..10u64 {
            let command = Command::Put {
                key: format!("big/{i}").into_bytes(),
                value: big.clone(),
            };
            state.apply(i + 1, &request(1, 0, command));
        }
        let (found, more) = state.range(b"big/", 100);
        assert_eq!(
            found.len(),
            2,
            "the second 400 KiB value crosses the 512 KiB budget"
        );
        assert!(more);
    }

    #[test]
    fn a_retried_request_is_applied_once_and_older_ones_are_stale() {
        let mut state = StateMachine::new();
        let first = state.apply(1, &request(7, 1, put("k", "v1"))).unwrap();
        let retry = state.apply(2, &request(7, 1, put("k", "v1"))).unwrap();
        assert_eq!(first.outcome, retry.outcome);
        assert_eq!(
            state.get(b"k").unwrap().version,
            1,
            "the retry was applied again"
        );
        state.apply(3, &request(7, 2, put("k", "v2")));
        let stale = state.apply(4, &request(7, 1, put("k", "v1"))).unwrap();
        assert!(matches!(stale.outcome, Outcome::Stale { .. }));
        assert_eq!(state.get(b"k").unwrap().value, b"v2");
    }

    #[test]
    fn compare_and_swap_and_transactions_are_atomic() {
        let mut state = StateMachine::new();
        let cas = |expected: Option<&str>, value: &str| Command::CompareAndSwap {
            key: b"k".to_vec(),
            expected: expected.map(|e| e.as_bytes().to_vec()),
            value: value.into(),
        };
        let created = state.apply(1, &request(1, 0, cas(None, "a"))).unwrap();
        assert!(matches!(
            created.outcome,
            Outcome::CompareAndSwap { swapped: true, .. }
        ));
        let lost = state.apply(2, &request(1, 0, cas(Some("b"), "c"))).unwrap();
        assert!(matches!(
            lost.outcome,
            Outcome::CompareAndSwap {
                swapped: false,
                revision: 1
            }
        ));
        let txn = Command::Txn {
            conditions: vec![Condition {
                key: b"k".to_vec(),
                compare: Compare::Value(b"a".to_vec()),
            }],
            success: vec![
                Op::Put {
                    key: b"k".to_vec(),
                    value: b"b".to_vec(),
                },
                Op::Put {
                    key: b"other".to_vec(),
                    value: b"1".to_vec(),
                },
            ],
            failure: vec![],
        };
        let done = state.apply(3, &request(1, 0, txn)).unwrap();
        assert_eq!(
            done.outcome,
            Outcome::Txn {
                revision: 2,
                succeeded: true
            }
        );
        assert_eq!(
            state.get(b"other").unwrap().mod_revision,
            2,
            "one revision per txn"
        );
    }

    #[test]
    fn snapshots_round_trip_and_garbage_is_skipped_deterministically() {
        let mut state = StateMachine::new();
        state.apply(1, &request(3, 1, put("k", "v")));
        assert!(state.apply(2, b"garbage").is_none());
        state.take_events();
        assert_eq!(state.applied_index(), 2);
        let restored = StateMachine::decode(&state.encode()).unwrap();
        assert_eq!(restored, state);
        assert_eq!(state.encode().len(), state.encoded_len());
        let encoded = state.encode();
        for cut in 0..encoded.len() {
            assert!(StateMachine::decode(&encoded[..cut]).is_err());
        }
    }

    /// Applies commands one after another (no deduplication), returning their outcomes.
    struct Driver {
        state: StateMachine,
        index: u64,
    }

    impl Driver {
        fn new() -> Driver {
            Driver {
                state: StateMachine::new(),
                index: 0,
            }
        }

        fn run(&mut self, command: Command) -> Outcome {
            // Expiries come from the leader (client 0), everything else from client 1.
            let client = u64::from(!matches!(command, Command::ExpireSessions { .. }));
            self.run_as(client, command)
        }

        fn run_as(&mut self, client: u64, command: Command) -> Outcome {
            self.index += 1;
            let applied = self.state.apply(self.index, &request(client, 0, command));
            applied.expect("a valid command").outcome
        }

        fn session(&mut self) -> u64 {
            match self.run(Command::CreateSession { ttl_ms: 5_000 }) {
                Outcome::Session { session, .. } => session,
                other => panic!("no session: {other:?}"),
            }
        }

        fn acquire(&mut self, name: &str, session: u64, kind: LockKind, mode: Mode) -> Outcome {
            let space = if kind == LockKind::Election {
                Space::Election
            } else {
                Space::Lock
            };
            self.run(Command::Acquire {
                space,
                name: name.into(),
                session,
                kind,
                mode,
                value: format!("v{session}").into_bytes(),
                wait: true,
            })
        }

        fn holders(&self, space: Space, name: &str) -> Vec<u64> {
            let holders = self.state.holders(space, name.as_bytes());
            holders.iter().map(|h| h.session).collect()
        }
    }

    fn token(outcome: &Outcome) -> u64 {
        match outcome {
            Outcome::Acquired { token, .. } | Outcome::Claimed { token, .. } => *token,
            other => panic!("not granted: {other:?}"),
        }
    }

    #[test]
    fn one_client_cannot_take_every_session() {
        let mut d = Driver::new();
        let create = || Command::CreateSession { ttl_ms: 5_000 };
        let mut first = None;
        for _ in 0..SESSIONS_PER_CLIENT_MAX {
            match d.run_as(7, create()) {
                Outcome::Session { session, .. } => first = first.or(Some(session)),
                other => panic!("no session: {other:?}"),
            }
        }
        match d.run_as(7, create()) {
            Outcome::Refused { reason, .. } => assert!(reason.contains("per client"), "{reason}"),
            other => panic!("over the limit: {other:?}"),
        }
        // Another client is served, and the first gets room back once it closes one.
        assert!(matches!(d.run_as(8, create()), Outcome::Session { .. }));
        let session = first.unwrap();
        assert!(matches!(
            d.run_as(7, Command::CloseSession { session }),
            Outcome::Done { .. }
        ));
        assert!(matches!(d.run_as(7, create()), Outcome::Session { .. }));
        // The count survives a snapshot.
        let decoded = StateMachine::decode(&d.state.encode()).unwrap();
        assert_eq!(decoded.sessions.owned_by(7), SESSIONS_PER_CLIENT_MAX);
    }

    #[test]
    fn a_mutex_is_fifo_fenced_and_released_by_expiry() {
        let mut d = Driver::new();
        let (a, b, c) = (d.session(), d.session(), d.session());
        let first = token(&d.acquire("m", a, LockKind::Mutex, Mode::Exclusive));
        assert!(matches!(
            d.acquire("m", b, LockKind::Mutex, Mode::Exclusive),
            Outcome::Queued { .. }
        ));
        assert!(matches!(
            d.acquire("m", c, LockKind::Mutex, Mode::Exclusive),
            Outcome::Queued { .. }
        ));
        let again = token(&d.acquire("m", a, LockKind::Mutex, Mode::Exclusive));
        assert_eq!(again, first, "a holder asking again keeps its token");
        let other = d.session();
        let try_lock = d.run(Command::Acquire {
            space: Space::Lock,
            name: b"m".to_vec(),
            session: other,
            kind: LockKind::Mutex,
            mode: Mode::Exclusive,
            value: Vec::new(),
            wait: false,
        });
        assert!(matches!(try_lock, Outcome::Busy { .. }));
        d.state.take_events();
        // a's session expires: b (first in line) gets the lock with a larger token.
        d.run(Command::ExpireSessions { sessions: vec![a] });
        assert_eq!(d.holders(Space::Lock, "m"), vec![b]);
        let granted = d.state.holders(Space::Lock, b"m")[0].token;
        assert!(granted > first);
        let events = d.state.take_events();
        assert!(events
            .iter()
            .any(|e| e.kind == EventKind::Ended(Ended::SessionExpired)
                && e.session == a
                && e.token == first));
        assert!(events
            .iter()
            .any(|e| e.kind == EventKind::Granted && e.session == b && e.token == granted));
        // Releasing by b grants c; a wrong kind is refused.
        d.run(Command::Release {
            space: Space::Lock,
            name: b"m".to_vec(),
            session: b,
        });
        assert_eq!(d.holders(Space::Lock, "m"), vec![c]);
        let wrong = d.acquire("m", b, LockKind::RwLock, Mode::Shared);
        assert!(matches!(wrong, Outcome::Refused { .. }), "{wrong:?}");
        let unknown = d.acquire("m", a, LockKind::Mutex, Mode::Exclusive);
        assert!(
            matches!(unknown, Outcome::Refused { .. }),
            "expired session: {unknown:?}"
        );
        d.run(Command::CloseSession { session: c });
        assert!(d.holders(Space::Lock, "m").is_empty());
        assert!(
            !d.state.locks.contains(Space::Lock, b"m"),
            "an idle lock is forgotten"
        );
    }

    #[test]
    fn a_session_is_used_only_by_its_client_and_expired_only_by_the_leader() {
        let mut d = Driver::new();
        let a = d.session();
        d.acquire("m", a, LockKind::Mutex, Mode::Exclusive);
        let release = Command::Release {
            space: Space::Lock,
            name: b"m".to_vec(),
            session: a,
        };
        assert!(matches!(d.run_as(7, release), Outcome::Refused { .. }));
        let close = Command::CloseSession { session: a };
        assert!(matches!(d.run_as(7, close), Outcome::Refused { .. }));
        let expire = Command::ExpireSessions { sessions: vec![a] };
        assert!(matches!(d.run_as(7, expire), Outcome::Refused { .. }));
        assert_eq!(
            d.holders(Space::Lock, "m"),
            vec![a],
            "the lock is still a's"
        );
    }

    #[test]
    fn refusals_quoting_the_longest_names_still_snapshot() {
        let mut d = Driver::new();
        let a = d.session();
        // Invalid UTF-8 grows threefold when quoted; the stored reason stays bounded.
        let name = vec![0xffu8; KEY_BYTES_MAX];
        let acquire = |kind| Command::Acquire {
            space: Space::Lock,
            name: name.clone(),
            session: a,
            kind,
            mode: Mode::Exclusive,
            value: Vec::new(),
            wait: false,
        };
        d.run(acquire(LockKind::Mutex));
        let refused = d.state.apply(99, &request(1, 1, acquire(LockKind::RwLock)));
        match refused.unwrap().outcome {
            Outcome::Refused { reason, .. } => assert!(reason.contains("mutex"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let restored = StateMachine::decode(&d.state.encode()).unwrap();
        assert_eq!(restored.encode(), d.state.encode());
        assert_eq!(d.state.encode().len(), d.state.encoded_len());
    }

    #[test]
    fn a_read_write_lock_shares_reads_and_does_not_starve_writers() {
        let mut d = Driver::new();
        let (r1, w, r2) = (d.session(), d.session(), d.session());
        token(&d.acquire("rw", r1, LockKind::RwLock, Mode::Shared));
        let queued = d.acquire("rw", w, LockKind::RwLock, Mode::Exclusive);
        assert!(matches!(queued, Outcome::Queued { .. }));
        let behind = d.acquire("rw", r2, LockKind::RwLock, Mode::Shared);
        assert!(
            matches!(behind, Outcome::Queued { .. }),
            "a reader must not overtake a waiting writer"
        );
        d.run(Command::Release {
            space: Space::Lock,
            name: b"rw".to_vec(),
            session: r1,
        });
        assert_eq!(d.holders(Space::Lock, "rw"), vec![w]);
        d.run(Command::Release {
            space: Space::Lock,
            name: b"rw".to_vec(),
            session: w,
        });
        assert_eq!(d.holders(Space::Lock, "rw"), vec![r2]);
    }

    #[test]
    fn a_semaphore_admits_its_permits() {
        let mut d = Driver::new();
        let sessions: Vec<u64> = (0..4).map(|_| d.session()).collect();
        let outcomes: Vec<Outcome> = sessions
            .iter()
            .map(|s| d.acquire("sem", *s, LockKind::Semaphore(3), Mode::Exclusive))
            .collect();
        let granted = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Acquired { .. }))
            .count();
        assert_eq!(granted, 3);
        assert!(matches!(outcomes[3], Outcome::Queued { .. }));
        d.run(Command::CloseSession {
            session: sessions[0],
        });
        assert_eq!(d.holders(Space::Lock, "sem").len(), 3);
        assert!(d.holders(Space::Lock, "sem").contains(&sessions[3]));
    }

    #[test]
    fn a_deposed_leader_cannot_write_with_its_old_token() {
        let mut d = Driver::new();
        let (a, b) = (d.session(), d.session());
        let old = token(&d.acquire("e", a, LockKind::Election, Mode::Exclusive));
        d.acquire("e", b, LockKind::Election, Mode::Exclusive);
        assert!(matches!(
            d.run(Command::Proclaim {
                name: b"e".to_vec(),
                token: old,
                value: b"new".to_vec(),
            }),
            Outcome::Done { ok: true, .. }
        ));
        assert_eq!(d.state.holders(Space::Election, b"e")[0].value, b"new");
        let guarded = |token| Command::Txn {
            conditions: vec![Condition {
                key: b"e".to_vec(),
                compare: Compare::LeaderToken(token),
            }],
            success: vec![Op::Put {
                key: b"data".to_vec(),
                value: token.to_string().into_bytes(),
            }],
            failure: vec![],
        };
        assert!(matches!(
            d.run(guarded(old)),
            Outcome::Txn {
                succeeded: true,
                ..
            }
        ));
        d.run(Command::ExpireSessions { sessions: vec![a] });
        assert_eq!(d.holders(Space::Election, "e"), vec![b]);
        assert!(matches!(
            d.run(guarded(old)),
            Outcome::Txn {
                succeeded: false,
                ..
            }
        ));
        let proclaim = d.run(Command::Proclaim {
            name: b"e".to_vec(),
            token: old,
            value: b"stale".to_vec(),
        });
        assert!(matches!(proclaim, Outcome::Done { ok: false, .. }));
    }

    #[test]
    fn group_members_leave_with_their_session() {
        let mut d = Driver::new();
        let (a, b) = (d.session(), d.session());
        let join = |session, member: &str| Command::Join {
            group: b"g".to_vec(),
            member: member.into(),
            session,
            metadata: b"meta".to_vec(),
        };
        assert!(matches!(
            d.run(join(a, "m1")),
            Outcome::Done { ok: true, .. }
        ));
        assert!(matches!(
            d.run(join(b, "m2")),
            Outcome::Done { ok: true, .. }
        ));
        assert!(matches!(d.run(join(b, "m1")), Outcome::Refused { .. }));
        assert_eq!(d.state.members(b"g").len(), 2);
        d.state.take_events();
        d.run(Command::ExpireSessions { sessions: vec![a] });
        let left: Vec<Event> = d.state.take_events();
        assert!(left
            .iter()
            .any(|e| e.kind == EventKind::Left(Ended::SessionExpired) && e.member == b"m1"));
        let members = d.state.members(b"g");
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].id, b"m2");
    }

    #[test]
    fn queue_items_are_acked_once_and_redelivered_when_a_claimer_expires() {
        let mut d = Driver::new();
        let (a, b) = (d.session(), d.session());
        let claim = |session| Command::Claim {
            queue: b"q".to_vec(),
            session,
            wait: true,
        };
        assert!(matches!(d.run(claim(b)), Outcome::Queued { .. }));
        let enqueue = |payload: &str| Command::Enqueue {
            queue: b"q".to_vec(),
            payload: payload.into(),
        };
        let item = |outcome| match outcome {
            Outcome::Enqueued { item, .. } => item,
            other => panic!("{other:?}"),
        };
        let one = item(d.run(enqueue("one")));
        let two = item(d.run(enqueue("two")));
        let to_b = d
            .state
            .claimed(b"q", one)
            .expect("item one went to the waiter");
        assert_eq!((to_b.session, to_b.payload.as_slice()), (b, &b"one"[..]));
        let to_a = d.run(claim(a));
        let a_token = token(&to_a);
        assert_eq!(d.state.claimed(b"q", two).unwrap().session, a);
        // a's session expires: item 2 goes back, a's late ack is refused.
        d.run(Command::ExpireSessions { sessions: vec![a] });
        assert_eq!(d.state.queue_counts(b"q"), (2, 1, 0));
        let late = d.run(Command::Ack {
            queue: b"q".to_vec(),
            item: two,
            token: a_token,
        });
        assert!(matches!(late, Outcome::Done { ok: false, .. }));
        let again = d.run(claim(b));
        let b_token = token(&again);
        assert!(b_token > a_token);
        let ack = |token| Command::Ack {
            queue: b"q".to_vec(),
            item: two,
            token,
        };
        assert!(matches!(
            d.run(ack(b_token)),
            Outcome::Done { ok: true, .. }
        ));
        assert!(matches!(
            d.run(ack(b_token)),
            Outcome::Done { ok: false, .. }
        ));
        assert_eq!(d.state.queue_counts(b"q"), (1, 0, 0));
    }

    #[test]
    fn a_barrier_opens_when_all_arrived_and_counters_add() {
        let mut d = Driver::new();
        let sessions: Vec<u64> = (0..3).map(|_| d.session()).collect();
        let enter = |session| Command::Enter {
            barrier: b"b".to_vec(),
            participants: 3,
            session,
        };
        d.run(enter(sessions[0]));
        d.run(Command::Exit {
            barrier: b"b".to_vec(),
            session: sessions[0],
        });
        d.run(enter(sessions[0]));
        d.run(enter(sessions[1]));
        assert_eq!(d.state.barrier(b"b"), Some((2, 3)));
        let last = d.run(enter(sessions[2]));
        assert!(matches!(
            last,
            Outcome::Barrier {
                arrived: 3,
                opened: true,
                ..
            }
        ));
        assert_eq!(d.state.barrier(b"b"), None);
        for session in &sessions {
            assert!(d.state.sessions.get(*session).unwrap().holds.is_empty());
        }
        let add = |delta| Command::Add {
            counter: b"c".to_vec(),
            delta,
        };
        d.run(add(5));
        assert!(matches!(d.run(add(-2)), Outcome::Counter { value: 3, .. }));
        assert!(matches!(d.run(add(i64::MAX)), Outcome::Refused { .. }));
        assert_eq!(d.state.counter(b"c"), 3);
    }

    #[test]
    fn snapshots_carry_sessions_and_primitives() {
        let mut d = Driver::new();
        let (a, b) = (d.session(), d.session());
        d.acquire("m", a, LockKind::Mutex, Mode::Exclusive);
        d.acquire("m", b, LockKind::Mutex, Mode::Exclusive);
        d.acquire("e", a, LockKind::Election, Mode::Exclusive);
        d.run(Command::Join {
            group: b"g".to_vec(),
            member: b"x".to_vec(),
            session: b,
            metadata: b"m".to_vec(),
        });
        d.run(Command::Enqueue {
            queue: b"q".to_vec(),
            payload: b"p".to_vec(),
        });
        d.run(Command::Claim {
            queue: b"q".to_vec(),
            session: a,
            wait: false,
        });
        d.run(Command::Enter {
            barrier: b"b".to_vec(),
            participants: 2,
            session: a,
        });
        d.run(Command::Add {
            counter: b"c".to_vec(),
            delta: 7,
        });
        d.state.take_events();
        let encoded = d.state.encode();
        assert_eq!(encoded.len(), d.state.encoded_len());
        let mut restored = StateMachine::decode(&encoded).unwrap();
        assert_eq!(restored, d.state);
        // The restored state behaves the same: a's expiry hands the mutex to b.
        let expire = request(0, 0, Command::ExpireSessions { sessions: vec![a] });
        restored.apply(d.index + 1, &expire);
        d.state.apply(d.index + 1, &expire);
        assert_eq!(restored, d.state);
        assert_eq!(restored.holders(Space::Lock, b"m")[0].session, b);
        for cut in 0..encoded.len() {
            assert!(StateMachine::decode(&encoded[..cut]).is_err());
        }
    }

    #[test]
    fn the_client_table_is_bounded() {
        let mut state = StateMachine::new();
        for client in 0..(CLIENT_RESULTS_MAX as u64 + 10) {
            state.apply(client + 1, &request(client, 1, put("k", "v")));
        }
        assert_eq!(state.clients.len(), CLIENT_RESULTS_MAX);
        assert!(
            !state.clients.contains_key(&0),
            "the least recent client was kept"
        );
    }
}
