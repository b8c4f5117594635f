//! Requests as they are written into log entries, and their outcomes.
//!
//! ```text
//! request = version:u8 (=1) | client:u64 | sequence:u64 | command
//! command = kind:u8 | fields (length-prefixed byte strings, little-endian integers)
//! ```
//! `sequence` 0 means "do not deduplicate"; otherwise a client's requests carry increasing
//! sequence numbers and a retried one (same client and sequence) is applied only once.

use super::event::Space;
use crate::codec::{Put, Reader};
use crate::limits::{
    BARRIER_PARTICIPANTS_MAX, EXPIRE_BATCH_MAX, KEY_BYTES_MAX, SEMAPHORE_PERMITS_MAX,
    SESSION_TTL_MS_MAX, SESSION_TTL_MS_MIN, TXN_OPERATIONS_MAX, VALUE_BYTES_MAX,
};

/// Version of the request encoding.
pub const REQUEST_VERSION: u8 = 1;

/// What a transaction compares a key against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compare {
    /// The key exists (`true`) or does not (`false`).
    Exists(bool),
    /// The key holds exactly this value.
    Value(Vec<u8>),
    /// The key's version (writes since it was created) is this; 0 means absent.
    Version(u64),
    /// The key was last written at this revision; 0 means absent.
    ModRevision(u64),
    /// The lock named by the condition's key is held with this fencing token (a deposed
    /// holder's guarded write fails). For a read-write lock or a semaphore, any current
    /// holder's token passes: guard exclusive writes with a mutex or the write side.
    LockToken(u64),
    /// The election named by the condition's key is led with this fencing token.
    LeaderToken(u64),
}

/// What kind of lock a name is (fixed by its first acquire while anyone holds or waits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// One holder at a time.
    Mutex,
    /// Many shared holders or one exclusive holder.
    RwLock,
    /// Up to this many holders at a time.
    Semaphore(u32),
    /// One leader at a time, each with a value (the election's space).
    Election,
}

impl LockKind {
    /// (kind code, permits) as encoded.
    pub fn code(self) -> (u8, u32) {
        match self {
            LockKind::Mutex => (1, 0),
            LockKind::RwLock => (2, 0),
            LockKind::Semaphore(permits) => (3, permits),
            LockKind::Election => (4, 0),
        }
    }

    /// The kind [`LockKind::code`] gave.
    pub fn from_code(kind: u8, permits: u32) -> Result<LockKind, String> {
        Ok(match kind {
            1 => LockKind::Mutex,
            2 => LockKind::RwLock,
            3 if (1..=SEMAPHORE_PERMITS_MAX).contains(&permits) => LockKind::Semaphore(permits),
            4 => LockKind::Election,
            other => return Err(format!("unknown lock kind {other} (permits {permits})")),
        })
    }
}

/// How a read-write lock is wanted (other kinds are always `Exclusive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Alone.
    Exclusive,
    /// With other shared holders.
    Shared,
}

/// One comparison of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// The key compared.
    pub key: Vec<u8>,
    /// What it must satisfy.
    pub compare: Compare,
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

