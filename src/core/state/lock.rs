//! Locks and elections: mutexes, read-write locks, counting semaphores and elections share
//! one engine. Holders and FIFO waiters are sessions; each grant starts a new revision and
//! that revision is the holder's fencing token, so tokens increase strictly cluster-wide.
//!
//! Fairness: a waiter is granted only when everyone queued before it was, so a stream of
//! readers cannot starve a writer and a newcomer never overtakes a waiter.

use std::collections::{BTreeMap, VecDeque};

use super::command::{LockKind, Mode, Outcome};
use super::event::{Effects, Ended, EventKind, Space};
use crate::codec::{Put, Reader};
use crate::limits::{KEY_BYTES_MAX, LOCK_WAITERS_MAX, SEMAPHORE_PERMITS_MAX, VALUE_BYTES_MAX};

/// A session holding a lock or leading an election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The session.
    pub session: u64,
    /// The fencing token (revision of the grant).
    pub token: u64,
    /// Shared or exclusive.
    pub mode: Mode,
    /// The election value (empty for locks).
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Waiter {
    session: u64,
    mode: Mode,
    value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Lock {
    kind: LockKind,
    holders: Vec<Holder>,
    waiters: VecDeque<Waiter>,
}

impl Lock {
    fn admits(&self, mode: Mode) -> bool {
        match self.kind {
            LockKind::Mutex | LockKind::Election => self.holders.is_empty(),
            LockKind::Semaphore(permits) => self.holders.len() < permits as usize,
            LockKind::RwLock => match mode {
                Mode::Exclusive => self.holders.is_empty(),
                Mode::Shared => self.holders.iter().all(|h| h.mode == Mode::Shared),
            },
        }
    }
}

/// A request to take a lock, as the state machine passes it on.
pub struct AcquireRequest<'a> {
    /// `Space::Lock` or `Space::Election`.
    pub space: Space,
    /// The name.
    pub name: &'a [u8],
    /// The session.
    pub session: u64,
    /// The kind the caller expects the name to be.
    pub kind: LockKind,
    /// Shared or exclusive.
    pub mode: Mode,
    /// Election value.
    pub value: &'a [u8],
    /// Queue if not grantable now.
    pub wait: bool,
}

/// Every lock and election with a holder or a waiter (others are forgotten).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locks {
    map: BTreeMap<(Space, Vec<u8>), Lock>,
}

