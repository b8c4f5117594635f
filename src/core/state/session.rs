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
}

impl Sessions {
    /// Adds a session with id `id`; an error when the table is full.
    pub fn create(&mut self, id: u64, ttl_ms: u64, owner: u64) -> Result<(), String> {
        if self.map.len() >= SESSIONS_MAX {
            return Err(format!(
                "{SESSIONS_MAX} sessions are open already; close some first"
            ));
        }
        self.map.insert(
            id,
            Session {
                ttl_ms,
                owner,
                holds: BTreeSet::new(),
            },
        );
        Ok(())
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
        self.map.remove(&id)
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
            sessions.map.insert(id, session);
        }
        Ok(sessions)
    }
}