/// A write to the replicated state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Set a key.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Set `key` to `value` only if it now holds `expected` (`None`: only if it is absent).
    CompareAndSwap {
        /// The key.
        key: Vec<u8>,
        /// The value it must hold, or `None` for "absent".
        expected: Option<Vec<u8>>,
        /// The new value.
        value: Vec<u8>,
    },
    /// If every condition holds, apply `success`, else `failure`; atomically, as one revision.
    Txn {
        /// The comparisons.
        conditions: Vec<Condition>,
        /// Writes applied when all hold.
        success: Vec<Op>,
        /// Writes applied otherwise.
        failure: Vec<Op>,
    },
    /// Opens a session that lives while keepalives reach the leader within `ttl_ms`.
    CreateSession {
        /// Time to live without a keepalive, in milliseconds.
        ttl_ms: u64,
    },
    /// Ends a session, releasing everything it holds.
    CloseSession {
        /// The session.
        session: u64,
    },
    /// Ends sessions whose keepalives stopped (proposed by the leader only).
    ExpireSessions {
        /// The sessions.
        sessions: Vec<u64>,
    },
    /// Takes a lock (or stands for election) for a session: granted at once, queued (FIFO) when
    /// `wait`, else refused as busy.
    Acquire {
        /// `Space::Lock` or `Space::Election`.
        space: Space,
        /// The lock's or election's name.
        name: Vec<u8>,
        /// The session that will hold it.
        session: u64,
        /// What kind of lock the name is.
        kind: LockKind,
        /// Shared or exclusive (read-write locks).
        mode: Mode,
        /// The candidate's value (elections).
        value: Vec<u8>,
        /// Queue when not grantable now.
        wait: bool,
    },
    /// Releases a lock, resigns an election, or stops waiting for either or for a queue item
    /// (`Space::Queue`: claims already granted stay).
    Release {
        /// `Space::Lock` or `Space::Election`.
        space: Space,
        /// The name.
        name: Vec<u8>,
        /// The holding or waiting session.
        session: u64,
    },
    /// Sets an election leader's value (only with the leadership's current token).
    Proclaim {
        /// The election.
        name: Vec<u8>,
        /// The leader's token.
        token: u64,
        /// The new value.
        value: Vec<u8>,
    },
    /// Joins a group as `member`, bound to `session`.
    Join {
        /// The group.
        group: Vec<u8>,
        /// The member id.
        member: Vec<u8>,
        /// The session the presence lasts with.
        session: u64,
        /// What the member tells the others.
        metadata: Vec<u8>,
    },
    /// Leaves a group.
    Leave {
        /// The group.
        group: Vec<u8>,
        /// The member id.
        member: Vec<u8>,
        /// The session it joined with.
        session: u64,
    },
    /// Adds an item to a work queue.
    Enqueue {
        /// The queue.
        queue: Vec<u8>,
        /// The item's payload.
        payload: Vec<u8>,
    },
    /// Claims the oldest unclaimed item for a session (waiting, FIFO, when `wait`).
    Claim {
        /// The queue.
        queue: Vec<u8>,
        /// The claiming session.
        session: u64,
        /// Queue the claimer when no item is free.
        wait: bool,
    },
    /// Acknowledges a claimed item (removes it), with the claim's token.
    Ack {
        /// The queue.
        queue: Vec<u8>,
        /// The item.
        item: u64,
        /// The claim's token.
        token: u64,
    },
    /// Gives a claimed item back to the queue, with the claim's token.
    Requeue {
        /// The queue.
        queue: Vec<u8>,
        /// The item.
        item: u64,
        /// The claim's token.
        token: u64,
    },
    /// Arrives at a barrier of `participants`; it opens when that many sessions arrived.
    Enter {
        /// The barrier.
        barrier: Vec<u8>,
        /// How many must arrive.
        participants: u32,
        /// The arriving session.
        session: u64,
    },
    /// Leaves a barrier before it opened.
    Exit {
        /// The barrier.
        barrier: Vec<u8>,
        /// The session.
        session: u64,
    },
    /// Adds `delta` to a counter (absent counters are 0).
    Add {
        /// The counter.
        counter: Vec<u8>,
        /// What to add.
        delta: i64,
    },
}

/// A command with the identity that makes retries idempotent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The issuing client (random per client process).
    pub client: u64,
    /// The client's sequence number (0: no deduplication).
    pub sequence: u64,
    /// What to do.
    pub command: Command,
}

