//! Change events: what each applied command changed, in revision order. Watches stream them;
//! blocking calls (a queued lock acquire, a claim waiting for an item, a barrier) wait for the
//! event that concerns them.
//!
//! Every event names a [`Space`] and a key inside it (a KV key, a lock's name, a group's
//! name...), so a watch on a prefix of one space never sees another space's changes.

use crate::codec::{Put, Reader};
use crate::limits::{KEY_BYTES_MAX, VALUE_BYTES_MAX};

/// The namespaces of the replicated state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// Keys and values.
    Kv = 1,
    /// Mutexes, read-write locks and semaphores, by name.
    Lock = 2,
    /// Elections, by name.
    Election = 3,
    /// Groups, by name.
    Group = 4,
    /// Work queues, by name.
    Queue = 5,
    /// Barriers, by name.
    Barrier = 6,
    /// Counters, by name.
    Counter = 7,
    /// Sessions (the key is the session id, 8 bytes big-endian).
    Session = 8,
}

impl Space {
    /// The space with this code.
    pub fn from_code(code: u8) -> Result<Space, String> {
        Ok(match code {
            1 => Space::Kv,
            2 => Space::Lock,
            3 => Space::Election,
            4 => Space::Group,
            5 => Space::Queue,
            6 => Space::Barrier,
            7 => Space::Counter,
            8 => Space::Session,
            other => return Err(format!("unknown space {other}")),
        })
    }

    /// Its name as the CLI prints it.
    pub fn name(self) -> &'static str {
        match self {
            Space::Kv => "kv",
            Space::Lock => "lock",
            Space::Election => "election",
            Space::Group => "group",
            Space::Queue => "queue",
            Space::Barrier => "barrier",
            Space::Counter => "counter",
            Space::Session => "session",
        }
    }

    /// The space whose [`name`](Space::name) this is; the inverse the CLI and
    /// the Python binding share to parse a space the user typed.
    pub fn from_name(name: &str) -> Option<Space> {
        (1..=8)
            .filter_map(|code| Space::from_code(code).ok())
            .find(|s| s.name() == name)
    }
}

/// Why a session stopped holding or waiting for something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// It released (or left, resigned, cancelled) itself.
    ByRequest = 1,
    /// Its session was closed.
    SessionClosed = 2,
    /// Its session expired.
    SessionExpired = 3,
}

impl Ended {
    fn from_code(code: u8) -> Result<Ended, String> {
        Ok(match code {
            1 => Ended::ByRequest,
            2 => Ended::SessionClosed,
            3 => Ended::SessionExpired,
            other => return Err(format!("unknown end reason {other}")),
        })
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A KV key was written (`value` holds the new value).
    Put,
    /// A KV key was deleted.
    Delete,
    /// A lock, election leadership or queue item was granted to `session` with `token`
    /// (for a queue, `item` is the item and `value` its payload; for an election `value` is
    /// the leader's value).
    Granted,
    /// `session` started waiting (lock, election candidacy, queue claim).
    Waiting,
    /// `session` no longer holds (or waits for) it.
    Ended(Ended),
    /// An election's leader proclaimed a new `value`.
    Proclaimed,
    /// `session` joined the group as `member`, with metadata in `value`.
    Joined,
    /// A group member left (see [`Ended`] for why).
    Left(Ended),
    /// An item (`item`) was added to a queue, with its payload in `value`.
    Enqueued,
    /// A claimed item was acknowledged and removed.
    Acked,
    /// A claimed item went back to the queue (released, or its claimer's session ended).
    Requeued,
    /// `session` arrived at a barrier; `item` is how many have arrived.
    Arrived,
    /// A barrier's participants all arrived; it opened (`item`: its generation).
    Opened,
    /// A counter changed; `item` holds the new value (as the bits of an i64).
    Counted,
    /// A session was created (`item`: its TTL in ms).
    SessionCreated,
    /// A session ended.
    SessionEnded(Ended),
}

/// One change, at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Revision of the change (several events can share one: a transaction's writes).
    pub revision: u64,
    /// The namespace.
    pub space: Space,
    /// The key or name inside the space.
    pub key: Vec<u8>,
    /// What happened.
    pub kind: EventKind,
    /// The session concerned (0: none).
    pub session: u64,
    /// The fencing token of a grant (0: none).
    pub token: u64,
    /// Kind-specific number: queue item id, barrier count or generation, counter value.
    pub item: u64,
    /// Group member id, when the event concerns one (else empty).
    pub member: Vec<u8>,
    /// Kind-specific bytes: a KV value, an election value, a queue payload, group metadata.
    pub value: Vec<u8>,
}

