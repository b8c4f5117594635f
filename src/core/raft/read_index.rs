//! Linearizable reads by ReadIndex (Raft thesis §6.4), batched.
//!
//! A read is registered with the commit index at that moment. At the next `Ready`, every read
//! not yet in a round joins a new round `r`, and one heartbeat broadcast carries `r`. Once a
//! quorum has acknowledged a heartbeat of round `>= r`, the leader was still the leader after
//! those reads arrived, so they may be served once the commit index they recorded is applied.
//! One heartbeat round thus confirms every read pending when it began, however many there are.
//! A leader serves reads only after committing an entry of its own term, since before that its
//! commit index may lag the true one.

use super::message::{Message, MessageBody};
use super::node::{Raft, Role};
use super::ready::ReadState;
use super::storage::Storage;
use crate::error::{Error, Result};
use crate::limits::PENDING_READS_MAX;
use crate::types::{Index, NodeId};

/// A read waiting for its leadership confirmation.
#[derive(Clone, Copy, Debug)]
pub(super) struct PendingRead {
    /// The caller's identifier for the read.
    request: u64,
    /// The node whose client asked (this node, or a follower that forwarded it).
    from: NodeId,
    /// The commit index when the read joined its round.
    index: Index,
    /// The round that confirms it; 0 until assigned.
    round: u64,
}

impl<S: Storage> Raft<S> {
    /// Requests a linearizable read identified by `request`. A matching [`ReadState`] appears in
    /// a later `Ready`; the read may be served once the applied index reaches its `index`.
    /// A follower forwards the request to its leader. Reads pending when leadership is lost are
    /// dropped (the caller's timeout answers them).
    pub fn read_index(&mut self, request: u64) -> Result<()> {
        match self.role {
            Role::Leader => self.register_read(self.id, request),
            _ if self.leader != crate::types::NO_NODE => {
                let leader = self.leader;
                self.send(leader, MessageBody::ReadIndex { request });
                Ok(())
            }
            _ => Err(Error::NotLeader { leader: None }),
        }
    }

    fn register_read(&mut self, from: NodeId, request: u64) -> Result<()> {
        if self.pending_reads.len() >= PENDING_READS_MAX {
            return Err(Error::Busy("pending reads"));
        }
        self.pending_reads.push_back(PendingRead {
            request,
            from,
            index: 0,
            round: 0,
        });
        Ok(())
    }

    pub(super) fn handle_forwarded_read(&mut self, from: NodeId, request: u64) {
        if self.role == Role::Leader {
            // A full queue drops the forwarded read; the follower's client times out.
            let _ = self.register_read(from, request);
        }
    }

    pub(super) fn handle_read_index_response(
        &mut self,
        message: &Message,
        request: u64,
        index: Index,
    ) {
        if self.role == Role::Follower && message.from == self.leader {
            self.read_states.push(ReadState { request, index });
        }
    }

    /// Whether reads wait for a round to be started.
    pub(super) fn has_unassigned_reads(&self) -> bool {
        self.role == Role::Leader
            && self.committed_in_term
            && self.pending_reads.back().is_some_and(|r| r.round == 0)
    }

    /// Starts one round for every read not yet in one, and broadcasts it.
    pub(super) fn assign_read_round(&mut self) {
        if !self.has_unassigned_reads() {
            return;
        }
        self.read_round += 1;
        let (round, index) = (self.read_round, self.log.committed);
        for read in self.pending_reads.iter_mut().rev() {
            if read.round != 0 {
                break;
            }
            read.round = round;
            read.index = index;
        }
        self.broadcast_heartbeat();
        self.release_confirmed_reads();
    }

    /// Serves every read whose round a quorum has confirmed.
    pub(super) fn release_confirmed_reads(&mut self) {
        let (id, own_round) = (self.id, self.read_round);
        let confirmed = self.tracker.quorum_value(|p| {
            if p.id == id {
                own_round
            } else {
                p.read_round_acked
            }
        });
        // Bounded by PENDING_READS_MAX.
        while let Some(read) = self.pending_reads.front().copied() {
            if read.round == 0 || read.round > confirmed {
                break;
            }
            self.pending_reads.pop_front();
            if read.from == self.id {
                self.read_states.push(ReadState {
                    request: read.request,
                    index: read.index,
                });
            } else {
                self.send(
                    read.from,
                    MessageBody::ReadIndexResponse {
                        request: read.request,
                        index: read.index,
                    },
                );
            }
        }
    }
}