/// What applying a request did. Every outcome carries the revision after it was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A put was applied.
    Put {
        /// Revision after the write.
        revision: u64,
    },
    /// A delete was applied.
    Delete {
        /// Revision after the write.
        revision: u64,
        /// Whether the key existed.
        deleted: bool,
    },
    /// A compare-and-swap was evaluated.
    CompareAndSwap {
        /// Revision after it.
        revision: u64,
        /// Whether the value was swapped.
        swapped: bool,
    },
    /// A transaction was evaluated.
    Txn {
        /// Revision after it.
        revision: u64,
        /// Whether the conditions held (success branch applied).
        succeeded: bool,
    },
    /// The request is older than the last one this client had applied; it was not applied
    /// (the client had already moved on).
    Stale {
        /// Current revision.
        revision: u64,
    },
    /// A session was created.
    Session {
        /// Revision of the creation.
        revision: u64,
        /// The new session's id.
        session: u64,
    },
    /// A command that either did something or found nothing to do.
    Done {
        /// Revision after it.
        revision: u64,
        /// Whether it changed something (released, left, acknowledged...).
        ok: bool,
    },
    /// A lock, leadership or claim is held, with this fencing token.
    Acquired {
        /// Revision after it.
        revision: u64,
        /// The fencing token (the revision of the grant).
        token: u64,
    },
    /// The session now waits; the grant comes as a later event (revision > this one).
    Queued {
        /// Revision at which the wait began.
        revision: u64,
    },
    /// Not grantable now and the caller did not want to wait.
    Busy {
        /// Current revision.
        revision: u64,
    },
    /// The command cannot be applied (unknown session, wrong lock kind, a limit...).
    Refused {
        /// Current revision.
        revision: u64,
        /// Why, for the caller.
        reason: String,
    },
    /// An item was enqueued.
    Enqueued {
        /// Revision of the enqueue.
        revision: u64,
        /// The item's id in its queue.
        item: u64,
    },
    /// An item was claimed.
    Claimed {
        /// Revision of the claim.
        revision: u64,
        /// The item.
        item: u64,
        /// The claim's fencing token.
        token: u64,
    },
    /// A session arrived at a barrier.
    Barrier {
        /// Revision after it.
        revision: u64,
        /// How many have arrived (including this one).
        arrived: u32,
        /// Whether this arrival opened the barrier.
        opened: bool,
    },
    /// A counter's value after an add.
    Counter {
        /// Revision after it.
        revision: u64,
        /// The new value.
        value: i64,
    },
}

impl Outcome {
    /// The revision the outcome was served at.
    pub fn revision(&self) -> u64 {
        match self {
            Outcome::Put { revision }
            | Outcome::Delete { revision, .. }
            | Outcome::CompareAndSwap { revision, .. }
            | Outcome::Txn { revision, .. }
            | Outcome::Stale { revision }
            | Outcome::Session { revision, .. }
            | Outcome::Done { revision, .. }
            | Outcome::Acquired { revision, .. }
            | Outcome::Queued { revision }
            | Outcome::Busy { revision }
            | Outcome::Refused { revision, .. }
            | Outcome::Enqueued { revision, .. }
            | Outcome::Claimed { revision, .. }
            | Outcome::Barrier { revision, .. }
            | Outcome::Counter { revision, .. } => *revision,
        }
    }

