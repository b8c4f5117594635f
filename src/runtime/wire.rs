//! The wire protocol between members, and between clients and members.
//!
//! ```text
//! frame = length:u32 (of what follows) | version:u8 | kind:u8 | payload
//! ```
//! The length is checked against [`FRAME_BYTES_MAX`] before anything is buffered for it. The
//! first frame on every connection is `Hello` (protocol version, cluster id, and who is
//! calling: a member with its id, or a client); a member answers `Welcome` or `Refused` with
//! the reason, and closes the connection after a refusal.

use crate::codec::{Put, Reader};
use crate::core::raft::{Message, MessageBody};
use crate::core::state::group::Member;
use crate::core::state::lock::Holder;
use crate::core::state::{Event, KeyValue, Mode, Outcome, Request, Space};
use crate::limits::{
    ENTRY_BYTES_MAX, EVENTS_PER_FRAME_MAX, EXPIRE_BATCH_MAX, FRAME_BYTES_MAX, GROUP_MEMBERS_MAX,
    KEY_BYTES_MAX, LEARNERS_MAX, LOCK_WAITERS_MAX, RANGE_RESULTS_MAX, SEMAPHORE_PERMITS_MAX,
    SNAPSHOT_BYTES_MAX, TOKEN_BYTES_MAX, VALUE_BYTES_MAX, VOTERS_MAX,
};
use crate::types::{ConfState, Entry, EntryKind, NodeId, Payload, SnapshotMeta};

/// Version of the wire protocol; a peer speaking another is refused.
/// (3: `Hello` carries a token.)
pub const PROTOCOL_VERSION: u8 = 3;

/// How a `Refused` frame's text starts when the caller did not identify itself or may not
/// join as it asked (the client reports `PermissionDenied`, not a configuration error).
pub const REFUSED_UNAUTHENTICATED: &str = "authentication failed";

/// Bytes before a frame's payload: length, version, kind.
pub const FRAME_HEADER_BYTES: usize = 6;

/// Who opens a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A member, with its node id.
    Member(NodeId),
    /// A client, with its client id.
    Client(u64),
}

/// A read or write a client asks a member to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// A write, replicated through the log (exactly once per client and sequence).
    Write(Request),
    /// Read one key; linearizable unless `serializable`.
    Get {
        /// The key.
        key: Vec<u8>,
        /// Serve from this member's state without confirming with the leader (may be stale).
        serializable: bool,
    },
    /// Read keys by prefix.
    Range {
        /// The prefix.
        prefix: Vec<u8>,
        /// At most this many keys.
        limit: u32,
        /// As for `Get`.
        serializable: bool,
    },
    /// This member's view of the cluster.
    Status,
    /// Keeps sessions alive (served by the leader once a quorum confirmed its leadership).
    KeepAlive {
        /// The sessions.
        sessions: Vec<u64>,
    },
    /// Reads a primitive's state; linearizable unless `serializable`.
    Query {
        /// What to read.
        query: Query,
        /// As for `Get`.
        serializable: bool,
    },
    /// Starts streaming the changes of a space's keys under `prefix`, from revision `from`
    /// (events come as [`Frame::Events`] tagged with `watch`).
    Watch {
        /// The caller's id for this watch (unique on its connection).
        watch: u64,
        /// The space.
        space: Space,
        /// The key or name prefix (empty: the whole space).
        prefix: Vec<u8>,
        /// First revision wanted.
        from: u64,
    },
    /// Stops a watch.
    Unwatch {
        /// The watch.
        watch: u64,
    },
    /// Reads or changes the cluster's membership (changes are served by the leader).
    Membership(MembershipOp),
    /// Saves a snapshot of the replicated state (`accord snapshot save`; the leader serves).
    Snapshot(SnapshotOp),
}

/// A step of saving a snapshot from a live cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotOp {
    /// The newest durable snapshot if it covers index `after`; otherwise the leader takes
    /// one and answers `Unavailable` until it is durable (the client retries).
    Prepare {
        /// The index it must cover (the commit index when the save began).
        after: u64,
    },
    /// Bytes of the snapshot file at (`index`, `term`) from `offset`.
    Read {
        /// The snapshot's index.
        index: u64,
        /// Its term.
        term: u64,
        /// Where to read from.
        offset: u64,
    },
}

/// A membership request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipOp {
    /// The membership as this member sees it.
    List,
    /// Adds member `id`, reachable at `address`, as a learner.
    AddLearner {
        /// The new member's id.
        id: NodeId,
        /// Its address ("host:port") for members and clients.
        address: String,
    },
    /// Makes learner `id` a voter (refused until it has caught up).
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// Removes member `id` (a voter, the leader included, or a learner).
    Remove {
        /// The member.
        id: NodeId,
    },
    /// Hands leadership to voter `to` (answered once it leads).
    TransferLeader {
        /// The voter to lead.
        to: NodeId,
    },
}

/// The membership, as a member sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipView {
    /// The member answering.
    pub id: NodeId,
    /// The leader it knows (0: none).
    pub leader: NodeId,
    /// The membership in force on it.
    pub conf: ConfState,
    /// A change is in progress (not committed yet, or joint).
    pub pending: bool,
    /// The members' addresses.
    pub addresses: Vec<(NodeId, String)>,
}

