//! Snapshot transfer: the leader streams `Storage::snapshot()` in chunks to a member that needs
//! entries it compacted; the member assembles the chunks in memory and installs the snapshot
//! only once the last one arrived.
//!
//! The member answers every chunk with `SnapshotProgress` (bytes received in order). A chunk
//! that does not continue what it holds — lost, reordered, or from a new leader resuming the
//! same snapshot — is answered with what it does hold, and the leader resends from there. A
//! heartbeat interval with no progress makes the leader resend from the last acknowledged
//! byte. The member keeps a partial snapshot across leader changes, so a new leader sending
//! the same snapshot resumes where the old one stopped.

use super::message::{Message, MessageBody};
use super::node::{Raft, Role};
use super::progress::ProgressState;
use super::storage::Storage;
use crate::limits::{
    APPEND_BYTES_MAX, SNAPSHOT_CHUNKS_IN_FLIGHT_MAX, SNAPSHOT_CHUNKS_PER_TRANSFER,
};
use crate::types::{NodeId, Payload, Snapshot, SnapshotMeta};

/// A snapshot being received, held in memory until complete.
#[derive(Debug)]
pub(super) struct IncomingSnapshot {
    meta: SnapshotMeta,
    total_bytes: u64,
    data: Vec<u8>,
}

impl<S: Storage> Raft<S> {
    /// Begins sending the latest snapshot to `to`, if storage has one that covers what `to`
    /// needs; otherwise waits (the driver has not taken one yet).
    pub(super) fn start_snapshot(&mut self, to: NodeId) {
        let Ok(snapshot) = self.log.storage.snapshot() else {
            return;
        };
        let Some(progress) = self.tracker.get_mut(to) else {
            return;
        };
        if snapshot.meta.index == 0 || snapshot.meta.index < progress.match_index {
            return;
        }
        progress.become_snapshot(snapshot.meta.index, snapshot.data.len() as u64);
        self.send_snapshot_chunks(to);
    }

    /// Sends chunks to `to` while its window allows.
    pub(super) fn send_snapshot_chunks(&mut self, to: NodeId) {
        let Ok(snapshot) = self.log.storage.snapshot() else {
            return;
        };
        let Some(progress) = self.tracker.get(to) else {
            return;
        };
        // At most SNAPSHOT_CHUNKS_PER_TRANSFER chunks (within the frame limit): with a tiny
        // message budget, a transfer taking more round trips than the driver takes between
        // two snapshots would start over forever.
        let chunk_bytes = (self.config.append_bytes_max as u64)
            .max(progress.snapshot.total_bytes / SNAPSHOT_CHUNKS_PER_TRANSFER)
            .min(APPEND_BYTES_MAX as u64)
            .max(1);
        if progress.state != ProgressState::Snapshot {
            return;
        }
        if snapshot.meta.index != progress.snapshot.index {
            // A newer snapshot replaced the one being sent: start over with it.
            self.start_snapshot(to);
            return;
        }
        let mut transfer = progress.snapshot;
        // Bounded by the window: each round moves `sent_bytes` forward by one chunk.
        loop {
            let in_flight = transfer.sent_bytes - transfer.acked_bytes;
            let first = transfer.sent_bytes == 0;
            if (!first && transfer.sent_bytes >= transfer.total_bytes)
                || in_flight >= chunk_bytes * SNAPSHOT_CHUNKS_IN_FLIGHT_MAX
            {
                break;
            }
            let end = (transfer.sent_bytes + chunk_bytes).min(transfer.total_bytes);
            let chunk = snapshot
                .data
                .slice(transfer.sent_bytes as usize, end as usize)
                .unwrap_or_default();
            self.send(
                to,
                MessageBody::InstallSnapshot {
                    meta: snapshot.meta.clone(),
                    total_bytes: transfer.total_bytes,
                    offset: transfer.sent_bytes,
                    chunk,
                },
            );
            if end == transfer.sent_bytes {
                break; // an empty snapshot travels as one empty chunk
            }
            transfer.sent_bytes = end;
        }
        if let Some(progress) = self.tracker.get_mut(to) {
            progress.snapshot.sent_bytes = transfer.sent_bytes;
        }
    }