    /// Bytes [`Outcome::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        9 + match self {
            Outcome::Put { .. }
            | Outcome::Delete { .. }
            | Outcome::CompareAndSwap { .. }
            | Outcome::Txn { .. }
            | Outcome::Stale { .. } => 1,
            Outcome::Queued { .. } | Outcome::Busy { .. } => 0,
            Outcome::Session { .. }
            | Outcome::Done { .. }
            | Outcome::Acquired { .. }
            | Outcome::Enqueued { .. }
            | Outcome::Counter { .. } => 8,
            Outcome::Claimed { .. } | Outcome::Barrier { .. } => 16,
            Outcome::Refused { reason, .. } => 4 + capped(reason).len(),
        }
    }

    /// Appends the encoding: kind, revision, then the variant's fields.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (kind, revision, flag) = match self {
            Outcome::Session { revision, session } => {
                return put_outcome(out, 6, *revision, &[*session]);
            }
            Outcome::Done { revision, ok } => return put_outcome(out, 7, *revision, &[*ok as u64]),
            Outcome::Acquired { revision, token } => {
                return put_outcome(out, 8, *revision, &[*token]);
            }
            Outcome::Queued { revision } => return put_outcome(out, 9, *revision, &[]),
            Outcome::Busy { revision } => return put_outcome(out, 10, *revision, &[]),
            Outcome::Refused { revision, reason } => {
                put_outcome(out, 11, *revision, &[]);
                return out.put_bytes(capped(reason).as_bytes());
            }
            Outcome::Enqueued { revision, item } => {
                return put_outcome(out, 12, *revision, &[*item]);
            }
            Outcome::Claimed {
                revision,
                item,
                token,
            } => return put_outcome(out, 13, *revision, &[*item, *token]),
            Outcome::Barrier {
                revision,
                arrived,
                opened,
            } => return put_outcome(out, 14, *revision, &[*arrived as u64, *opened as u64]),
            Outcome::Counter { revision, value } => {
                return put_outcome(out, 15, *revision, &[*value as u64]);
            }
            Outcome::Put { revision } => (1, revision, false),
            Outcome::Delete { revision, deleted } => (2, revision, *deleted),
            Outcome::CompareAndSwap { revision, swapped } => (3, revision, *swapped),
            Outcome::Txn {
                revision,
                succeeded,
            } => (4, revision, *succeeded),
            Outcome::Stale { revision } => (5, revision, false),
        };
        out.put_u8(kind);
        out.put_u64(*revision);
        out.put_u8(flag as u8);
    }

    /// Decodes what [`Outcome::encode`] wrote.
    pub fn decode(reader: &mut Reader) -> Result<Outcome, String> {
        let kind = reader.u8()?;
        let revision = reader.u64()?;
        match kind {
            6 => {
                let session = reader.u64()?;
                return Ok(Outcome::Session { revision, session });
            }
            7 => {
                let ok = reader.u64()? != 0;
                return Ok(Outcome::Done { revision, ok });
            }
            8 => {
                let token = reader.u64()?;
                return Ok(Outcome::Acquired { revision, token });
            }
            9 => return Ok(Outcome::Queued { revision }),
            10 => return Ok(Outcome::Busy { revision }),
            11 => {
                let reason = String::from_utf8_lossy(reader.bytes(4096)?).into_owned();
                return Ok(Outcome::Refused { revision, reason });
            }
            12 => {
                let item = reader.u64()?;
                return Ok(Outcome::Enqueued { revision, item });
            }
            13 => {
                let item = reader.u64()?;
                let token = reader.u64()?;
                return Ok(Outcome::Claimed {
                    revision,
                    item,
                    token,
                });
            }
            14 => {
                let arrived = reader.u64()? as u32;
                let opened = reader.u64()? != 0;
                return Ok(Outcome::Barrier {
                    revision,
                    arrived,
                    opened,
                });
            }
            15 => {
                let value = reader.u64()? as i64;
                return Ok(Outcome::Counter { revision, value });
            }
            _ => {}
        }
        let flag = reader.u8()? != 0;
        Ok(match kind {
            1 => Outcome::Put { revision },
            2 => Outcome::Delete {
                revision,
                deleted: flag,
            },
            3 => Outcome::CompareAndSwap {
                revision,
                swapped: flag,
            },
            4 => Outcome::Txn {
                revision,
                succeeded: flag,
            },
            5 => Outcome::Stale { revision },
            other => return Err(format!("unknown outcome kind {other}")),
        })
    }
}

/// Longest refusal reason kept (they quote names, which can be long): every member stores
/// the outcome for exactly-once retries and in snapshots, whose decoder bounds it.
const REASON_BYTES_MAX: usize = 1024;