/// A read of a primitive's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Holders and waiters of a lock, or the leader and candidates of an election.
    Holders {
        /// `Space::Lock` or `Space::Election`.
        space: Space,
        /// The name.
        name: Vec<u8>,
    },
    /// A group's members.
    Members {
        /// The group.
        group: Vec<u8>,
    },
    /// A queue's counts.
    Queue {
        /// The queue.
        queue: Vec<u8>,
    },
    /// A barrier's arrivals.
    Barrier {
        /// The barrier.
        name: Vec<u8>,
    },
    /// A counter's value.
    Counter {
        /// The counter.
        name: Vec<u8>,
    },
    /// Whether a session is alive, and its TTL.
    Session {
        /// The session.
        session: u64,
    },
}

/// The answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Holders (the leader first for an election) and waiting sessions.
    Holders {
        /// Current holders, in grant order.
        holders: Vec<Holder>,
        /// Waiting sessions, first in line first.
        waiters: Vec<u64>,
    },
    /// A group's members, by id.
    Members {
        /// Members, by id, up to a reply's byte budget.
        members: Vec<Member>,
        /// More members exist than the reply holds.
        more: bool,
    },
    /// (items, unclaimed, waiting claimers).
    Queue {
        /// Items held, claimed or not.
        items: u64,
        /// Unclaimed items.
        ready: u64,
        /// Sessions waiting to claim.
        waiters: u64,
    },
    /// Arrived and expected participants (0, 0: no barrier waiting).
    Barrier {
        /// Arrived.
        arrived: u32,
        /// Expected.
        participants: u32,
    },
    /// A counter's value.
    Counter(i64),
    /// A session's TTL in ms (0: not alive).
    Session(u64),
}

/// A member's view of the cluster, as `accord status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The member answering.
    pub id: NodeId,
    /// Its role ("leader", "follower", "candidate", "pre-candidate").
    pub role: String,
    /// Its term.
    pub term: u64,
    /// The leader it knows (0: none).
    pub leader: NodeId,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// State-machine revision.
    pub revision: u64,
    /// On a leader: every member's health as the leader sees it.
    pub members: Vec<MemberHealth>,
    /// The member's load from its clients: what they cost it now, beside its bounds.
    pub load: ClientLoad,
}

/// What a member's clients cost it, beside the bounds (see `limits.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientLoad {
    /// Client connections open.
    pub connections: u64,
    /// Of those, connections not read from until their unsent replies drain.
    pub paused: u64,
    /// Unsent bytes of all client connections (replies and watch events).
    pub send_bytes: u64,
    /// The member's budget for them (`MEMBER_CLIENT_SEND_BYTES_MAX`).
    pub send_bytes_max: u64,
    /// Client requests waiting for the log or a read confirmation.
    pub pending_requests: u64,
}

/// One member's health, as the leader sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberHealth {
    /// The member.
    pub id: NodeId,
    /// Whether it votes.
    pub voter: bool,
    /// Highest index known to match the leader's log.
    pub matched: u64,
    /// Entries it trails the leader by.
    pub lag_entries: u64,
    /// Bytes of those entries (`u64::MAX`: it needs a snapshot, the entries are compacted).
    pub lag_bytes: u64,
    /// Milliseconds since the leader last heard from it (`u64::MAX`: never).
    pub contact_ms: u64,
    /// Not heard from for longer than twice the longest election timeout.
    pub suspect: bool,
}

/// A member's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientReply {
    /// A write was applied.
    Written(Outcome),
    /// A read, at `revision`.
    Values {
        /// Revision the read was served at.
        revision: u64,
        /// Keys found (at most one for `Get`).
        found: Vec<KeyValue>,
        /// More keys matched a range than were returned.
        more: bool,
    },
    /// This member cannot serve the request; retry on the leader, if known.
    NotLeader {
        /// The leader's id (0: unknown).
        leader: NodeId,
        /// The leader's client address, if known.
        address: String,
    },
    /// The request is invalid and was refused; retrying will not help.
    Failed(String),
    /// The request could not be served now (no quorum in time, overloaded, leadership
    /// moving); the client should retry, elsewhere if need be.
    Unavailable(String),
    /// The caller's identity lacks the right to make this request (nothing was done or
    /// read; see `runtime::access`).
    Denied(String),
    /// The member's status.
    Status(Status),
    /// Sessions kept alive: (session, TTL in ms, 0 when the session is not alive).
    KeptAlive(Vec<(u64, u64)>),
    /// The answer to a query, at `revision`.
    Answer {
        /// Revision served at.
        revision: u64,
        /// The answer.
        answer: Answer,
    },
    /// A claim was applied; the item's payload comes with it.
    Claimed {
        /// The outcome (`Outcome::Claimed`, or another for a refusal).
        outcome: Outcome,
        /// The claimed item's payload.
        payload: Vec<u8>,
    },
    /// The watch is registered; its events follow as [`Frame::Events`].
    Watching {
        /// The member's revision when the watch started.
        revision: u64,
    },
    /// The watch's start revision is older than this member's event history: list again
    /// (at `revision` or later) and watch from there.
    Compacted {
        /// The member's current revision.
        revision: u64,
    },
    /// The membership (after a change completed, or for a listing).
    Membership(MembershipView),
    /// A snapshot file, or part of it.
    SnapshotChunk {
        /// The snapshot's index.
        index: u64,
        /// Its term.
        term: u64,
        /// The whole file's size.
        total: u64,
        /// Where `data` starts in the file.
        offset: u64,
        /// The bytes (empty in the answer to `Prepare`).
        data: Vec<u8>,
    },
}

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Opens a connection.
    Hello {
        /// The cluster the caller belongs to.
        cluster: u64,
        /// Who calls.
        caller: Caller,
        /// The caller's shared-secret token (empty: none; a certificate may identify it).
        token: Vec<u8>,
    },
    /// The member accepted the connection.
    Welcome {
        /// The member's id.
        node: NodeId,
    },
    /// The member refused the connection, and says why (see [`REFUSED_UNAUTHENTICATED`]).
    Refused(String),
    /// A Raft message between members.
    Raft(Message),
    /// A client request.
    Request {
        /// The client's identifier for matching the reply.
        id: u64,
        /// What to do.
        op: ClientOp,
    },
    /// A member's reply.
    Reply {
        /// The request answered.
        id: u64,
        /// The answer.
        reply: ClientReply,
    },
    /// Events for one of the connection's watches, in revision order.
    Events {
        /// The watch.
        watch: u64,
        /// The events.
        events: Vec<Event>,
    },
    /// The member ended a watch (a slow consumer, a snapshot replacing its state...).
    WatchEnded {
        /// The watch.
        watch: u64,
        /// Why.
        reason: String,
        /// The watcher may register again from its position (it may then learn it was
        /// compacted); `false` for a watch cancelled for good (a slow consumer).
        resume: bool,
    },
}

