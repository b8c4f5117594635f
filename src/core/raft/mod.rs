//! Raft consensus, without I/O: a deterministic state machine in the style of etcd-io/raft's
//! `RawNode` and quinn-proto.
//!
//! A [`Raft`] node never reads a clock, opens a socket, touches a disk or draws randomness of
//! its own. Its inputs are method calls: [`Raft::tick`] (time passed: one tick), [`Raft::step`]
//! (a message arrived), [`Raft::propose`] / [`Raft::propose_batch`] (a client command),
//! [`Raft::read_index`] (a linearizable read), [`Raft::transfer_leader`]. Its output is a
//! [`Ready`] batch. Given the same inputs and seed it produces the same outputs, which is what
//! lets the simulator (`crate::sim`) replay any run from its seed.
//!
//! # The Ready / advance contract
//!
//! After feeding inputs, the driver asks [`Raft::has_ready`] and, if true, takes
//! [`Raft::ready`], then handles it **in this order**:
//!
//! 1. Send `ready.messages` — these may go out *before* the entries are durable. (They are the
//!    leader's AppendEntries, heartbeats and requests; a leader may replicate entries it has not
//!    yet made durable, because it counts itself toward a quorum only after step 3.)
//! 2. If `ready.snapshot` is `Some`, make it durable first (it replaces the log up to its
//!    index). Append `ready.entries` to storage (overwriting any conflicting suffix) and record
//!    `ready.hard_state` if it is `Some`; then make all of it durable (one fdatasync).
//! 3. Call [`Raft::advance`] with the `Ready`'s [`Ready::persisted_marker`]. Only now does a
//!    leader count its own copy toward commit, and a candidate count its own vote.
//! 4. Send `ready.persisted_messages` — votes, append and heartbeat answers. These promise
//!    that state is durable, so they must never be sent before step 2 completes. If the node
//!    crashes between 1 and 3, they are simply lost, which Raft tolerates.
//! 5. If `ready.snapshot` is `Some`, restore the state machine from it. Then apply
//!    `ready.committed_entries`, in order. They are always durable on this node and committed
//!    in the cluster.
//! 6. Serve `ready.read_states`: a read with context `ctx` may be answered once the applied
//!    index reaches `index` (linearizable: ReadIndex, Raft thesis §6.4).
//!
//! Between taking a `Ready` and calling `advance`, the driver may keep stepping messages and
//! ticks (for example while a sync runs on another thread); `advance` is safe against entries
//! having been overwritten meanwhile. The driver must not call `ready` again before `advance`.
//!
//! # Features
//!
//! Randomized election timeouts (in ticks, from the seeded RNG); pre-vote; check-quorum with
//! leader leases that stop deposed nodes from disrupting a healthy leader; a no-op entry at the
//! start of each term; commitment by counting only entries of the current term (Raft Figure 8);
//! pipelined replication with a bounded in-flight window and a byte budget per message; fast
//! conflict backtracking (etcd-io/raft's term-skipping hint); leader transfer (TimeoutNow);
//! batched ReadIndex: one heartbeat round confirms every read pending when it started.
//!
//! Bad input (a message from an unknown node, malformed indexes, oversized entries) is
//! rejected by [`Raft::step`] with an [`crate::error::Error`] *before* any state changes.

mod election;
mod membership;
mod message;
mod node;
mod progress;
mod raft_log;
mod read_index;
mod ready;
mod replication;
mod snapshot;
mod storage;

pub use membership::ConfChange;
pub use message::{Message, MessageBody};
pub use node::{Config, Raft, Role};
pub use progress::{Inflights, Progress, ProgressState, ProgressTracker, SnapshotTransfer};
pub use raft_log::RaftLog;
pub use ready::{PersistedMarker, ReadState, Ready};
pub use storage::{MemStorage, Storage};

#[cfg(test)]
mod tests;
