//! Work queues: items are enqueued, claimed by sessions (FIFO, waiting claimers served in
//! arrival order), acknowledged once, or given back. A claim's token is the revision of the
//! claim, so an item redelivered after its claimer's session ended carries a new token and
//! the old claimer's acknowledgement is refused.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::command::Outcome;
use super::event::{Effects, Ended, EventKind, Space};
use crate::codec::{Put, Reader};
use crate::limits::{KEY_BYTES_MAX, LOCK_WAITERS_MAX, QUEUE_ITEMS_MAX, VALUE_BYTES_MAX};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Item {
    payload: Vec<u8>,
    /// (session, token) of the claim, if claimed.
    claim: Option<(u64, u64)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Queue {
    items: BTreeMap<u64, Item>,
    /// Unclaimed items, next to deliver first.
    ready: VecDeque<u64>,
    /// Sessions waiting for an item, first come first served.
    waiters: VecDeque<u64>,
    /// Items claimed per session.
    claims: BTreeMap<u64, BTreeSet<u64>>,
}

/// A claimed item as a reader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedItem {
    /// The item id.
    pub item: u64,
    /// The claiming session.
    pub session: u64,
    /// The claim's token.
    pub token: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Every queue with items or waiters (a queue left with neither is forgotten).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Queues {
    map: BTreeMap<Vec<u8>, Queue>,
}

impl Queues {
    /// Number of queues.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether the queue exists.
    pub fn contains(&self, queue: &[u8]) -> bool {
        self.map.contains_key(queue)
    }

    /// Adds an item and hands it to the first waiter, if any.
    pub fn enqueue(&mut self, name: &[u8], payload: &[u8], fx: &mut Effects) -> Outcome {
        let queue = self.map.entry(name.to_vec()).or_default();
        if queue.items.len() >= QUEUE_ITEMS_MAX {
            return Outcome::Refused {
                revision: fx.now(),
                reason: format!("the queue holds {QUEUE_ITEMS_MAX} items already"),
            };
        }
        // An item's id is the revision of its enqueue: unique for good, even after the queue
        // was emptied and forgotten.
        let revision = fx.bump();
        let item = revision;
        queue.items.insert(
            item,
            Item {
                payload: payload.to_vec(),
                claim: None,
            },
        );
        queue.ready.push_back(item);
        let event = fx.emit(Space::Queue, name, EventKind::Enqueued);
        event.item = item;
        event.value = payload.to_vec();
        deliver(name, queue, fx);
        Outcome::Enqueued { revision, item }
    }

    /// Claims the next free item for `session`, or queues it (`wait`), or answers busy.
    pub fn claim(&mut self, name: &[u8], session: u64, wait: bool, fx: &mut Effects) -> Outcome {
        let queue = self.map.entry(name.to_vec()).or_default();
        if queue.waiters.contains(&session) {
            return Outcome::Queued { revision: fx.now() };
        }
        if let Some(item) = queue.ready.pop_front() {
            let token = grant(name, queue, item, session, fx);
            return Outcome::Claimed {
                revision: token,
                item,
                token,
            };
        }
        if !wait || queue.waiters.len() >= LOCK_WAITERS_MAX {
            let revision = fx.now();
            if queue.items.is_empty() && queue.waiters.is_empty() {
                self.map.remove(name);
            }
            if !wait {
                return Outcome::Busy { revision };
            }
            return Outcome::Refused {
                revision,
                reason: format!("{LOCK_WAITERS_MAX} sessions wait on this queue already"),
            };
        }
        let revision = fx.bump();
        queue.waiters.push_back(session);
        fx.emit(Space::Queue, name, EventKind::Waiting).session = session;
        Outcome::Queued { revision }
    }

    /// Acknowledges (`ack`) or gives back an item claimed with `token`; false when the item
    /// is not claimed with that token (acked already, or redelivered since).
    pub fn settle(
        &mut self,
        name: &[u8],
        item: u64,
        token: u64,
        ack: bool,
        fx: &mut Effects,
    ) -> bool {
        let Some(queue) = self.map.get_mut(name) else {
            return false;
        };
        let Some(claim) = queue.items.get(&item).and_then(|i| i.claim) else {
            return false;
        };
        if claim.1 != token {
            return false;
        }
        let session = claim.0;
        unclaim(queue, session, item);
        fx.bump();
        if ack {
            queue.items.remove(&item);
            let event = fx.emit(Space::Queue, name, EventKind::Acked);
            (event.session, event.token, event.item) = (session, token, item);
        } else {
            requeue(name, queue, item, session, token, fx);
            deliver(name, queue, fx);
        }
        if queue.items.is_empty() && queue.waiters.is_empty() {
            self.map.remove(name);
        }
        true
    }

    /// Stops `session` waiting for an item; false if it was not waiting.
    pub fn cancel_wait(&mut self, name: &[u8], session: u64, fx: &mut Effects) -> bool {
        let Some(queue) = self.map.get_mut(name) else {
            return false;
        };
        let Some(at) = queue.waiters.iter().position(|s| *s == session) else {
            return false;
        };
        queue.waiters.remove(at);
        fx.bump();
        fx.emit(Space::Queue, name, EventKind::Ended(Ended::ByRequest))
            .session = session;
        if queue.items.is_empty() && queue.waiters.is_empty() {
            self.map.remove(name);
        }
        true
    }

    /// Gives back every item `session` claimed in the queue and stops its wait.
    pub fn end_session(&mut self, name: &[u8], session: u64, why: Ended, fx: &mut Effects) {
        let Some(queue) = self.map.get_mut(name) else {
            return;
        };
        if let Some(at) = queue.waiters.iter().position(|s| *s == session) {
            queue.waiters.remove(at);
            fx.bump();
            fx.emit(Space::Queue, name, EventKind::Ended(why)).session = session;
        }
        let items = queue.claims.remove(&session).unwrap_or_default();
        if !items.is_empty() {
            fx.bump();
            // Redelivered oldest first, ahead of items never claimed.
            for item in items.into_iter().rev() {
                let token = queue
                    .items
                    .get(&item)
                    .and_then(|i| i.claim)
                    .map_or(0, |c| c.1);
                requeue(name, queue, item, session, token, fx);
            }
            deliver(name, queue, fx);
        }
        if queue.items.is_empty() && queue.waiters.is_empty() {
            self.map.remove(name);
        }
    }

    /// Whether `session` claims or waits in the queue.
    pub fn involves(&self, name: &[u8], session: u64) -> bool {
        self.map
            .get(name)
            .is_some_and(|q| q.claims.contains_key(&session) || q.waiters.contains(&session))
    }

    /// The item's claim and payload, if it is claimed.
    pub fn claimed(&self, name: &[u8], item: u64) -> Option<ClaimedItem> {
        let found = self.map.get(name)?.items.get(&item)?;
        let (session, token) = found.claim?;
        Some(ClaimedItem {
            item,
            session,
            token,
            payload: found.payload.clone(),
        })
    }

    /// The ids of a queue's items, claimed or not.
    pub fn items(&self, name: &[u8]) -> Vec<u64> {
        self.map
            .get(name)
            .map_or(Vec::new(), |q| q.items.keys().copied().collect())
    }

    /// (items, unclaimed items, waiting sessions) of a queue.
    pub fn counts(&self, name: &[u8]) -> (usize, usize, usize) {
        self.map.get(name).map_or((0, 0, 0), |q| {
            (q.items.len(), q.ready.len(), q.waiters.len())
        })
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.map.len() as u64);
        for (name, queue) in &self.map {
            out.put_bytes(name);
            out.put_u32(queue.items.len() as u32);
            for (id, item) in &queue.items {
                out.put_u64(*id);
                out.put_bytes(&item.payload);
                let (session, token) = item.claim.unwrap_or((0, 0));
                out.put_u64(session);
                out.put_u64(token);
            }
            out.put_u32(queue.ready.len() as u32);
            queue.ready.iter().for_each(|id| out.put_u64(*id));
            out.put_u32(queue.waiters.len() as u32);
            queue.waiters.iter().for_each(|s| out.put_u64(*s));
        }
    }

    /// Decodes what [`Queues::encode`] wrote.
    pub fn decode(reader: &mut Reader) -> Result<Queues, String> {
        let count = reader.u64()?;
        if count > reader.bytes.len() as u64 {
            return Err(format!("{count} queues cannot fit in the snapshot"));
        }
        let mut queues = Queues::default();
        for _ in 0..count {
            let name = reader.bytes(KEY_BYTES_MAX)?.to_vec();
            let mut queue = Queue::default();
            let items = reader.u32()? as usize;
            if items > QUEUE_ITEMS_MAX {
                return Err(format!("{items} items exceed the limit"));
            }
            for _ in 0..items {
                let id = reader.u64()?;
                let payload = reader.bytes(VALUE_BYTES_MAX)?.to_vec();
                let session = reader.u64()?;
                let token = reader.u64()?;
                let claim = (token != 0).then_some((session, token));
                if claim.is_some() {
                    queue.claims.entry(session).or_default().insert(id);
                }
                queue.items.insert(id, Item { payload, claim });
            }
            let ready = reader.ids(QUEUE_ITEMS_MAX)?;
            // Every unclaimed item is ready exactly once, and nothing else is.
            let unclaimed = queue.items.values().filter(|i| i.claim.is_none()).count();
            let consistent = ready.len() == unclaimed
                && ready
                    .iter()
                    .all(|id| queue.items.get(id).is_some_and(|i| i.claim.is_none()));
            if !consistent {
                return Err("a queue's ready list does not match its items".into());
            }
            queue.ready = ready.into();
            let waiters = reader.ids(LOCK_WAITERS_MAX)?;
            queue.waiters = waiters.into();
            queues.map.insert(name, queue);
        }
        Ok(queues)
    }
}