const KIND_HELLO: u8 = 1;
const KIND_WELCOME: u8 = 2;
const KIND_REFUSED: u8 = 3;
const KIND_RAFT: u8 = 4;
const KIND_REQUEST: u8 = 5;
const KIND_REPLY: u8 = 6;
const KIND_EVENTS: u8 = 7;
const KIND_WATCH_ENDED: u8 = 8;

/// Appends a client request frame to `out` without building a [`Frame`] (no copy of the
/// operation).
pub fn encode_request(id: u64, op: &ClientOp, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    out.put_u8(PROTOCOL_VERSION);
    out.put_u8(KIND_REQUEST);
    out.put_u64(id);
    encode_op(op, out);
    let length = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
}

/// Appends an `Events` frame for `watch` without building a [`Frame`] (no copy of the
/// events: a member sends one event to many watches).
pub fn encode_events(watch: u64, events: &[&Event], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    out.put_u8(PROTOCOL_VERSION);
    out.put_u8(KIND_EVENTS);
    out.put_u64(watch);
    out.put_u32(events.len() as u32);
    events.iter().for_each(|event| event.encode(out));
    let length = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
}

/// Appends the frame's encoding to `out`.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    out.put_u8(PROTOCOL_VERSION);
    match frame {
        Frame::Hello {
            cluster,
            caller,
            token,
        } => {
            out.put_u8(KIND_HELLO);
            out.put_u64(*cluster);
            let (role, id) = match caller {
                Caller::Member(id) => (1, *id),
                Caller::Client(id) => (2, *id),
            };
            out.put_u8(role);
            out.put_u64(id);
            out.put_bytes(token);
        }
        Frame::Welcome { node } => {
            out.put_u8(KIND_WELCOME);
            out.put_u64(*node);
        }
        Frame::Refused(reason) => {
            out.put_u8(KIND_REFUSED);
            out.put_bytes(reason.as_bytes());
        }
        Frame::Raft(message) => {
            out.put_u8(KIND_RAFT);
            encode_message(message, out);
        }
        Frame::Request { id, op } => {
            out.truncate(start);
            encode_request(*id, op, out);
            return;
        }
        Frame::Reply { id, reply } => {
            out.put_u8(KIND_REPLY);
            out.put_u64(*id);
            encode_reply(reply, out);
        }
        Frame::Events { watch, events } => {
            out.truncate(start);
            let events: Vec<&Event> = events.iter().collect();
            encode_events(*watch, &events, out);
            return;
        }
        Frame::WatchEnded {
            watch,
            reason,
            resume,
        } => {
            out.put_u8(KIND_WATCH_ENDED);
            out.put_u64(*watch);
            out.put_bytes(reason.as_bytes());
            out.put_u8(*resume as u8);
        }
    }
    let length = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
}

/// What the start of a receive buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame, and the bytes it took.
    Frame(Frame, usize),
    /// Not enough bytes yet.
    NeedMore,
    /// The peer violated the protocol; close the connection (the text says how).
    Invalid(String),
}

/// Decodes the frame at the start of `buffer`.
pub fn decode(buffer: &[u8]) -> Decoded {
    let Some(header) = buffer.get(..FRAME_HEADER_BYTES) else {
        return Decoded::NeedMore;
    };
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if !(2..=FRAME_BYTES_MAX).contains(&length) {
        return Decoded::Invalid(format!(
            "frame length {length} is outside 2..={FRAME_BYTES_MAX}"
        ));
    }
    if header[4] != PROTOCOL_VERSION {
        return Decoded::Invalid(format!(
            "protocol version {} is not supported (this member speaks {PROTOCOL_VERSION})",
            header[4]
        ));
    }
    let Some(body) = buffer.get(FRAME_HEADER_BYTES..4 + length) else {
        return Decoded::NeedMore;
    };
    let mut reader = Reader::new(body);
    match decode_body(header[5], &mut reader).and_then(|frame| reader.finish().map(|()| frame)) {
        Ok(frame) => Decoded::Frame(frame, 4 + length),
        Err(why) => Decoded::Invalid(format!("malformed frame of kind {}: {why}", header[5])),
    }
}

