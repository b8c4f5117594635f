//! The error type of the consensus core and everything above it.

use std::fmt;

use crate::types::{Index, NodeId, Term};

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
    /// Raised when a term-dependent request arrives for a stale term.
    StaleTerm {
        /// The term in the request.
        got: Term,
        /// The node's current term.
        current: Term,
    },
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
            Error::StaleTerm { got, current } => {
                write!(f, "stale term {got}; current term is {current}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for results whose error is [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