/// `reason` cut to [`REASON_BYTES_MAX`] bytes, at a character boundary.
fn capped(reason: &str) -> &str {
    let mut end = reason.len().min(REASON_BYTES_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

fn put_outcome(out: &mut Vec<u8>, kind: u8, revision: u64, fields: &[u64]) {
    out.put_u8(kind);
    out.put_u64(revision);
    for field in fields {
        out.put_u64(*field);
    }
}

fn put_op(out: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Put { key, value } => {
            out.put_u8(1);
            out.put_bytes(key);
            out.put_bytes(value);
        }
        Op::Delete { key } => {
            out.put_u8(2);
            out.put_bytes(key);
        }
    }
}

fn read_op(reader: &mut Reader) -> Result<Op, String> {
    match reader.u8()? {
        1 => Ok(Op::Put {
            key: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
            value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
        }),
        2 => Ok(Op::Delete {
            key: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
        }),
        other => Err(format!("unknown transaction operation {other}")),
    }
}

fn put_condition(out: &mut Vec<u8>, condition: &Condition) {
    out.put_bytes(&condition.key);
    match &condition.compare {
        Compare::Exists(exists) => {
            out.put_u8(1);
            out.put_u8(*exists as u8);
        }
        Compare::Value(value) => {
            out.put_u8(2);
            out.put_bytes(value);
        }
        Compare::Version(version) => {
            out.put_u8(3);
            out.put_u64(*version);
        }
        Compare::ModRevision(revision) => {
            out.put_u8(4);
            out.put_u64(*revision);
        }
        Compare::LockToken(token) => {
            out.put_u8(5);
            out.put_u64(*token);
        }
        Compare::LeaderToken(token) => {
            out.put_u8(6);
            out.put_u64(*token);
        }
    }
}

fn read_condition(reader: &mut Reader) -> Result<Condition, String> {
    let key = reader.bytes(KEY_BYTES_MAX)?.to_vec();
    let compare = match reader.u8()? {
        1 => Compare::Exists(reader.u8()? != 0),
        2 => Compare::Value(reader.bytes(VALUE_BYTES_MAX)?.to_vec()),
        3 => Compare::Version(reader.u64()?),
        4 => Compare::ModRevision(reader.u64()?),
        5 => Compare::LockToken(reader.u64()?),
        6 => Compare::LeaderToken(reader.u64()?),
        other => return Err(format!("unknown comparison {other}")),
    };
    Ok(Condition { key, compare })
}

fn name(reader: &mut Reader) -> Result<Vec<u8>, String> {
    Ok(reader.bytes(KEY_BYTES_MAX)?.to_vec())
}

fn read_list<T>(
    reader: &mut Reader,
    read: impl Fn(&mut Reader) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let count = reader.u32()? as usize;
    if count > TXN_OPERATIONS_MAX {
        return Err(format!(
            "{count} items exceed the limit of {TXN_OPERATIONS_MAX}"
        ));
    }
    (0..count).map(|_| read(reader)).collect()
}

impl Request {
    /// The encoding written into a log entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.put_u8(REQUEST_VERSION);
        out.put_u64(self.client);
        out.put_u64(self.sequence);
        self.command.encode(&mut out);
        out
    }

    /// Decodes a log entry's request; an error for anything malformed (never a panic).
    pub fn decode(bytes: &[u8]) -> Result<Request, String> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8()?;
        if version != REQUEST_VERSION {
            return Err(format!(
                "request encoding version {version} is not supported"
            ));
        }
        let client = reader.u64()?;
        let sequence = reader.u64()?;
        let command = Command::decode(&mut reader)?;
        reader.finish()?;
        Ok(Request {
            client,
            sequence,
            command,
        })
    }
}