fn decode_body(kind: u8, reader: &mut Reader) -> Result<Frame, String> {
    Ok(match kind {
        KIND_HELLO => {
            let cluster = reader.u64()?;
            let role = reader.u8()?;
            let id = reader.u64()?;
            let caller = match role {
                1 => Caller::Member(id),
                2 => Caller::Client(id),
                other => return Err(format!("unknown caller role {other}")),
            };
            let token = reader.bytes(TOKEN_BYTES_MAX)?.to_vec();
            Frame::Hello {
                cluster,
                caller,
                token,
            }
        }
        KIND_WELCOME => Frame::Welcome {
            node: reader.u64()?,
        },
        KIND_REFUSED => Frame::Refused(text(reader)?),
        KIND_RAFT => Frame::Raft(decode_message(reader)?),
        KIND_REQUEST => Frame::Request {
            id: reader.u64()?,
            op: decode_op(reader)?,
        },
        KIND_REPLY => Frame::Reply {
            id: reader.u64()?,
            reply: decode_reply(reader)?,
        },
        KIND_EVENTS => {
            let watch = reader.u64()?;
            let count = reader.u32()? as usize;
            if count > EVENTS_PER_FRAME_MAX {
                return Err(format!(
                    "{count} events exceed {EVENTS_PER_FRAME_MAX} per frame"
                ));
            }
            let events = (0..count)
                .map(|_| Event::decode(reader))
                .collect::<Result<Vec<_>, _>>()?;
            Frame::Events { watch, events }
        }
        KIND_WATCH_ENDED => Frame::WatchEnded {
            watch: reader.u64()?,
            reason: text(reader)?,
            resume: reader.u8()? != 0,
        },
        other => return Err(format!("unknown frame kind {other}")),
    })
}

fn text(reader: &mut Reader) -> Result<String, String> {
    Ok(String::from_utf8_lossy(reader.bytes(4096)?).into_owned())
}

fn encode_message(message: &Message, out: &mut Vec<u8>) {
    out.put_u64(message.from);
    out.put_u64(message.to);
    out.put_u64(message.term);
    match &message.body {
        MessageBody::PreVote {
            last_index,
            last_term,
        } => {
            out.put_u8(1);
            out.put_u64(*last_index);
            out.put_u64(*last_term);
        }
        MessageBody::PreVoteResponse { granted } => {
            out.put_u8(2);
            out.put_u8(*granted as u8);
        }
        MessageBody::Vote {
            last_index,
            last_term,
            transfer,
        } => {
            out.put_u8(3);
            out.put_u64(*last_index);
            out.put_u64(*last_term);
            out.put_u8(*transfer as u8);
        }
        MessageBody::VoteResponse { granted } => {
            out.put_u8(4);
            out.put_u8(*granted as u8);
        }
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
        } => {
            out.put_u8(5);
            out.put_u64(*prev_index);
            out.put_u64(*prev_term);
            out.put_u64(*commit);
            out.put_u32(entries.len() as u32);
            for entry in entries {
                out.put_u64(entry.term);
                out.put_u64(entry.index);
                out.put_u8(match entry.kind {
                    EntryKind::Normal => 0,
                    EntryKind::NoOp => 1,
                    EntryKind::ConfChange => 2,
                });
                out.put_bytes(entry.data.as_slice());
            }
        }
        MessageBody::AppendResponse {
            index,
            reject,
            hint_index,
            hint_term,
            counted,
        } => {
            out.put_u8(6);
            out.put_u64(*index);
            out.put_u8(*reject as u8);
            out.put_u64(*hint_index);
            out.put_u64(*hint_term);
            out.put_u8(*counted as u8);
        }
        MessageBody::Heartbeat { commit, read_round } => {
            out.put_u8(7);
            out.put_u64(*commit);
            out.put_u64(*read_round);
        }
        MessageBody::HeartbeatResponse {
            read_round,
            counted,
        } => {
            out.put_u8(8);
            out.put_u64(*read_round);
            out.put_u8(*counted as u8);
        }
        MessageBody::InstallSnapshot {
            meta,
            total_bytes,
            offset,
            chunk,
        } => {
            out.put_u8(9);
            out.put_u64(meta.index);
            out.put_u64(meta.term);
            for ids in [
                &meta.conf.voters,
                &meta.conf.learners,
                &meta.conf.voters_outgoing,
            ] {
                out.put_u32(ids.len() as u32);
                ids.iter().for_each(|id| out.put_u64(*id));
            }
            out.put_u64(*total_bytes);
            out.put_u64(*offset);
            out.put_bytes(chunk.as_slice());
        }
        MessageBody::SnapshotProgress {
            index,
            received_bytes,
        } => {
            out.put_u8(10);
            out.put_u64(*index);
            out.put_u64(*received_bytes);
        }
        MessageBody::TimeoutNow => out.put_u8(11),
        MessageBody::ReadIndex { request } => {
            out.put_u8(12);
            out.put_u64(*request);
        }
        MessageBody::ReadIndexResponse { request, index } => {
            out.put_u8(13);
            out.put_u64(*request);
            out.put_u64(*index);
        }
    }
}

