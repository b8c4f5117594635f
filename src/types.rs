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
    /// A new membership ([`ConfState::encode`] in `data`). It takes effect on every member as
    /// soon as it is appended to its log, committed or not (Raft thesis §4.1).
    ConfChange,
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
///
/// While the voters change, the membership is *joint* (Raft thesis §4.3): `voters_outgoing`
/// holds the old voters and `voters` the new ones, and every decision (an election, a
/// commit, a confirmed read) needs a majority of each. Outside a change `voters_outgoing` is
/// empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfState {
    /// Members whose acknowledgements count toward a quorum (the incoming voters while joint).
    pub voters: Vec<NodeId>,
    /// Members that receive the log but neither vote nor count toward a quorum.
    pub learners: Vec<NodeId>,
    /// The outgoing voters while the membership is joint; empty otherwise.
    pub voters_outgoing: Vec<NodeId>,
}

/// Version of [`ConfState::encode`]'s format.
const CONF_STATE_FORMAT: u8 = 1;

impl ConfState {
    /// A membership of `voters` alone.
    pub fn with_voters(voters: &[NodeId]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            ..ConfState::default()
        }
    }

    /// Whether the voters are changing (two majorities needed).
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Whether `id` votes (in either half of a joint membership).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// Whether `id` is a member at all (voter or learner).
    pub fn is_member(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Every member, once each, in id order.
    pub fn members(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self
            .voters
            .iter()
            .chain(&self.voters_outgoing)
            .chain(&self.learners)
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Checks the membership is possible: 1 to `VOTERS_MAX` voters on each side, at most
    /// `LEARNERS_MAX` learners, no id 0, no id twice, and no learner that also votes.
    pub fn validate(&self) -> std::result::Result<(), String> {
        use crate::limits::{LEARNERS_MAX, VOTERS_MAX};
        if self.voters.is_empty() || self.voters.len() > VOTERS_MAX {
            return Err(format!(
                "a membership needs 1..={VOTERS_MAX} voters, not {}",
                self.voters.len()
            ));
        }
        if self.voters_outgoing.len() > VOTERS_MAX {
            return Err(format!(
                "{} outgoing voters exceed {VOTERS_MAX}",
                self.voters_outgoing.len()
            ));
        }
        if self.learners.len() > LEARNERS_MAX {
            return Err(format!(
                "{} learners exceed {LEARNERS_MAX}",
                self.learners.len()
            ));
        }
        for list in [&self.voters, &self.voters_outgoing, &self.learners] {
            let mut sorted = list.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return Err("a member is listed twice".into());
            }
            if sorted.first() == Some(&NO_NODE) {
                return Err("node id 0 is reserved".into());
            }
        }
        if self.learners.iter().any(|&id| self.is_voter(id)) {
            return Err("a learner is also a voter".into());
        }
        Ok(())
    }

    /// The bytes of a [`EntryKind::ConfChange`] entry: a format version, then the voters,
    /// the learners and the outgoing voters, each a count and the ids.
    pub fn encode(&self) -> Vec<u8> {
        use crate::codec::Put;
        let mut out = Vec::with_capacity(16 + 8 * self.members().len());
        out.put_u8(CONF_STATE_FORMAT);
        for ids in [&self.voters, &self.learners, &self.voters_outgoing] {
            out.put_u32(ids.len() as u32);
            ids.iter().for_each(|&id| out.put_u64(id));
        }
        out
    }

    /// Decodes [`ConfState::encode`]'s bytes and validates the membership.
    pub fn decode(bytes: &[u8]) -> std::result::Result<ConfState, String> {
        let (conf, context) = ConfState::decode_entry(bytes)?;
        if !context.is_empty() {
            return Err(format!("{} unexpected bytes at the end", context.len()));
        }
        Ok(conf)
    }

    /// Decodes a [`EntryKind::ConfChange`] entry: the membership, then the context the
    /// driver attached (opaque to consensus; the runtime keeps the members' addresses there),
    /// at most [`crate::limits::MEMBERSHIP_CONTEXT_BYTES_MAX`] bytes.
    pub fn decode_entry(bytes: &[u8]) -> std::result::Result<(ConfState, &[u8]), String> {
        use crate::limits::{LEARNERS_MAX, MEMBERSHIP_CONTEXT_BYTES_MAX, VOTERS_MAX};
        let mut reader = crate::codec::Reader::new(bytes);
        let version = reader.u8()?;
        if version != CONF_STATE_FORMAT {
            return Err(format!("membership format {version} is not supported"));
        }
        let conf = ConfState {
            voters: reader.ids(VOTERS_MAX)?,
            learners: reader.ids(LEARNERS_MAX)?,
            voters_outgoing: reader.ids(VOTERS_MAX)?,
        };
        conf.validate()?;
        let context = reader.rest();
        if context.len() > MEMBERSHIP_CONTEXT_BYTES_MAX {
            return Err(format!(
                "a membership context of {} bytes exceeds {MEMBERSHIP_CONTEXT_BYTES_MAX}",
                context.len()
            ));
        }
        Ok((conf, context))
    }
}

impl std::fmt::Display for ConfState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "voters {:?}", self.voters)?;
        if self.is_joint() {
            write!(f, " joint with {:?}", self.voters_outgoing)?;
        }
        if !self.learners.is_empty() {
            write!(f, ", learners {:?}", self.learners)?;
        }
        Ok(())
    }
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
    fn a_membership_round_trips_and_impossible_ones_are_refused() {
        let joint = ConfState {
            voters: vec![1, 2, 4],
            learners: vec![5],
            voters_outgoing: vec![1, 2, 3],
        };
        assert_eq!(ConfState::decode(&joint.encode()), Ok(joint.clone()));
        assert!(joint.is_joint() && joint.is_voter(3) && !joint.is_voter(5));
        assert_eq!(joint.members(), vec![1, 2, 3, 4, 5]);
        let bad = [
            ConfState::default(),
            ConfState::with_voters(&[1, 1]),
            ConfState::with_voters(&[0, 1]),
            ConfState {
                voters: vec![1],
                learners: vec![1],
                ..ConfState::default()
            },
        ];
        for conf in bad {
            assert!(ConfState::decode(&conf.encode()).is_err(), "{conf:?}");
        }
        assert!(ConfState::decode(&[9]).is_err());
        assert!(ConfState::decode(&joint.encode()[..5]).is_err());
    }

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
