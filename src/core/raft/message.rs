//! Messages exchanged between Raft members.

use crate::types::{Entry, Index, NodeId, Payload, SnapshotMeta, Term};

/// One message from one member to another. Every message carries the sender's term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// The sender's term (for a pre-vote: the term it would campaign in).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of Raft message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// Would you vote for me in `term` (which I have not entered)? Changes no state.
    PreVote {
        /// Index of the candidate's last entry.
        last_index: Index,
        /// Term of the candidate's last entry.
        last_term: Term,
    },
    /// Answer to a pre-vote.
    PreVoteResponse {
        /// Whether the vote would be granted.
        granted: bool,
    },
    /// Vote for me in `term`.
    Vote {
        /// Index of the candidate's last entry.
        last_index: Index,
        /// Term of the candidate's last entry.
        last_term: Term,
        /// Sent on a leader's request (TimeoutNow): voters ignore their leader lease.
        transfer: bool,
    },
    /// Answer to a vote request.
    VoteResponse {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// Replicate `entries` after (`prev_index`, `prev_term`); learn the leader's commit index.
    Append {
        /// Index of the entry just before `entries`.
        prev_index: Index,
        /// Term of that entry.
        prev_term: Term,
        /// Consecutive entries starting at `prev_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: Index,
    },
    /// Answer to an append.
    AppendResponse {
        /// Accepted: the follower's log matches the leader's through `index`.
        /// Rejected: `index` is the `prev_index` that did not match.
        index: Index,
        /// Whether the append was rejected.
        reject: bool,
        /// On rejection: the follower's hint, an index at or below which the logs may match.
        hint_index: Index,
        /// On rejection: the term of the follower's entry at `hint_index`.
        hint_term: Term,
        /// Whether this acknowledgement may count toward a quorum: `false` from a member
        /// rebuilt from an empty data directory, which may have forgotten a newer term and so
        /// could acknowledge a deposed leader.
        counted: bool,
    },
    /// The leader is alive; also confirms leadership for ReadIndex round `read_round`.
    Heartbeat {
        /// The commit index, capped at what the follower is known to hold.
        commit: Index,
        /// The leader's latest ReadIndex round.
        read_round: u64,
    },
    /// Answer to a heartbeat.
    HeartbeatResponse {
        /// The round of the heartbeat answered.
        read_round: u64,
        /// Whether this acknowledgement may count toward a quorum (see `AppendResponse`).
        counted: bool,
    },
    /// One chunk of a snapshot, for a follower that needs entries the leader compacted away.
    InstallSnapshot {
        /// What the whole snapshot covers.
        meta: SnapshotMeta,
        /// Total size of the snapshot's data, in bytes.
        total_bytes: u64,
        /// Where this chunk starts in the data.
        offset: u64,
        /// The chunk.
        chunk: Payload,
    },
    /// The follower holds the first `received_bytes` of the snapshot at `index` and wants the
    /// rest from there (also the answer to a chunk that did not fit, so a transfer resumes after
    /// a lost chunk or a change of leader).
    SnapshotProgress {
        /// Index of the snapshot being received.
        index: Index,
        /// Bytes received in order so far.
        received_bytes: u64,
    },
    /// Start an election now, ignoring timeouts (leader transfer).
    TimeoutNow,
    /// A follower asks the leader for a read index on behalf of its client.
    ReadIndex {
        /// The follower's request identifier, echoed back.
        request: u64,
    },
    /// The leader's answer to [`MessageBody::ReadIndex`].
    ReadIndexResponse {
        /// The follower's request identifier.
        request: u64,
        /// Reads may be served once the follower has applied this index.
        index: Index,
    },
}

impl MessageBody {
    /// The kind's name, for logs and statistics.
    pub fn kind_name(&self) -> &'static str {
        match self {
            MessageBody::PreVote { .. } => "PreVote",
            MessageBody::PreVoteResponse { .. } => "PreVoteResponse",
            MessageBody::Vote { .. } => "Vote",
            MessageBody::VoteResponse { .. } => "VoteResponse",
            MessageBody::Append { .. } => "Append",
            MessageBody::AppendResponse { reject: true, .. } => "AppendRejection",
            MessageBody::AppendResponse { .. } => "AppendResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::SnapshotProgress { .. } => "SnapshotProgress",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::ReadIndex { .. } => "ReadIndex",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResponse",
        }
    }

    /// Whether this message answers another; answers carry durable decisions (votes,
    /// acknowledged entries) and may be sent only after the state they depend on is persisted.
    pub fn is_response(&self) -> bool {
        matches!(
            self,
            MessageBody::PreVoteResponse { .. }
                | MessageBody::VoteResponse { .. }
                | MessageBody::AppendResponse { .. }
                | MessageBody::HeartbeatResponse { .. }
        )
    }
}