fn decode_message(reader: &mut Reader) -> Result<Message, String> {
    let from = reader.u64()?;
    let to = reader.u64()?;
    let term = reader.u64()?;
    let flag = |reader: &mut Reader| -> Result<bool, String> { Ok(reader.u8()? != 0) };
    let body = match reader.u8()? {
        1 => MessageBody::PreVote {
            last_index: reader.u64()?,
            last_term: reader.u64()?,
        },
        2 => MessageBody::PreVoteResponse {
            granted: flag(reader)?,
        },
        3 => MessageBody::Vote {
            last_index: reader.u64()?,
            last_term: reader.u64()?,
            transfer: flag(reader)?,
        },
        4 => MessageBody::VoteResponse {
            granted: flag(reader)?,
        },
        5 => {
            let prev_index = reader.u64()?;
            let prev_term = reader.u64()?;
            let commit = reader.u64()?;
            let count = reader.u32()? as usize;
            // Bounded by the frame: every entry takes at least 21 bytes.
            if count > reader.bytes.len() / 21 {
                return Err(format!("{count} entries cannot fit in the frame"));
            }
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let term = reader.u64()?;
                let index = reader.u64()?;
                let kind = match reader.u8()? {
                    0 => EntryKind::Normal,
                    1 => EntryKind::NoOp,
                    2 => EntryKind::ConfChange,
                    other => return Err(format!("unknown entry kind {other}")),
                };
                let data = Payload::from_slice(reader.bytes(ENTRY_BYTES_MAX)?);
                entries.push(Entry {
                    term,
                    index,
                    kind,
                    data,
                });
            }
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            }
        }
        6 => MessageBody::AppendResponse {
            index: reader.u64()?,
            reject: flag(reader)?,
            hint_index: reader.u64()?,
            hint_term: reader.u64()?,
            counted: flag(reader)?,
        },
        7 => MessageBody::Heartbeat {
            commit: reader.u64()?,
            read_round: reader.u64()?,
        },
        8 => MessageBody::HeartbeatResponse {
            read_round: reader.u64()?,
            counted: flag(reader)?,
        },
        9 => {
            let index = reader.u64()?;
            let term = reader.u64()?;
            let voters = reader.ids(VOTERS_MAX)?;
            let learners = reader.ids(LEARNERS_MAX)?;
            let voters_outgoing = reader.ids(VOTERS_MAX)?;
            MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    index,
                    term,
                    conf: ConfState {
                        voters,
                        learners,
                        voters_outgoing,
                    },
                },
                total_bytes: reader.u64()?,
                offset: reader.u64()?,
                chunk: Payload::from_slice(reader.bytes(SNAPSHOT_BYTES_MAX)?),
            }
        }
        10 => MessageBody::SnapshotProgress {
            index: reader.u64()?,
            received_bytes: reader.u64()?,
        },
        11 => MessageBody::TimeoutNow,
        12 => MessageBody::ReadIndex {
            request: reader.u64()?,
        },
        13 => MessageBody::ReadIndexResponse {
            request: reader.u64()?,
            index: reader.u64()?,
        },
        other => return Err(format!("unknown Raft message kind {other}")),
    };
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}

fn encode_op(op: &ClientOp, out: &mut Vec<u8>) {
    match op {
        ClientOp::Write(request) => {
            out.put_u8(1);
            out.put_bytes(&request.encode());
        }
        ClientOp::Get { key, serializable } => {
            out.put_u8(2);
            out.put_bytes(key);
            out.put_u8(*serializable as u8);
        }
        ClientOp::Range {
            prefix,
            limit,
            serializable,
        } => {
            out.put_u8(3);
            out.put_bytes(prefix);
            out.put_u32(*limit);
            out.put_u8(*serializable as u8);
        }
        ClientOp::Status => out.put_u8(4),
        ClientOp::KeepAlive { sessions } => {
            out.put_u8(5);
            out.put_u32(sessions.len() as u32);
            sessions.iter().for_each(|s| out.put_u64(*s));
        }
        ClientOp::Query {
            query,
            serializable,
        } => {
            out.put_u8(6);
            out.put_u8(*serializable as u8);
            encode_query(query, out);
        }
        ClientOp::Watch {
            watch,
            space,
            prefix,
            from,
        } => {
            out.put_u8(7);
            out.put_u64(*watch);
            out.put_u8(*space as u8);
            out.put_bytes(prefix);
            out.put_u64(*from);
        }
        ClientOp::Unwatch { watch } => {
            out.put_u8(8);
            out.put_u64(*watch);
        }
        ClientOp::Membership(op) => {
            out.put_u8(9);
            match op {
                MembershipOp::List => out.put_u8(1),
                MembershipOp::AddLearner { id, address } => {
                    out.put_u8(2);
                    out.put_u64(*id);
                    out.put_bytes(address.as_bytes());
                }
                MembershipOp::Promote { id } => {
                    out.put_u8(3);
                    out.put_u64(*id);
                }
                MembershipOp::Remove { id } => {
                    out.put_u8(4);
                    out.put_u64(*id);
                }
                MembershipOp::TransferLeader { to } => {
                    out.put_u8(5);
                    out.put_u64(*to);
                }
            }
        }
        ClientOp::Snapshot(op) => {
            out.put_u8(10);
            match op {
                SnapshotOp::Prepare { after } => {
                    out.put_u8(1);
                    out.put_u64(*after);
                }
                SnapshotOp::Read {
                    index,
                    term,
                    offset,
                } => {
                    out.put_u8(2);
                    out.put_u64(*index);
                    out.put_u64(*term);
                    out.put_u64(*offset);
                }
            }
        }
    }
}

/// Longest member address accepted ("host:port").
const ADDRESS_BYTES_MAX: usize = 256;

fn decode_address(reader: &mut Reader) -> Result<String, String> {
    String::from_utf8(reader.bytes(ADDRESS_BYTES_MAX)?.to_vec())
        .map_err(|_| "a member address is not UTF-8".to_string())
}

fn encode_query(query: &Query, out: &mut Vec<u8>) {
    match query {
        Query::Holders { space, name } => {
            out.put_u8(1);
            out.put_u8(*space as u8);
            out.put_bytes(name);
        }
        Query::Members { group } => {
            out.put_u8(2);
            out.put_bytes(group);
        }
        Query::Queue { queue } => {
            out.put_u8(3);
            out.put_bytes(queue);
        }
        Query::Barrier { name } => {
            out.put_u8(4);
            out.put_bytes(name);
        }
        Query::Counter { name } => {
            out.put_u8(5);
            out.put_bytes(name);
        }
        Query::Session { session } => {
            out.put_u8(6);
            out.put_u64(*session);
        }
    }
}

