//! Plain data types shared by every layer: identifiers, log entries, hard state.
//!
//! These types carry no behaviour beyond construction and cheap accessors, so the
//! consensus core, the storage layer and the transport can all speak them.

use std::fmt;
use std::sync::Arc;

/// Identifies one member (voter or learner) of a cluster. `0` is never a valid id.
pub type NodeId = u64;

/// A Raft term. Terms only grow; `0` means "before any election".
pub type Term = u64;

/// A position in the replicated log. The first real entry has index 1.
pub type Index = u64;

/// The "no node" id, used where Raft has no vote or no known leader.
pub const NO_NODE: NodeId = 0;

/// An immutable, cheaply clonable byte string.
///
/// A payload is a window into a reference-counted buffer, so a batch of proposals can share one
/// allocation and cloning an entry (to send it to several followers, or to keep it both in the
/// log and in a message) never copies or allocates.
#[derive(Clone)]
pub struct Payload {
    buffer: Arc<[u8]>,
    start: u32,
    end: u32,
}

impl Payload {
    /// An empty payload. Shares one static-sized empty buffer per call site's Arc.
    pub fn empty() -> Payload {
        Payload::from_slice(&[])
    }

    /// Copies `bytes` into a new buffer (one allocation).
    pub fn from_slice(bytes: &[u8]) -> Payload {
        Payload::from_shared(Arc::from(bytes))
    }

    /// Wraps a whole shared buffer without copying.
    pub fn from_shared(buffer: Arc<[u8]>) -> Payload {
        let end = u32::try_from(buffer.len()).expect("payload buffers are bounded by limits");
        Payload {
            buffer,
            start: 0,
            end,
        }
    }

    /// A window `[start, end)` of this payload, sharing its buffer (no allocation).
    ///
    /// Returns `None` when the range does not lie inside the payload.
    pub fn slice(&self, start: usize, end: usize) -> Option<Payload> {
        if start > end || end > self.len() {
            return None;
        }
        Some(Payload {
            buffer: Arc::clone(&self.buffer),
            start: self.start + start as u32,
            end: self.start + end as u32,
        })
    }

    /// Splits one buffer into consecutive payloads of the given lengths, sharing a single
    /// allocation. Used to propose a batch of commands with one allocation in total.
    pub fn split_lengths<'a>(
        buffer: Arc<[u8]>,
        lengths: impl IntoIterator<Item = &'a usize>,
    ) -> Option<Vec<Payload>> {
        let whole = Payload::from_shared(buffer);
        let mut offset = 0usize;
        let mut parts = Vec::new();
        for &length in lengths {
            parts.push(whole.slice(offset, offset.checked_add(length)?)?);
            offset += length;
        }
        Some(parts)
    }

    /// The bytes of this payload.
    pub fn as_slice(&self) -> &[u8] {
        &self.buffer[self.start as usize..self.end as usize]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// True when the payload holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.len())
    }
}

impl From<&[u8]> for Payload {
    fn from(bytes: &[u8]) -> Payload {
        Payload::from_slice(bytes)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Payload {
        Payload::from_shared(Arc::from(bytes))
    }
}

/// What a log entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A command for the replicated state machine.
    Normal,
    /// The empty entry a new leader appends at the start of its term, so that entries of
    /// earlier terms become committed by counting (Raft §5.4.2, "Figure 8").
    NoOp,
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: Index,
    /// Whether this is a command or a leader's no-op.
    pub kind: EntryKind,
    /// The command bytes (empty for a no-op).
    pub data: Payload,
}

impl Entry {
    /// Bytes this entry counts for in size budgets (payload plus a fixed header estimate).
    pub fn size_bytes(&self) -> usize {
        self.data.len() + crate::limits::ENTRY_HEADER_BYTES
    }
}

/// The state Raft must persist before answering any message that depends on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, or [`NO_NODE`].
    pub vote: NodeId,
    /// The highest index known to be committed.
    pub commit: Index,
}

/// The membership of a cluster: who votes, and who only replicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfState {
    /// Members whose acknowledgements count toward a quorum.
    pub voters: Vec<NodeId>,
    /// Members that receive the log but neither vote nor count toward a quorum.
    pub learners: Vec<NodeId>,
}

/// What a snapshot covers: the log up to `index` (whose entry had `term`), and the membership
/// in force there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot covers.
    pub index: Index,
    /// Term of that entry.
    pub term: Term,
    /// Membership at that index.
    pub conf: ConfState,
}

/// A state-machine snapshot: its metadata and the state machine's own encoding of its state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The state machine's encoding (opaque to consensus).
    pub data: Payload,
}

impl Default for Payload {
    fn default() -> Payload {
        Payload::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_slices_share_one_buffer_and_reject_bad_ranges() {
        let parts = Payload::split_lengths(Arc::from(&b"abcdef"[..]), &[2, 0, 4]).unwrap();
        assert_eq!(parts[0].as_slice(), b"ab");
        assert!(parts[1].is_empty());
        assert_eq!(parts[2].as_slice(), b"cdef");
        assert!(Payload::split_lengths(Arc::from(&b"abc"[..]), &[2, 2]).is_none());
        assert!(parts[2].slice(3, 2).is_none());
        assert_eq!(parts[2].slice(1, 3).unwrap().as_slice(), b"de");
    }
}
