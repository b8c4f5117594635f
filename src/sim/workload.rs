//! Simulated clients: each issues put, get and compare-and-swap operations on a small key
//! space, one at a time, and records invocation and answer in the history.
//!
//! Writes are proposed on the node the client believes leads; reads go through ReadIndex on
//! whichever node the client talks to (followers forward them to the leader). An operation
//! whose answer never comes (timeout, crashed node) stays in the history with an unknown
//! outcome: the checker then allows it to have happened at any later time, or never.

use super::cluster::Cluster;
use super::history::{OpInput, OpOutput, Operation};
use super::kv::Command;
use super::network::{Event, TICK_US};
use crate::error::Error;
use crate::limits::SIM_HISTORY_OPERATIONS_MAX;
use crate::types::{NodeId, Payload};

/// One client's state.
pub(super) struct Client {
    id: u32,
    /// The node this client sends to.
    target: NodeId,
    next_seq: u64,
    /// The operation awaiting an answer: (seq, node asked, position in the history).
    outstanding: Option<(u64, NodeId, usize)>,
    /// Last value this client saw per key (to make compare-and-swaps that can succeed).
    last_seen: Vec<u64>,
    /// No new operations after this virtual time.
    stop_at: u64,
    keys: u32,
    timeout_us: u64,
}

impl Cluster {
    /// Adds `count` clients working on `keys` keys until virtual time `stop_at`.
    pub fn add_clients(&mut self, count: usize, keys: u32, stop_at: u64) {
        let timeout_us = u64::from(self.settings.election_ticks) * TICK_US * 4;
        for _ in 0..count.min(crate::limits::SIM_CLIENTS_MAX) {
            let id = self.clients.len() as u32;
            let target = self.rng.range(1, self.nodes.len() as u64 + 1);
            self.clients.push(Client {
                id,
                target,
                next_seq: 1,
                outstanding: None,
                last_seen: vec![0; keys.max(1) as usize],
                stop_at,
                keys: keys.max(1),
                timeout_us,
            });
            let start = self.now + self.rng.range(0, TICK_US);
            self.network.schedule(start, Event::ClientNext(id));
        }
    }

    pub(super) fn client_next(&mut self, client_id: u32) {
        let now = self.now;
        let Some(client) = self.clients.get(client_id as usize) else {
            return;
        };
        if client.outstanding.is_some() || now >= client.stop_at {
            return;
        }
        if self.history.len() >= SIM_HISTORY_OPERATIONS_MAX {
            return;
        }
        let key = self.rng.range(0, u64::from(client.keys)) as u32;
        let seq = client.next_seq;
        let unique = (u64::from(client_id) + 1) << 40 | seq;
        let input = match self.rng.range(0, 10) {
            0..=3 => OpInput::Put(unique),
            4..=6 => OpInput::Get,
            _ => OpInput::Cas {
                expected: client.last_seen[key as usize],
                new: unique,
            },
        };
        let target = client.target;
        let result = if input == OpInput::Get {
            let request = (u64::from(client_id) << 32) | (seq & 0xffff_ffff);
            self.raft_mut(target)
                .ok_or(Error::NotLeader { leader: None })
                .and_then(|raft| raft.read_index(request))
        } else {
            let command = Command {
                client: client_id,
                seq,
                key,
                input,
            };
            self.raft_mut(target)
                .ok_or(Error::NotLeader { leader: None })
                .and_then(|raft| raft.propose(Payload::from_slice(&command.encode())))
                .map(|_| ())
        };
        let client = &mut self.clients[client_id as usize];
        client.next_seq += 1;
        match result {
            Ok(()) => {
                client.outstanding = Some((seq, target, self.history.len()));
                let timeout = now + client.timeout_us;
                self.history.push(Operation {
                    client: client_id,
                    key,
                    input,
                    invoked: now,
                    returned: None,
                });
                self.network.schedule(
                    timeout,
                    Event::ClientTimeout {
                        client: client_id,
                        seq,
                    },
                );
                self.process(target);
            }
            Err(error) => {
                // Refused outright: it never took effect, so it is not part of the history.
                client.target = match error {
                    Error::NotLeader {
                        leader: Some(leader),
                    } => leader,
                    _ => self.rng.range(1, self.nodes.len() as u64 + 1),
                };
                let retry = now + self.rng.range(TICK_US / 2, TICK_US * 2);
                self.network.schedule(retry, Event::ClientNext(client_id));
            }
        }
    }

    pub(super) fn client_timeout(&mut self, client_id: u32, seq: u64) {
        let Some(client) = self.clients.get_mut(client_id as usize) else {
            return;
        };
        if matches!(client.outstanding, Some((outstanding, _, _)) if outstanding == seq) {
            client.outstanding = None;
            // The node may be gone or partitioned away: try another one next time.
            client.target = self.rng.range(1, self.nodes.len() as u64 + 1);
            let next = self.now + self.rng.range(0, TICK_US);
            self.network.schedule(next, Event::ClientNext(client_id));
        }
    }

    /// Records the answer to (`client`, `seq`) given by node `node`. Returns whether the
    /// client was waiting for exactly that answer.
    pub(super) fn complete_client_op(
        &mut self,
        client_id: u32,
        seq: u64,
        node: NodeId,
        output: OpOutput,
    ) -> bool {
        let now = self.now;
        let Some(client) = self.clients.get_mut(client_id as usize) else {
            return false;
        };
        let Some((outstanding, asked, position)) = client.outstanding else {
            return false;
        };
        if outstanding & 0xffff_ffff != seq & 0xffff_ffff || asked != node {
            return false;
        }
        client.outstanding = None;
        let Some(operation) = self.history.get_mut(position) else {
            return false;
        };
        operation.returned = Some((now, output));
        let seen = match (operation.input, output) {
            (OpInput::Put(value), _) => Some(value),
            (OpInput::Cas { new, .. }, OpOutput::Swapped(true)) => Some(new),
            (_, OpOutput::Value(value)) => value,
            _ => None,
        };
        if let Some(value) = seen {
            client.last_seen[operation.key as usize] = value;
        }
        let next = now + self.rng.range(0, TICK_US);
        self.network.schedule(next, Event::ClientNext(client_id));
        true
    }

    /// The key of the read (`client`, `seq`) if that client still waits for it at `node`.
    pub(super) fn client_read_key(&self, client_id: u32, seq: u64, node: NodeId) -> Option<u32> {
        let client = self.clients.get(client_id as usize)?;
        let (outstanding, asked, position) = client.outstanding?;
        if outstanding & 0xffff_ffff != seq || asked != node {
            return None;
        }
        let operation = self.history.get(position)?;
        (operation.input == OpInput::Get).then_some(operation.key)
    }

    /// Node `id` crashed: its clients' operations have unknown outcomes now.
    pub(super) fn abandon_client_ops_on(&mut self, id: NodeId) {
        let now = self.now;
        for position in 0..self.clients.len() {
            let client = &mut self.clients[position];
            if matches!(client.outstanding, Some((_, asked, _)) if asked == id) {
                client.outstanding = None;
                client.target = 0;
                let client_id = client.id;
                let next = now + TICK_US;
                self.network.schedule(next, Event::ClientNext(client_id));
            }
        }
    }
}