impl Locks {
    /// Number of names held or waited for.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Grants held in `space`.
    pub fn held(&self, space: Space) -> usize {
        self.map
            .iter()
            .filter(|((s, _), _)| *s == space)
            .map(|(_, lock)| lock.holders.len())
            .sum()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `name` exists (held or waited for).
    pub fn contains(&self, space: Space, name: &[u8]) -> bool {
        self.map.contains_key(&(space, name.to_vec()))
    }

    /// Takes the lock, queues, or refuses; the session was checked by the caller.
    pub fn acquire(&mut self, request: AcquireRequest, fx: &mut Effects) -> Outcome {
        let AcquireRequest {
            space,
            name,
            session,
            kind,
            mode,
            value,
            wait,
        } = request;
        let key = (space, name.to_vec());
        let lock = self.map.entry(key.clone()).or_insert_with(|| Lock {
            kind,
            holders: Vec::new(),
            waiters: VecDeque::new(),
        });
        if lock.kind != kind {
            return Outcome::Refused {
                revision: fx.now(),
                reason: format!(
                    "{} is a {}, not a {}",
                    String::from_utf8_lossy(name),
                    kind_name(lock.kind),
                    kind_name(kind)
                ),
            };
        }
        if let Some(holder) = lock.holders.iter().find(|h| h.session == session) {
            return Outcome::Acquired {
                revision: fx.now(),
                token: holder.token,
            };
        }
        if lock.waiters.iter().any(|w| w.session == session) {
            return Outcome::Queued { revision: fx.now() };
        }
        if lock.waiters.is_empty() && lock.admits(mode) {
            let token = fx.bump();
            lock.holders.push(Holder {
                session,
                token,
                mode,
                value: value.to_vec(),
            });
            let event = fx.emit(space, name, EventKind::Granted);
            event.session = session;
            event.token = token;
            event.value = value.to_vec();
            return Outcome::Acquired {
                revision: token,
                token,
            };
        }
        let lock_is_new = lock.holders.is_empty() && lock.waiters.is_empty();
        if !wait || lock.waiters.len() >= LOCK_WAITERS_MAX {
            let revision = fx.now();
            if lock_is_new {
                self.map.remove(&key);
            }
            if !wait {
                return Outcome::Busy { revision };
            }
            return Outcome::Refused {
                revision,
                reason: format!("{LOCK_WAITERS_MAX} sessions wait for this lock already"),
            };
        }
        let revision = fx.bump();
        lock.waiters.push_back(Waiter {
            session,
            mode,
            value: value.to_vec(),
        });
        fx.emit(space, name, EventKind::Waiting).session = session;
        Outcome::Queued { revision }
    }

    /// Releases `session`'s hold or wait on the name and grants to the waiters now first in
    /// line. Returns whether the session held or waited, and the sessions granted.
    pub fn release(
        &mut self,
        space: Space,
        name: &[u8],
        session: u64,
        why: Ended,
        fx: &mut Effects,
    ) -> bool {
        let key = (space, name.to_vec());
        let Some(lock) = self.map.get_mut(&key) else {
            return false;
        };
        let token = if let Some(at) = lock.holders.iter().position(|h| h.session == session) {
            lock.holders.remove(at).token
        } else if let Some(at) = lock.waiters.iter().position(|w| w.session == session) {
            lock.waiters.remove(at);
            0
        } else {
            return false;
        };
        fx.bump();
        let event = fx.emit(space, name, EventKind::Ended(why));
        event.session = session;
        event.token = token;
        // Bounded by the waiters.
        while let Some(next) = lock.waiters.front() {
            if !lock.admits(next.mode) {
                break;
            }
            let next = lock.waiters.pop_front().expect("front exists");
            let token = fx.bump();
            let event = fx.emit(space, name, EventKind::Granted);
            event.session = next.session;
            event.token = token;
            event.value = next.value.clone();
            lock.holders.push(Holder {
                session: next.session,
                token,
                mode: next.mode,
                value: next.value,
            });
        }
        if lock.holders.is_empty() && lock.waiters.is_empty() {
            self.map.remove(&key);
        }
        true
    }

    /// Sets an election leader's value, if `token` is the current leadership's.
    pub fn proclaim(&mut self, name: &[u8], token: u64, value: &[u8], fx: &mut Effects) -> bool {
        let Some(lock) = self.map.get_mut(&(Space::Election, name.to_vec())) else {
            return false;
        };
        let Some(holder) = lock.holders.iter_mut().find(|h| h.token == token) else {
            return false;
        };
        holder.value = value.to_vec();
        let session = holder.session;
        fx.bump();
        let event = fx.emit(Space::Election, name, EventKind::Proclaimed);
        event.session = session;
        event.token = token;
        event.value = value.to_vec();
        true
    }

    /// The holders of a name (the leader, for an election), in grant order.
    pub fn holders(&self, space: Space, name: &[u8]) -> &[Holder] {
        self.map
            .get(&(space, name.to_vec()))
            .map_or(&[], |lock| lock.holders.as_slice())
    }

    /// Sessions waiting for a name, first in line first.
    pub fn waiters(&self, space: Space, name: &[u8]) -> Vec<u64> {
        self.map
            .get(&(space, name.to_vec()))
            .map_or(Vec::new(), |lock| {
                lock.waiters.iter().map(|w| w.session).collect()
            })
    }

    /// Whether `token` is a current holder's token of the name.
    pub fn held_with(&self, space: Space, name: &[u8], token: u64) -> bool {
        self.holders(space, name).iter().any(|h| h.token == token)
    }

    /// Whether `session` still holds or waits for the name.
    pub fn involves(&self, space: Space, name: &[u8], session: u64) -> bool {
        self.map.get(&(space, name.to_vec())).is_some_and(|lock| {
            lock.holders.iter().any(|h| h.session == session)
                || lock.waiters.iter().any(|w| w.session == session)
        })
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.map.len() as u64);
        for ((space, name), lock) in &self.map {
            out.put_u8(*space as u8);
            out.put_bytes(name);
            let (kind, permits) = lock.kind.code();
            out.put_u8(kind);
            out.put_u32(permits);
            out.put_u32(lock.holders.len() as u32);
            for holder in &lock.holders {
                out.put_u64(holder.session);
                out.put_u64(holder.token);
                out.put_u8(holder.mode as u8);
                out.put_bytes(&holder.value);
            }
            out.put_u32(lock.waiters.len() as u32);
            for waiter in &lock.waiters {
                out.put_u64(waiter.session);
                out.put_u8(waiter.mode as u8);
                out.put_bytes(&waiter.value);
            }
        }
    }

    /// Decodes what [`Locks::encode`] wrote.
    pub fn decode(reader: &mut Reader) -> Result<Locks, String> {
        let count = reader.u64()?;
        if count > reader.bytes.len() as u64 {
            return Err(format!("{count} locks cannot fit in the snapshot"));
        }
        let mut locks = Locks::default();
        let mode = |code: u8| match code {
            0 => Ok(Mode::Exclusive),
            1 => Ok(Mode::Shared),
            other => Err(format!("unknown lock mode {other}")),
        };
        for _ in 0..count {
            let space = Space::from_code(reader.u8()?)?;
            let name = reader.bytes(KEY_BYTES_MAX)?.to_vec();
            let kind = reader.u8()?;
            let kind = LockKind::from_code(kind, reader.u32()?)?;
            let holders = reader.u32()? as usize;
            let allowed = match kind {
                LockKind::Mutex | LockKind::Election => 1,
                LockKind::Semaphore(permits) => permits as usize,
                LockKind::RwLock => SEMAPHORE_PERMITS_MAX as usize,
            };
            if holders > allowed {
                return Err(format!("{holders} holders of a {}", kind_name(kind)));
            }
            let mut lock = Lock {
                kind,
                holders: Vec::with_capacity(holders),
                waiters: VecDeque::new(),
            };
            for _ in 0..holders {
                lock.holders.push(Holder {
                    session: reader.u64()?,
                    token: reader.u64()?,
                    mode: mode(reader.u8()?)?,
                    value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
                });
            }
            let waiters = reader.u32()? as usize;
            if waiters > LOCK_WAITERS_MAX {
                return Err(format!("{waiters} waiters exceed the limit"));
            }
            for _ in 0..waiters {
                lock.waiters.push_back(Waiter {
                    session: reader.u64()?,
                    mode: mode(reader.u8()?)?,
                    value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
                });
            }
            locks.map.insert((space, name), lock);
        }
        Ok(locks)
    }
}

fn kind_name(kind: LockKind) -> String {
    match kind {
        LockKind::Mutex => "mutex".into(),
        LockKind::RwLock => "read-write lock".into(),
        LockKind::Semaphore(permits) => format!("semaphore of {permits} permits"),
        LockKind::Election => "election".into(),
    }
}