impl Event {
    /// An event with no session, token, item or value.
    pub fn new(revision: u64, space: Space, key: &[u8], kind: EventKind) -> Event {
        Event {
            revision,
            space,
            key: key.to_vec(),
            kind,
            session: 0,
            token: 0,
            item: 0,
            member: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Bytes this event costs in memory, roughly (for bounding buffers and history).
    pub fn cost_bytes(&self) -> usize {
        96 + self.key.len() + self.member.len() + self.value.len()
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.revision);
        out.put_u8(self.space as u8);
        out.put_bytes(&self.key);
        let (kind, reason) = match &self.kind {
            EventKind::Put => (1, 0),
            EventKind::Delete => (2, 0),
            EventKind::Granted => (3, 0),
            EventKind::Waiting => (4, 0),
            EventKind::Ended(why) => (5, *why as u8),
            EventKind::Proclaimed => (6, 0),
            EventKind::Joined => (7, 0),
            EventKind::Left(why) => (8, *why as u8),
            EventKind::Enqueued => (9, 0),
            EventKind::Acked => (10, 0),
            EventKind::Requeued => (11, 0),
            EventKind::Arrived => (12, 0),
            EventKind::Opened => (13, 0),
            EventKind::Counted => (14, 0),
            EventKind::SessionCreated => (15, 0),
            EventKind::SessionEnded(why) => (16, *why as u8),
        };
        out.put_u8(kind);
        out.put_u8(reason);
        out.put_u64(self.session);
        out.put_u64(self.token);
        out.put_u64(self.item);
        out.put_bytes(&self.member);
        out.put_bytes(&self.value);
    }

    /// Decodes what [`Event::encode`] wrote.
    pub fn decode(reader: &mut Reader) -> Result<Event, String> {
        let revision = reader.u64()?;
        let space = Space::from_code(reader.u8()?)?;
        let key = reader.bytes(KEY_BYTES_MAX)?.to_vec();
        let kind = reader.u8()?;
        let reason = reader.u8()?;
        let kind = match kind {
            1 => EventKind::Put,
            2 => EventKind::Delete,
            3 => EventKind::Granted,
            4 => EventKind::Waiting,
            5 => EventKind::Ended(Ended::from_code(reason)?),
            6 => EventKind::Proclaimed,
            7 => EventKind::Joined,
            8 => EventKind::Left(Ended::from_code(reason)?),
            9 => EventKind::Enqueued,
            10 => EventKind::Acked,
            11 => EventKind::Requeued,
            12 => EventKind::Arrived,
            13 => EventKind::Opened,
            14 => EventKind::Counted,
            15 => EventKind::SessionCreated,
            16 => EventKind::SessionEnded(Ended::from_code(reason)?),
            other => return Err(format!("unknown event kind {other}")),
        };
        Ok(Event {
            revision,
            space,
            key,
            kind,
            session: reader.u64()?,
            token: reader.u64()?,
            item: reader.u64()?,
            member: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
            value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
        })
    }
}

/// Where applying a command puts its effects: the revision counter and the events.
pub struct Effects<'a> {
    /// The state machine's revision (bumped once per change).
    pub revision: &'a mut u64,
    /// Events produced so far by this apply.
    pub events: &'a mut Vec<Event>,
}

impl Effects<'_> {
    /// Starts a new revision and returns it.
    pub fn bump(&mut self) -> u64 {
        *self.revision += 1;
        *self.revision
    }

    /// The current revision.
    pub fn now(&self) -> u64 {
        *self.revision
    }

    /// Records an event at the current revision.
    pub fn emit(&mut self, space: Space, key: &[u8], kind: EventKind) -> &mut Event {
        let event = Event::new(*self.revision, space, key, kind);
        self.events.push(event);
        self.events.last_mut().expect("just pushed")
    }
}

#[cfg(test)]
mod tests {
    use super::Space;

    #[test]
    fn every_space_name_parses_back_to_its_space() {
        for code in 1..=8 {
            let space = Space::from_code(code).unwrap();
            assert_eq!(Space::from_name(space.name()), Some(space));
        }
        assert_eq!(Space::from_name("kvv"), None);
    }
}