    /// A heartbeat answer from a member receiving a snapshot: resend from the last
    /// acknowledged byte if nothing moved for a whole heartbeat interval.
    pub(super) fn snapshot_heartbeat(&mut self, from: NodeId) {
        let Some(progress) = self.tracker.get_mut(from) else {
            return;
        };
        let transfer = &mut progress.snapshot;
        if transfer.acked_bytes == transfer.acked_at_last_heartbeat {
            transfer.sent_bytes = transfer.acked_bytes;
        }
        transfer.acked_at_last_heartbeat = transfer.acked_bytes;
        self.send_snapshot_chunks(from);
    }

    pub(super) fn handle_snapshot_progress(&mut self, from: NodeId, index: u64, received: u64) {
        if self.role != Role::Leader {
            return;
        }
        let Some(progress) = self.tracker.get_mut(from) else {
            return;
        };
        progress.recent_active = true;
        if progress.state != ProgressState::Snapshot || progress.snapshot.index != index {
            return;
        }
        let transfer = &mut progress.snapshot;
        if received <= transfer.acked_bytes {
            // The member holds less than we thought (a lost or reordered chunk, or it
            // restarted): resend from what it holds.
            transfer.sent_bytes = received;
        }
        transfer.acked_bytes = received;
        transfer.sent_bytes = transfer.sent_bytes.max(received);
        self.send_snapshot_chunks(from);
    }

    /// A chunk from the leader.
    pub(super) fn handle_install_snapshot(&mut self, message: Message) {
        self.election_elapsed = 0;
        self.leader = message.from;
        if self.role != Role::Follower {
            let term = self.term;
            self.become_follower(term, message.from);
        }
        let MessageBody::InstallSnapshot {
            meta,
            total_bytes,
            offset,
            chunk,
        } = message.body
        else {
            return;
        };
        let leader = message.from;
        if meta.index <= self.log.committed {
            // Already have everything it covers: tell the leader where we are.
            self.incoming_snapshot = None;
            let index = self.log.committed;
            self.respond_append(leader, index, false, 0, 0);
            return;
        }
        let same = self.incoming_snapshot.as_ref().is_some_and(|incoming| {
            incoming.meta.index == meta.index
                && incoming.meta.term == meta.term
                && incoming.total_bytes == total_bytes
        });
        if !same && offset == 0 {
            self.incoming_snapshot = Some(IncomingSnapshot {
                meta: meta.clone(),
                total_bytes,
                data: Vec::new(),
            });
        }
        let received = match self.incoming_snapshot.as_mut() {
            Some(incoming) if (same || offset == 0) && offset == incoming.data.len() as u64 => {
                incoming.data.extend_from_slice(chunk.as_slice());
                incoming.data.len() as u64
            }
            Some(incoming) if same => incoming.data.len() as u64,
            _ => 0,
        };
        if received == total_bytes {
            if let Some(incoming) = self.incoming_snapshot.take() {
                self.install_snapshot(leader, incoming);
            }
            return;
        }
        self.send(
            leader,
            MessageBody::SnapshotProgress {
                index: meta.index,
                received_bytes: received,
            },
        );
    }

    /// Every chunk arrived: replace the log with the snapshot; acknowledge once it is durable.
    fn install_snapshot(&mut self, leader: NodeId, incoming: IncomingSnapshot) {
        let index = incoming.meta.index;
        let conf = incoming.meta.conf.clone();
        self.log.restore(Snapshot {
            meta: incoming.meta,
            data: Payload::from(incoming.data),
        });
        self.conf_restored(index, conf);
        self.respond_append(leader, index, false, 0, 0);
    }
}
