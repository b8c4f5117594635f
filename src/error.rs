//! The error type of the consensus core and everything above it.

use std::fmt;

use crate::types::{Index, NodeId};

/// Why an operation on accord failed. Each variant says what a caller can do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// This node is not the leader; retry on `leader` if it is known.
    NotLeader {
        /// The leader this node believes in, if any.
        leader: Option<NodeId>,
    },
    /// A leadership transfer is in progress; retry shortly.
    TransferInProgress,
    /// A message or request named a node that is not a member of this cluster.
    UnknownNode(NodeId),
    /// A message was malformed or contradicts what this node knows; it was ignored.
    InvalidMessage(&'static str),
    /// A payload is larger than [`crate::limits::ENTRY_BYTES_MAX`].
    EntryTooLarge {
        /// The offending size in bytes.
        bytes: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A bounded queue is full; back off and retry.
    Busy(&'static str),
    /// A configuration value is out of range.
    InvalidConfig(String),
    /// Storage could not serve an index that was compacted away.
    Compacted {
        /// The first index still available.
        first_index: Index,
    },
    /// Storage does not (yet) hold the requested index.
    Unavailable(Index),
    /// Stored state contradicts itself (for example a term going backwards).
    Corrupt(String),
    /// A file on disk failed its checksum or structure check: the node must not start on it.
    /// Repair: move the data directory aside and let the node re-replicate from the quorum.
    Corruption {
        /// The damaged file.
        file: String,
        /// Byte offset of the damage in the file.
        offset: u64,
        /// What is wrong there.
        detail: String,
    },
    /// An operating-system call on the data directory failed.
    Io {
        /// What was being done, naming the path.
        operation: String,
        /// The system's error message.
        reason: String,
    },
    /// Another process holds the data directory.
    DataDirLocked {
        /// The directory.
        dir: String,
        /// The holder's process id, as it recorded it.
        holder: String,
    },
    /// Storage failed earlier (a write or fsync error); the node stops acknowledging anything.
    StorageFailed(String),
    /// The call was cancelled from another thread (through its cancel handle).
    Cancelled,
    /// The cluster refused the request as invalid; the text says why (retrying will not help).
    Rejected(String),
    /// An argument is out of range (a key too long, a value too large…); the text says which.
    InvalidArgument(String),
    /// A blocking call (a lock, a claim, a barrier) was not satisfied in time; nothing is
    /// held because of it.
    Timeout(String),
    /// A member answered something this client does not expect (another version, a bug);
    /// the text says what.
    Protocol(String),
    /// The session the call depends on is lost (expired, closed, or no longer provably
    /// alive): whatever it held must be considered gone.
    SessionLost(String),
    /// The caller did not authenticate, or its identity lacks the right for this request
    /// (see the access file); the text says which right. Nothing was done or read.
    PermissionDenied(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotLeader { leader: Some(id) } => write!(f, "not the leader; node {id} is"),
            Error::NotLeader { leader: None } => write!(f, "not the leader; no leader is known"),
            Error::TransferInProgress => write!(f, "leadership transfer in progress; retry"),
            Error::UnknownNode(id) => write!(f, "node {id} is not a member of this cluster"),
            Error::InvalidMessage(why) => write!(f, "invalid message ignored: {why}"),
            Error::EntryTooLarge { bytes, max } => {
                write!(f, "entry of {bytes} bytes exceeds the limit of {max} bytes")
            }
            Error::Busy(what) => write!(f, "{what} is full; back off and retry"),
            Error::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            Error::Compacted { first_index } => {
                write!(f, "index compacted; first available is {first_index}")
            }
            Error::Unavailable(index) => write!(f, "index {index} is not in storage yet"),
            Error::Corrupt(why) => write!(f, "stored state is corrupt: {why}"),
            Error::Corruption {
                file,
                offset,
                detail,
            } => write!(
                f,
                "corruption in {file} at byte {offset}: {detail}; the node will not start on \
                 damaged data. To repair, stop the node, move its data directory aside and \
                 start it on an empty one with --rejoin: it re-replicates from the other \
                 members (--rejoin keeps it from voting, since it has forgotten its votes)"
            ),
            Error::Io { operation, reason } => write!(f, "{operation} failed: {reason}"),
            Error::DataDirLocked { dir, holder } => write!(
                f,
                "data directory {dir} is locked by another process (pid {holder}); stop it or \
                 use another directory"
            ),
            Error::Cancelled => write!(f, "the call was cancelled"),
            Error::Rejected(why) => write!(f, "the cluster refused the request: {why}"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::Timeout(what) => write!(f, "timed out: {what}"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
            Error::SessionLost(why) => write!(f, "session lost: {why}"),
            Error::PermissionDenied(why) => write!(f, "{why}"),
            Error::StorageFailed(why) => write!(
                f,
                "storage failed earlier ({why}); this node no longer acknowledges writes"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The process exit status for a command that stops on this error: 3 for damaged data
    /// (the node refuses to start on it), 4 for a data directory that is locked or unusable,
    /// 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Corruption { .. } | Error::Corrupt(_) => 3,
            Error::DataDirLocked { .. } | Error::Io { .. } | Error::StorageFailed(_) => 4,
            _ => 1,
        }
    }

    /// An [`Error::Io`] for `operation` (which names the path involved).
    pub fn io(operation: impl Into<String>, error: &std::io::Error) -> Error {
        Error::Io {
            operation: operation.into(),
            reason: error.to_string(),
        }
    }
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
