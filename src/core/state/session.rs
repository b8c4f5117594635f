//! Sessions: the liveness a client proves with keepalives. The state machine only knows which
//! sessions exist, their TTL and what each holds; when one ends is decided by the leader's
//! [`super::lease::SessionClock`] and replicated as a command.

use std::collections::{BTreeMap, BTreeSet};

use super::event::Space;
use crate::codec::{Put, Reader};
use crate::limits::{KEY_BYTES_MAX, SESSIONS_MAX, SESSION_HOLDS_MAX};

/// A name in a space (a lock, a group...) that a session holds or waits for.
pub type Resource = (Space, Vec<u8>);

/// One session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Time to live without a keepalive, in milliseconds.
    pub ttl_ms: u64,
    /// The client that created it (the only one that may use it).
    pub owner: u64,
    /// Everything the session holds or waits for (released when it ends).
    pub holds: BTreeSet<Resource>,
}

/// The live sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sessions {
    map: BTreeMap<u64, Session>,
    /// Live sessions per owner (derived from `map`; bounds `SESSIONS_PER_CLIENT_MAX`).
    per_owner: BTreeMap<u64, usize>,
}

impl Sessions {
    /// Adds a session with id `id`; an error when the table is full.
    pub fn create(&mut self, id: u64, ttl_ms: u64, owner: u64) -> Result<(), String> {
        if self.map.len() >= SESSIONS_MAX {
            return Err(format!(
                "{SESSIONS_MAX} sessions are open already; close some first"
            ));
        }
        let session = Session {
            ttl_ms,
            owner,
            holds: BTreeSet::new(),
        };
        self.insert(id, session);
        Ok(())
    }

    fn insert(&mut self, id: u64, session: Session) {
        *self.per_owner.entry(session.owner).or_insert(0) += 1;
        if let Some(replaced) = self.map.insert(id, session) {
            self.forget_owner(replaced.owner);
        }
    }

    fn forget_owner(&mut self, owner: u64) {
        if let Some(count) = self.per_owner.get_mut(&owner) {
            *count -= 1;
            if *count == 0 {
                self.per_owner.remove(&owner);
            }
        }
    }

    /// How many live sessions `owner` created.
    pub fn owned_by(&self, owner: u64) -> usize {
        self.per_owner.get(&owner).copied().unwrap_or(0)
    }

    /// The session, if alive.
    pub fn get(&self, id: u64) -> Option<&Session> {
        self.map.get(&id)
    }

    /// Checks that `id` is alive and may hold one more resource (or already holds this one).
    pub fn check(&self, id: u64, resource: &Resource) -> Result<(), String> {
        let Some(session) = self.map.get(&id) else {
            return Err(format!("session {id} does not exist (expired or closed)"));
        };
        if !session.holds.contains(resource) && session.holds.len() >= SESSION_HOLDS_MAX {
            return Err(format!(
                "session {id} already holds or waits for {SESSION_HOLDS_MAX} things"
            ));
        }
        Ok(())
    }

    /// Records that `id` holds or waits for `resource`.
    pub fn hold(&mut self, id: u64, resource: Resource) {
        if let Some(session) = self.map.get_mut(&id) {
            session.holds.insert(resource);
        }
    }

    /// Records that `id` no longer holds or waits for anything in `resource`.
    pub fn unhold(&mut self, id: u64, resource: &Resource) {
        if let Some(session) = self.map.get_mut(&id) {
            session.holds.remove(resource);
        }
    }

    /// Removes a session, returning what it held.
    pub fn remove(&mut self, id: u64) -> Option<Session> {
        let session = self.map.remove(&id)?;
        self.forget_owner(session.owner);
        Some(session)
    }

    /// Every live session with its TTL, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.map.iter().map(|(id, s)| (*id, s.ttl_ms))
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.map.len() as u64);
        for (id, session) in &self.map {
            out.put_u64(*id);
            out.put_u64(session.ttl_ms);
            out.put_u64(session.owner);
            out.put_u32(session.holds.len() as u32);
            for (space, name) in &session.holds {
                out.put_u8(*space as u8);
                out.put_bytes(name);
            }
        }
    }

    /// Decodes what [`Sessions::encode`] wrote.
    pub fn decode(reader: &mut Reader) -> Result<Sessions, String> {
        let count = reader.u64()?;
        if count > SESSIONS_MAX as u64 {
            return Err(format!("{count} sessions exceed the limit"));
        }
        let mut sessions = Sessions::default();
        for _ in 0..count {
            let id = reader.u64()?;
            let ttl_ms = reader.u64()?;
            let owner = reader.u64()?;
            let holds = reader.u32()? as usize;
            if holds > SESSION_HOLDS_MAX {
                return Err(format!("session {id} holds {holds} things, over the limit"));
            }
            let mut session = Session {
                ttl_ms,
                owner,
                holds: BTreeSet::new(),
            };
            for _ in 0..holds {
                let space = Space::from_code(reader.u8()?)?;
                session
                    .holds
                    .insert((space, reader.bytes(KEY_BYTES_MAX)?.to_vec()));
            }
            sessions.insert(id, session);
        }
        Ok(sessions)
    }
}
