//! Virtual time and the simulated network: an event queue ordered by (time, sequence), and a
//! fault model that drops, duplicates, reorders, delays and partitions messages.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::core::raft::Message;
use crate::core::rng::Rng;
use crate::limits::{SIM_NETWORK_MESSAGES_MAX, SIM_NODES_MAX, SIM_SPARES_MAX};
use crate::types::NodeId;

/// Virtual microseconds per Raft tick.
pub const TICK_US: u64 = 10_000;

/// Something scheduled to happen at a virtual time.
#[derive(Clone, Debug)]
pub enum Event {
    /// A message reaches its recipient.
    Deliver(Message),
    /// A node's clock ticks (ignored unless `incarnation` is the node's current one).
    Tick {
        /// The node.
        node: NodeId,
        /// Which life of the node scheduled this tick (restarts start a new one).
        incarnation: u32,
    },
    /// A client issues its next operation.
    ClientNext(u32),
    /// A client gives up on operation `seq`.
    ClientTimeout {
        /// The client.
        client: u32,
        /// Its operation.
        seq: u64,
    },
    /// The fault schedule changes.
    Nemesis,
    /// A crashed node starts again.
    Restart(NodeId),
    /// A malformed message is handed to a node.
    BadInput,
    /// An operator repairs a node that refused to start on a corrupt disk: its data directory
    /// is moved aside and it starts empty, re-replicating from the others.
    Repair(NodeId),
    /// A coordination client's turn.
    CoordNext(u32),
    /// A write reaches the resource guarded by fencing tokens.
    ResourceWrite {
        /// The writer's token.
        token: u64,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Scheduled) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Scheduled) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Scheduled) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest event first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The network's current misbehaviour. All probabilities are in parts per thousand.
#[derive(Clone, Debug, Default)]
pub struct LinkFaults {
    /// Chance a message is lost.
    pub drop_per_mille: u64,
    /// Chance a message is delivered twice.
    pub duplicate_per_mille: u64,
    /// Chance a message is held back for a long time (up to `long_delay_us_max`).
    pub long_delay_per_mille: u64,
    /// The longest hold-back.
    pub long_delay_us_max: u64,
    /// Extra random latency on every message (reorders messages between the same nodes).
    pub jitter_us_max: u64,
}

/// The event queue plus the link model.
pub struct Network {
    queue: BinaryHeap<Scheduled>,
    next_seq: u64,
    messages_in_flight: usize,
    /// `blocked[from][to]`: messages from `from` to `to` are lost.
    blocked: [[bool; SIM_NODES_MAX + SIM_SPARES_MAX + 1]; SIM_NODES_MAX + SIM_SPARES_MAX + 1],
    /// The link faults in force.
    pub faults: LinkFaults,
    rng: Rng,
}

/// Base one-way latency range of a healthy link, in virtual microseconds.
const LATENCY_US: (u64, u64) = (100, 2_000);

impl Network {
    /// An empty, healthy network.
    pub fn new(rng: Rng) -> Network {
        Network {
            queue: BinaryHeap::new(),
            next_seq: 0,
            messages_in_flight: 0,
            blocked: [[false; SIM_NODES_MAX + SIM_SPARES_MAX + 1];
                SIM_NODES_MAX + SIM_SPARES_MAX + 1],
            faults: LinkFaults::default(),
            rng,
        }
    }

    /// Schedules `event` at virtual time `at`.
    pub fn schedule(&mut self, at: u64, event: Event) {
        if matches!(event, Event::Deliver(_)) {
            self.messages_in_flight += 1;
        }
        self.queue.push(Scheduled {
            at,
            seq: self.next_seq,
            event,
        });
        self.next_seq += 1;
    }

    /// Removes and returns the earliest event.
    pub fn pop(&mut self) -> Option<(u64, Event)> {
        let scheduled = self.queue.pop()?;
        if matches!(scheduled.event, Event::Deliver(_)) {
            self.messages_in_flight -= 1;
        }
        Some((scheduled.at, scheduled.event))
    }

    /// Puts a message on the wire at time `now`, subject to the link faults.
    pub fn send(&mut self, now: u64, message: Message) {
        if self.messages_in_flight >= SIM_NETWORK_MESSAGES_MAX
            || self.is_blocked(message.from, message.to)
            || self.rng.chance(self.faults.drop_per_mille, 1000)
        {
            return;
        }
        if self.rng.chance(self.faults.duplicate_per_mille, 1000) {
            let at = now + self.latency();
            self.schedule(at, Event::Deliver(message.clone()));
        }
        let at = now + self.latency();
        self.schedule(at, Event::Deliver(message));
    }

    fn latency(&mut self) -> u64 {
        let mut latency = self.rng.range(LATENCY_US.0, LATENCY_US.1);
        latency += self.rng.range(0, self.faults.jitter_us_max + 1);
        if self.rng.chance(self.faults.long_delay_per_mille, 1000) {
            latency += self.rng.range(0, self.faults.long_delay_us_max + 1);
        }
        latency
    }

    /// Whether messages from `from` to `to` are currently lost.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked
            .get(from as usize)
            .and_then(|row| row.get(to as usize))
            .copied()
            .unwrap_or(true)
    }

    /// Cuts (or restores) the one-way link `from` → `to`.
    pub fn set_blocked(&mut self, from: NodeId, to: NodeId, blocked: bool) {
        if let Some(cell) = self
            .blocked
            .get_mut(from as usize)
            .and_then(|row| row.get_mut(to as usize))
        {
            *cell = blocked;
        }
    }

    /// Removes every partition and link fault.
    pub fn heal(&mut self) {
        self.blocked =
            [[false; SIM_NODES_MAX + SIM_SPARES_MAX + 1]; SIM_NODES_MAX + SIM_SPARES_MAX + 1];
        self.faults = LinkFaults::default();
    }

    /// Messages currently in flight.
    pub fn messages_in_flight(&self) -> usize {
        self.messages_in_flight
    }
}