fn decode_query(reader: &mut Reader) -> Result<Query, String> {
    let name = |reader: &mut Reader| -> Result<Vec<u8>, String> {
        Ok(reader.bytes(KEY_BYTES_MAX)?.to_vec())
    };
    Ok(match reader.u8()? {
        1 => Query::Holders {
            space: Space::from_code(reader.u8()?)?,
            name: name(reader)?,
        },
        2 => Query::Members {
            group: name(reader)?,
        },
        3 => Query::Queue {
            queue: name(reader)?,
        },
        4 => Query::Barrier {
            name: name(reader)?,
        },
        5 => Query::Counter {
            name: name(reader)?,
        },
        6 => Query::Session {
            session: reader.u64()?,
        },
        other => return Err(format!("unknown query {other}")),
    })
}

fn encode_answer(answer: &Answer, out: &mut Vec<u8>) {
    match answer {
        Answer::Holders { holders, waiters } => {
            out.put_u8(1);
            out.put_u32(holders.len() as u32);
            for holder in holders {
                out.put_u64(holder.session);
                out.put_u64(holder.token);
                out.put_u8(holder.mode as u8);
                out.put_bytes(&holder.value);
            }
            out.put_u32(waiters.len() as u32);
            waiters.iter().for_each(|s| out.put_u64(*s));
        }
        Answer::Members { members, more } => {
            out.put_u8(2);
            out.put_u32(members.len() as u32);
            for member in members {
                out.put_bytes(&member.id);
                out.put_u64(member.session);
                out.put_bytes(&member.metadata);
                out.put_u64(member.revision);
            }
            out.put_u8(*more as u8);
        }
        Answer::Queue {
            items,
            ready,
            waiters,
        } => {
            out.put_u8(3);
            out.put_u64(*items);
            out.put_u64(*ready);
            out.put_u64(*waiters);
        }
        Answer::Barrier {
            arrived,
            participants,
        } => {
            out.put_u8(4);
            out.put_u32(*arrived);
            out.put_u32(*participants);
        }
        Answer::Counter(value) => {
            out.put_u8(5);
            out.put_u64(*value as u64);
        }
        Answer::Session(ttl) => {
            out.put_u8(6);
            out.put_u64(*ttl);
        }
    }
}

fn decode_answer(reader: &mut Reader) -> Result<Answer, String> {
    Ok(match reader.u8()? {
        1 => {
            let count = reader.u32()? as usize;
            if count > SEMAPHORE_PERMITS_MAX as usize {
                return Err(format!("{count} holders exceed the limit"));
            }
            let mut holders = Vec::with_capacity(count);
            for _ in 0..count {
                holders.push(Holder {
                    session: reader.u64()?,
                    token: reader.u64()?,
                    mode: if reader.u8()? == 0 {
                        Mode::Exclusive
                    } else {
                        Mode::Shared
                    },
                    value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
                });
            }
            Answer::Holders {
                holders,
                waiters: reader.ids(LOCK_WAITERS_MAX)?,
            }
        }
        2 => {
            let count = reader.u32()? as usize;
            if count > GROUP_MEMBERS_MAX {
                return Err(format!("{count} members exceed the limit"));
            }
            let mut members = Vec::with_capacity(count);
            for _ in 0..count {
                members.push(Member {
                    id: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
                    session: reader.u64()?,
                    metadata: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
                    revision: reader.u64()?,
                });
            }
            Answer::Members {
                members,
                more: reader.u8()? != 0,
            }
        }
        3 => Answer::Queue {
            items: reader.u64()?,
            ready: reader.u64()?,
            waiters: reader.u64()?,
        },
        4 => Answer::Barrier {
            arrived: reader.u32()?,
            participants: reader.u32()?,
        },
        5 => Answer::Counter(reader.u64()? as i64),
        6 => Answer::Session(reader.u64()?),
        other => return Err(format!("unknown answer {other}")),
    })
}

fn decode_op(reader: &mut Reader) -> Result<ClientOp, String> {
    Ok(match reader.u8()? {
        1 => ClientOp::Write(Request::decode(reader.bytes(ENTRY_BYTES_MAX)?)?),
        2 => ClientOp::Get {
            key: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
            serializable: reader.u8()? != 0,
        },
        3 => ClientOp::Range {
            prefix: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
            limit: reader.u32()?,
            serializable: reader.u8()? != 0,
        },
        4 => ClientOp::Status,
        5 => ClientOp::KeepAlive {
            sessions: reader.ids(EXPIRE_BATCH_MAX)?,
        },
        6 => {
            let serializable = reader.u8()? != 0;
            ClientOp::Query {
                query: decode_query(reader)?,
                serializable,
            }
        }
        7 => ClientOp::Watch {
            watch: reader.u64()?,
            space: Space::from_code(reader.u8()?)?,
            prefix: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
            from: reader.u64()?,
        },
        8 => ClientOp::Unwatch {
            watch: reader.u64()?,
        },
        9 => ClientOp::Membership(match reader.u8()? {
            1 => MembershipOp::List,
            2 => MembershipOp::AddLearner {
                id: reader.u64()?,
                address: decode_address(reader)?,
            },
            3 => MembershipOp::Promote { id: reader.u64()? },
            4 => MembershipOp::Remove { id: reader.u64()? },
            5 => MembershipOp::TransferLeader { to: reader.u64()? },
            other => return Err(format!("unknown membership operation {other}")),
        }),
        10 => ClientOp::Snapshot(match reader.u8()? {
            1 => SnapshotOp::Prepare {
                after: reader.u64()?,
            },
            2 => SnapshotOp::Read {
                index: reader.u64()?,
                term: reader.u64()?,
                offset: reader.u64()?,
            },
            other => return Err(format!("unknown snapshot operation {other}")),
        }),
        other => return Err(format!("unknown client operation {other}")),
    })
}