/// Claims `item` for `session` at a new revision; returns the token.
fn grant(name: &[u8], queue: &mut Queue, item: u64, session: u64, fx: &mut Effects) -> u64 {
    let token = fx.bump();
    let Some(stored) = queue.items.get_mut(&item) else {
        return token; // unreachable: ready items exist (checked when a snapshot is decoded)
    };
    stored.claim = Some((session, token));
    queue.claims.entry(session).or_default().insert(item);
    let event = fx.emit(Space::Queue, name, EventKind::Granted);
    (event.session, event.token, event.item) = (session, token, item);
    event.value = stored.payload.clone();
    token
}

/// Hands free items to waiting sessions, first come first served.
fn deliver(name: &[u8], queue: &mut Queue, fx: &mut Effects) {
    // Bounded by the waiters and the free items.
    while !queue.waiters.is_empty() && !queue.ready.is_empty() {
        let session = queue.waiters.pop_front().expect("not empty");
        let item = queue.ready.pop_front().expect("not empty");
        grant(name, queue, item, session, fx);
    }
}

fn unclaim(queue: &mut Queue, session: u64, item: u64) {
    if let Some(items) = queue.claims.get_mut(&session) {
        items.remove(&item);
        if items.is_empty() {
            queue.claims.remove(&session);
        }
    }
}

/// Puts a claimed item back at the front of the queue (at the current revision).
fn requeue(name: &[u8], queue: &mut Queue, item: u64, session: u64, token: u64, fx: &mut Effects) {
    if let Some(stored) = queue.items.get_mut(&item) {
        stored.claim = None;
    }
    queue.ready.push_front(item);
    let event = fx.emit(Space::Queue, name, EventKind::Requeued);
    (event.session, event.token, event.item) = (session, token, item);
}