impl Command {
    /// Whether applying it can make the state (or the log) grow for good: what a member
    /// over its disk quota refuses. Deletes, releases, leaves, acknowledgements and closes
    /// stay allowed: they are how space is freed.
    pub fn adds_data(&self) -> bool {
        matches!(
            self,
            Command::Put { .. }
                | Command::CompareAndSwap { .. }
                | Command::Txn { .. }
                | Command::CreateSession { .. }
                | Command::Acquire { .. }
                | Command::Proclaim { .. }
                | Command::Join { .. }
                | Command::Enqueue { .. }
                | Command::Claim { .. }
                | Command::Enter { .. }
                | Command::Add { .. }
        )
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Put { key, value } => {
                out.put_u8(1);
                out.put_bytes(key);
                out.put_bytes(value);
            }
            Command::Delete { key } => {
                out.put_u8(2);
                out.put_bytes(key);
            }
            Command::CompareAndSwap {
                key,
                expected,
                value,
            } => {
                out.put_u8(3);
                out.put_bytes(key);
                out.put_u8(expected.is_some() as u8);
                out.put_bytes(expected.as_deref().unwrap_or_default());
                out.put_bytes(value);
            }
            Command::Txn {
                conditions,
                success,
                failure,
            } => {
                out.put_u8(4);
                out.put_u32(conditions.len() as u32);
                conditions.iter().for_each(|c| put_condition(out, c));
                for ops in [success, failure] {
                    out.put_u32(ops.len() as u32);
                    ops.iter().for_each(|op| put_op(out, op));
                }
            }
            Command::CreateSession { ttl_ms } => {
                out.put_u8(5);
                out.put_u64(*ttl_ms);
            }
            Command::CloseSession { session } => {
                out.put_u8(6);
                out.put_u64(*session);
            }
            Command::ExpireSessions { sessions } => {
                out.put_u8(7);
                out.put_u32(sessions.len() as u32);
                sessions.iter().for_each(|s| out.put_u64(*s));
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
                out.put_u8(8);
                out.put_u8(*space as u8);
                out.put_bytes(name);
                out.put_u64(*session);
                let (kind, permits) = kind.code();
                out.put_u8(kind);
                out.put_u32(permits);
                out.put_u8(match mode {
                    Mode::Exclusive => 1,
                    Mode::Shared => 2,
                });
                out.put_bytes(value);
                out.put_u8(*wait as u8);
            }
            Command::Release {
                space,
                name,
                session,
            } => {
                out.put_u8(9);
                out.put_u8(*space as u8);
                out.put_bytes(name);
                out.put_u64(*session);
            }
            Command::Proclaim { name, token, value } => {
                out.put_u8(10);
                out.put_bytes(name);
                out.put_u64(*token);
                out.put_bytes(value);
            }
            Command::Join {
                group,
                member,
                session,
                metadata,
            } => {
                out.put_u8(11);
                out.put_bytes(group);
                out.put_bytes(member);
                out.put_u64(*session);
                out.put_bytes(metadata);
            }
            Command::Leave {
                group,
                member,
                session,
            } => {
                out.put_u8(12);
                out.put_bytes(group);
                out.put_bytes(member);
                out.put_u64(*session);
            }
            Command::Enqueue { queue, payload } => {
                out.put_u8(13);
                out.put_bytes(queue);
                out.put_bytes(payload);
            }
            Command::Claim {
                queue,
                session,
                wait,
            } => {
                out.put_u8(14);
                out.put_bytes(queue);
                out.put_u64(*session);
                out.put_u8(*wait as u8);
            }
            Command::Ack { queue, item, token } | Command::Requeue { queue, item, token } => {
                out.put_u8(if matches!(self, Command::Ack { .. }) {
                    15
                } else {
                    16
                });
                out.put_bytes(queue);
                out.put_u64(*item);
                out.put_u64(*token);
            }
            Command::Enter {
                barrier,
                participants,
                session,
            } => {
                out.put_u8(17);
                out.put_bytes(barrier);
                out.put_u32(*participants);
                out.put_u64(*session);
            }
            Command::Exit { barrier, session } => {
                out.put_u8(18);
                out.put_bytes(barrier);
                out.put_u64(*session);
            }
            Command::Add { counter, delta } => {
                out.put_u8(19);
                out.put_bytes(counter);
                out.put_u64(*delta as u64);
            }
        }
    }

    /// Decodes what [`Command::encode`] wrote.
    pub fn decode(reader: &mut Reader) -> Result<Command, String> {
        Ok(match reader.u8()? {
            1 => Command::Put {
                key: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
                value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
            },
            2 => Command::Delete {
                key: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
            },
            3 => {
                let key = reader.bytes(KEY_BYTES_MAX)?.to_vec();
                let has_expected = reader.u8()? != 0;
                let expected = reader.bytes(VALUE_BYTES_MAX)?.to_vec();
                Command::CompareAndSwap {
                    key,
                    expected: has_expected.then_some(expected),
                    value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
                }
            }
            4 => Command::Txn {
                conditions: read_list(reader, read_condition)?,
                success: read_list(reader, read_op)?,
                failure: read_list(reader, read_op)?,
            },
            5 => Command::CreateSession {
                ttl_ms: reader.u64()?,
            },
            6 => Command::CloseSession {
                session: reader.u64()?,
            },
            7 => Command::ExpireSessions {
                sessions: reader.ids(EXPIRE_BATCH_MAX)?,
            },
            8 => {
                let space = Space::from_code(reader.u8()?)?;
                let name = name(reader)?;
                let session = reader.u64()?;
                let kind = reader.u8()?;
                let kind = LockKind::from_code(kind, reader.u32()?)?;
                let mode = match reader.u8()? {
                    1 => Mode::Exclusive,
                    2 => Mode::Shared,
                    other => return Err(format!("unknown lock mode {other}")),
                };
                Command::Acquire {
                    space,
                    name,
                    session,
                    kind,
                    mode,
                    value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
                    wait: reader.u8()? != 0,
                }
            }
            9 => Command::Release {
                space: Space::from_code(reader.u8()?)?,
                name: name(reader)?,
                session: reader.u64()?,
            },
            10 => Command::Proclaim {
                name: name(reader)?,
                token: reader.u64()?,
                value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
            },
            11 => Command::Join {
                group: name(reader)?,
                member: name(reader)?,
                session: reader.u64()?,
                metadata: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
            },
            12 => Command::Leave {
                group: name(reader)?,
                member: name(reader)?,
                session: reader.u64()?,
            },
            13 => Command::Enqueue {
                queue: name(reader)?,
                payload: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
            },
            14 => Command::Claim {
                queue: name(reader)?,
                session: reader.u64()?,
                wait: reader.u8()? != 0,
            },
            15 => Command::Ack {
                queue: name(reader)?,
                item: reader.u64()?,
                token: reader.u64()?,
            },
            16 => Command::Requeue {
                queue: name(reader)?,
                item: reader.u64()?,
                token: reader.u64()?,
            },
            17 => Command::Enter {
                barrier: name(reader)?,
                participants: reader.u32()?,
                session: reader.u64()?,
            },
            18 => Command::Exit {
                barrier: name(reader)?,
                session: reader.u64()?,
            },
            19 => Command::Add {
                counter: name(reader)?,
                delta: reader.u64()? as i64,
            },
            other => return Err(format!("unknown command kind {other}")),
        })
    }

    /// Checks sizes and counts against the limits, with a message naming what is too big.
    pub fn validate(&self) -> Result<(), String> {
        let key = |key: &[u8]| {
            if key.is_empty() || key.len() > KEY_BYTES_MAX {
                return Err(format!(
                    "keys must be 1..={KEY_BYTES_MAX} bytes, not {}",
                    key.len()
                ));
            }
            Ok(())
        };
        let value = |value: &[u8]| {
            if value.len() > VALUE_BYTES_MAX {
                return Err(format!(
                    "values must be at most {VALUE_BYTES_MAX} bytes, not {}",
                    value.len()
                ));
            }
            Ok(())
        };
        match self {
            Command::Put { key: k, value: v } => key(k).and(value(v)),
            Command::Delete { key: k } => key(k),
            Command::CompareAndSwap {
                key: k,
                expected,
                value: v,
            } => key(k)
                .and(value(v))
                .and(value(expected.as_deref().unwrap_or_default())),
            Command::Txn {
                conditions,
                success,
                failure,
            } => {
                let count = conditions.len() + success.len() + failure.len();
                if count > TXN_OPERATIONS_MAX {
                    return Err(format!(
                        "a transaction may hold {TXN_OPERATIONS_MAX} comparisons and operations, not {count}"
                    ));
                }
                for condition in conditions {
                    key(&condition.key)?;
                }
                for op in success.iter().chain(failure) {
                    match op {
                        Op::Put { key: k, value: v } => key(k).and(value(v))?,
                        Op::Delete { key: k } => key(k)?,
                    }
                }
                Ok(())
            }
            Command::CreateSession { ttl_ms } => {
                if !(SESSION_TTL_MS_MIN..=SESSION_TTL_MS_MAX).contains(ttl_ms) {
                    return Err(format!(
                        "a session's TTL must be {SESSION_TTL_MS_MIN}..={SESSION_TTL_MS_MAX} ms, not {ttl_ms}"
                    ));
                }
                Ok(())
            }
            Command::CloseSession { .. } => Ok(()),
            Command::ExpireSessions { sessions } => {
                if sessions.len() > EXPIRE_BATCH_MAX {
                    return Err(format!(
                        "at most {EXPIRE_BATCH_MAX} sessions expire at once"
                    ));
                }
                Ok(())
            }
            Command::Acquire {
                space,
                name,
                kind,
                mode,
                value: v,
                ..
            } => {
                key(name)?;
                value(v)?;
                let election = *kind == LockKind::Election;
                if election != (*space == Space::Election)
                    || !matches!(space, Space::Lock | Space::Election)
                {
                    return Err(
                        "elections are in the election space, locks in the lock space".into(),
                    );
                }
                if *mode == Mode::Shared && *kind != LockKind::RwLock {
                    return Err("only a read-write lock can be held shared".into());
                }
                if let LockKind::Semaphore(permits) = kind {
                    if !(1..=SEMAPHORE_PERMITS_MAX).contains(permits) {
                        return Err(format!(
                            "a semaphore has 1..={SEMAPHORE_PERMITS_MAX} permits, not {permits}"
                        ));
                    }
                }
                Ok(())
            }
            Command::Release { space, name, .. } => {
                if !matches!(space, Space::Lock | Space::Election | Space::Queue) {
                    return Err("only locks, elections and queue waits are released".into());
                }
                key(name)
            }
            Command::Proclaim { name, value: v, .. } => key(name).and(value(v)),
            Command::Join {
                group,
                member,
                metadata,
                ..
            } => key(group).and(key(member)).and(value(metadata)),
            Command::Leave { group, member, .. } => key(group).and(key(member)),
            Command::Enqueue { queue, payload } => key(queue).and(value(payload)),
            Command::Claim { queue, .. }
            | Command::Ack { queue, .. }
            | Command::Requeue { queue, .. } => key(queue),
            Command::Enter {
                barrier,
                participants,
                ..
            } => {
                if !(1..=BARRIER_PARTICIPANTS_MAX).contains(participants) {
                    return Err(format!(
                        "a barrier has 1..={BARRIER_PARTICIPANTS_MAX} participants, not {participants}"
                    ));
                }
                key(barrier)
            }
            Command::Exit { barrier, .. } => key(barrier),
            Command::Add { counter, .. } => key(counter),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_garbage_is_refused() {
        let request = Request {
            client: 9,
            sequence: 4,
            command: Command::Txn {
                conditions: vec![Condition {
                    key: b"k".to_vec(),
                    compare: Compare::Version(3),
                }],
                success: vec![Op::Put {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                }],
                failure: vec![Op::Delete { key: b"j".to_vec() }],
            },
        };
        let bytes = request.encode();
        assert_eq!(Request::decode(&bytes).unwrap(), request);
        for cut in 0..bytes.len() {
            assert!(Request::decode(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[0] = 2;
        assert!(Request::decode(&bad).is_err());
    }
}