fn encode_key_value(kv: &KeyValue, out: &mut Vec<u8>) {
    out.put_bytes(&kv.key);
    out.put_bytes(&kv.value);
    out.put_u64(kv.create_revision);
    out.put_u64(kv.mod_revision);
    out.put_u64(kv.version);
}

fn decode_key_value(reader: &mut Reader) -> Result<KeyValue, String> {
    Ok(KeyValue {
        key: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
        value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
        create_revision: reader.u64()?,
        mod_revision: reader.u64()?,
        version: reader.u64()?,
    })
}

fn encode_reply(reply: &ClientReply, out: &mut Vec<u8>) {
    match reply {
        ClientReply::Written(outcome) => {
            out.put_u8(1);
            outcome.encode(out);
        }
        ClientReply::Values {
            revision,
            found,
            more,
        } => {
            out.put_u8(2);
            out.put_u64(*revision);
            out.put_u32(found.len() as u32);
            found.iter().for_each(|kv| encode_key_value(kv, out));
            out.put_u8(*more as u8);
        }
        ClientReply::NotLeader { leader, address } => {
            out.put_u8(3);
            out.put_u64(*leader);
            out.put_bytes(address.as_bytes());
        }
        ClientReply::Failed(why) => {
            out.put_u8(4);
            out.put_bytes(why.as_bytes());
        }
        ClientReply::Unavailable(why) => {
            out.put_u8(6);
            out.put_bytes(why.as_bytes());
        }
        ClientReply::Denied(why) => {
            out.put_u8(14);
            out.put_bytes(why.as_bytes());
        }
        ClientReply::Status(status) => {
            out.put_u8(5);
            out.put_u64(status.id);
            out.put_bytes(status.role.as_bytes());
            for value in [
                status.term,
                status.leader,
                status.commit,
                status.applied,
                status.last_index,
                status.revision,
            ] {
                out.put_u64(value);
            }
            out.put_u32(status.members.len() as u32);
            for member in &status.members {
                out.put_u64(member.id);
                out.put_u8(member.voter as u8);
                out.put_u64(member.matched);
                out.put_u64(member.lag_entries);
                out.put_u64(member.lag_bytes);
                out.put_u64(member.contact_ms);
                out.put_u8(member.suspect as u8);
            }
            let load = &status.load;
            for value in [
                load.connections,
                load.paused,
                load.send_bytes,
                load.send_bytes_max,
                load.pending_requests,
            ] {
                out.put_u64(value);
            }
        }
        ClientReply::KeptAlive(ttls) => {
            out.put_u8(7);
            out.put_u32(ttls.len() as u32);
            for (session, ttl) in ttls {
                out.put_u64(*session);
                out.put_u64(*ttl);
            }
        }
        ClientReply::Answer { revision, answer } => {
            out.put_u8(8);
            out.put_u64(*revision);
            encode_answer(answer, out);
        }
        ClientReply::Claimed { outcome, payload } => {
            out.put_u8(9);
            outcome.encode(out);
            out.put_bytes(payload);
        }
        ClientReply::Watching { revision } => {
            out.put_u8(10);
            out.put_u64(*revision);
        }
        ClientReply::Compacted { revision } => {
            out.put_u8(11);
            out.put_u64(*revision);
        }
        ClientReply::SnapshotChunk {
            index,
            term,
            total,
            offset,
            data,
        } => {
            out.put_u8(13);
            out.put_u64(*index);
            out.put_u64(*term);
            out.put_u64(*total);
            out.put_u64(*offset);
            out.put_bytes(data);
        }
        ClientReply::Membership(view) => {
            out.put_u8(12);
            out.put_u64(view.id);
            out.put_u64(view.leader);
            out.put_bytes(&view.conf.encode());
            out.put_u8(view.pending as u8);
            out.put_u32(view.addresses.len() as u32);
            for (id, address) in &view.addresses {
                out.put_u64(*id);
                out.put_bytes(address.as_bytes());
            }
        }
    }
}

fn decode_reply(reader: &mut Reader) -> Result<ClientReply, String> {
    Ok(match reader.u8()? {
        1 => ClientReply::Written(Outcome::decode(reader)?),
        2 => {
            let revision = reader.u64()?;
            let count = reader.u32()? as usize;
            if count > RANGE_RESULTS_MAX {
                return Err(format!(
                    "{count} keys exceed the limit of {RANGE_RESULTS_MAX}"
                ));
            }
            let found = (0..count)
                .map(|_| decode_key_value(reader))
                .collect::<Result<Vec<_>, _>>()?;
            ClientReply::Values {
                revision,
                found,
                more: reader.u8()? != 0,
            }
        }
        3 => ClientReply::NotLeader {
            leader: reader.u64()?,
            address: text(reader)?,
        },
        4 => ClientReply::Failed(text(reader)?),
        6 => ClientReply::Unavailable(text(reader)?),
        14 => ClientReply::Denied(text(reader)?),
        5 => {
            let id = reader.u64()?;
            let role = text(reader)?;
            let mut values = [0u64; 6];
            for value in &mut values {
                *value = reader.u64()?;
            }
            let count = reader.u32()? as usize;
            if count > VOTERS_MAX + LEARNERS_MAX {
                return Err(format!("{count} members exceed the limit"));
            }
            let members = (0..count)
                .map(|_| {
                    Ok(MemberHealth {
                        id: reader.u64()?,
                        voter: reader.u8()? != 0,
                        matched: reader.u64()?,
                        lag_entries: reader.u64()?,
                        lag_bytes: reader.u64()?,
                        contact_ms: reader.u64()?,
                        suspect: reader.u8()? != 0,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            // A member of the previous version sends no load.
            let load = if reader.is_empty() {
                ClientLoad::default()
            } else {
                ClientLoad {
                    connections: reader.u64()?,
                    paused: reader.u64()?,
                    send_bytes: reader.u64()?,
                    send_bytes_max: reader.u64()?,
                    pending_requests: reader.u64()?,
                }
            };
            ClientReply::Status(Status {
                id,
                role,
                term: values[0],
                leader: values[1],
                commit: values[2],
                applied: values[3],
                last_index: values[4],
                revision: values[5],
                members,
                load,
            })
        }
        7 => {
            let count = reader.u32()? as usize;
            if count > EXPIRE_BATCH_MAX {
                return Err(format!("{count} sessions exceed the limit"));
            }
            let ttls = (0..count)
                .map(|_| Ok((reader.u64()?, reader.u64()?)))
                .collect::<Result<Vec<_>, String>>()?;
            ClientReply::KeptAlive(ttls)
        }
        8 => ClientReply::Answer {
            revision: reader.u64()?,
            answer: decode_answer(reader)?,
        },
        9 => ClientReply::Claimed {
            outcome: Outcome::decode(reader)?,
            payload: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
        },
        10 => ClientReply::Watching {
            revision: reader.u64()?,
        },
        11 => ClientReply::Compacted {
            revision: reader.u64()?,
        },
        12 => {
            let id = reader.u64()?;
            let leader = reader.u64()?;
            let conf =
                ConfState::decode(reader.bytes(crate::limits::MEMBERSHIP_CONTEXT_BYTES_MAX)?)?;
            let pending = reader.u8()? != 0;
            let count = reader.u32()? as usize;
            let members_max = crate::limits::VOTERS_MAX * 2 + crate::limits::LEARNERS_MAX;
            if count > members_max {
                return Err(format!("{count} member addresses exceed {members_max}"));
            }
            let mut addresses = Vec::with_capacity(count);
            for _ in 0..count {
                addresses.push((reader.u64()?, decode_address(reader)?));
            }
            ClientReply::Membership(MembershipView {
                id,
                leader,
                conf,
                pending,
                addresses,
            })
        }
        13 => ClientReply::SnapshotChunk {
            index: reader.u64()?,
            term: reader.u64()?,
            total: reader.u64()?,
            offset: reader.u64()?,
            data: reader.bytes(crate::limits::SNAPSHOT_CHUNK_BYTES)?.to_vec(),
        },
        other => return Err(format!("unknown reply kind {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::Command;

    fn frames() -> Vec<Frame> {
        vec![
            Frame::Hello {
                cluster: 42,
                caller: Caller::Member(3),
                token: Vec::new(),
            },
            Frame::Hello {
                cluster: 42,
                caller: Caller::Client(7),
                token: b"a-token-of-some-length".to_vec(),
            },
            Frame::Raft(Message {
                from: 1,
                to: 2,
                term: 5,
                body: MessageBody::Append {
                    prev_index: 9,
                    prev_term: 4,
                    entries: vec![Entry {
                        term: 5,
                        index: 10,
                        kind: EntryKind::Normal,
                        data: Payload::from_slice(b"cmd"),
                    }],
                    commit: 8,
                },
            }),
            Frame::Request {
                id: 7,
                op: ClientOp::Write(Request {
                    client: 1,
                    sequence: 2,
                    command: Command::Put {
                        key: b"k".to_vec(),
                        value: b"v".to_vec(),
                    },
                }),
            },
            Frame::Reply {
                id: 7,
                reply: ClientReply::NotLeader {
                    leader: 2,
                    address: "127.0.0.1:7102".into(),
                },
            },
        ]
    }

    #[test]
    fn frames_round_trip_back_to_back_and_partial_frames_wait() {
        let mut bytes = Vec::new();
        for frame in frames() {
            encode(&frame, &mut bytes);
        }
        let mut offset = 0;
        for frame in frames() {
            assert_eq!(decode(&bytes[offset..offset + 3]), Decoded::NeedMore);
            match decode(&bytes[offset..]) {
                Decoded::Frame(decoded, used) => {
                    assert_eq!(decoded, frame);
                    offset += used;
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn oversized_frames_and_other_versions_are_refused() {
        let mut huge = (u32::MAX).to_le_bytes().to_vec();
        huge.extend_from_slice(&[PROTOCOL_VERSION, KIND_HELLO]);
        assert!(matches!(decode(&huge), Decoded::Invalid(_)));
        let mut other = Vec::new();
        encode(&frames()[0], &mut other);
        other[4] = PROTOCOL_VERSION + 1;
        assert!(matches!(decode(&other), Decoded::Invalid(why) if why.contains("version")));
        let mut garbage = vec![10, 0, 0, 0, PROTOCOL_VERSION, 99];
        garbage.extend_from_slice(&[0; 8]);
        assert!(matches!(decode(&garbage), Decoded::Invalid(_)));
    }
}
