//! Barriers (a named meeting point that opens once `n` sessions arrived) and counters.

use std::collections::{BTreeMap, BTreeSet};

use super::command::Outcome;
use super::event::{Effects, Ended, EventKind, Space};
use crate::codec::{Put, Reader};
use crate::limits::{BARRIER_PARTICIPANTS_MAX, KEY_BYTES_MAX};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Barrier {
    participants: u32,
    arrived: BTreeSet<u64>,
}

/// Barriers not yet opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Barriers {
    map: BTreeMap<Vec<u8>, Barrier>,
}

impl Barriers {
    /// Number of barriers waiting to open.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether the barrier exists (someone waits at it).
    pub fn contains(&self, name: &[u8]) -> bool {
        self.map.contains_key(name)
    }

    /// `session` arrives. When the last participant arrives the barrier opens and is
    /// forgotten; the returned list holds the sessions released (empty otherwise).
    pub fn enter(
        &mut self,
        name: &[u8],
        participants: u32,
        session: u64,
        fx: &mut Effects,
    ) -> (Outcome, Vec<u64>) {
        let barrier = self.map.entry(name.to_vec()).or_insert_with(|| Barrier {
            participants,
            arrived: BTreeSet::new(),
        });
        if barrier.participants != participants {
            return (
                Outcome::Refused {
                    revision: fx.now(),
                    reason: format!(
                        "the barrier waits for {} participants, not {participants}",
                        barrier.participants
                    ),
                },
                Vec::new(),
            );
        }
        if !barrier.arrived.insert(session) {
            let arrived = barrier.arrived.len() as u32;
            let revision = fx.now();
            let outcome = Outcome::Barrier {
                revision,
                arrived,
                opened: false,
            };
            return (outcome, Vec::new());
        }
        let arrived = barrier.arrived.len() as u32;
        let revision = fx.bump();
        let event = fx.emit(Space::Barrier, name, EventKind::Arrived);
        (event.session, event.item) = (session, arrived as u64);
        let opened = arrived >= barrier.participants;
        let mut released = Vec::new();
        if opened {
            fx.emit(Space::Barrier, name, EventKind::Opened).item = participants as u64;
            released = self
                .map
                .remove(name)
                .map(|b| b.arrived.into_iter().collect())
                .unwrap_or_default();
        }
        let outcome = Outcome::Barrier {
            revision,
            arrived,
            opened,
        };
        (outcome, released)
    }

    /// `session` leaves before the barrier opened; returns whether it was there.
    pub fn exit(&mut self, name: &[u8], session: u64, why: Ended, fx: &mut Effects) -> bool {
        let Some(barrier) = self.map.get_mut(name) else {
            return false;
        };
        if !barrier.arrived.remove(&session) {
            return false;
        }
        fx.bump();
        let event = fx.emit(Space::Barrier, name, EventKind::Ended(why));
        (event.session, event.item) = (session, barrier.arrived.len() as u64);
        if barrier.arrived.is_empty() {
            self.map.remove(name);
        }
        true
    }

    /// Whether `session` waits at the barrier.
    pub fn involves(&self, name: &[u8], session: u64) -> bool {
        self.map
            .get(name)
            .is_some_and(|b| b.arrived.contains(&session))
    }

    /// (arrived, participants) of a barrier waiting to open.
    pub fn state(&self, name: &[u8]) -> Option<(u32, u32)> {
        self.map
            .get(name)
            .map(|b| (b.arrived.len() as u32, b.participants))
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.map.len() as u64);
        for (name, barrier) in &self.map {
            out.put_bytes(name);
            out.put_u32(barrier.participants);
            out.put_u32(barrier.arrived.len() as u32);
            barrier.arrived.iter().for_each(|s| out.put_u64(*s));
        }
    }

    /// Decodes what [`Barriers::encode`] wrote.
    pub fn decode(reader: &mut Reader) -> Result<Barriers, String> {
        let count = reader.u64()?;
        if count > reader.bytes.len() as u64 {
            return Err(format!("{count} barriers cannot fit in the snapshot"));
        }
        let mut barriers = Barriers::default();
        for _ in 0..count {
            let name = reader.bytes(KEY_BYTES_MAX)?.to_vec();
            let participants = reader.u32()?;
            if !(1..=BARRIER_PARTICIPANTS_MAX).contains(&participants) {
                return Err(format!("a barrier of {participants} participants"));
            }
            let arrived = reader.ids(BARRIER_PARTICIPANTS_MAX as usize)?;
            let barrier = Barrier {
                participants,
                arrived: arrived.into_iter().collect(),
            };
            barriers.map.insert(name, barrier);
        }
        Ok(barriers)
    }
}

/// Named 64-bit counters; an absent counter reads 0 (and a counter back at 0 is forgotten).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    map: BTreeMap<Vec<u8>, i64>,
}

impl Counters {
    /// Number of non-zero counters.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether all are 0.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether the counter is non-zero.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.map.contains_key(name)
    }

    /// Adds `delta`; refused on overflow.
    pub fn add(&mut self, name: &[u8], delta: i64, fx: &mut Effects) -> Outcome {
        let current = self.get(name);
        let Some(value) = current.checked_add(delta) else {
            return Outcome::Refused {
                revision: fx.now(),
                reason: format!("{current} + {delta} overflows a 64-bit counter"),
            };
        };
        let revision = fx.bump();
        if value == 0 {
            self.map.remove(name);
        } else {
            self.map.insert(name.to_vec(), value);
        }
        fx.emit(Space::Counter, name, EventKind::Counted).item = value as u64;
        Outcome::Counter { revision, value }
    }

    /// The counter's value (0 when absent).
    pub fn get(&self, name: &[u8]) -> i64 {
        self.map.get(name).copied().unwrap_or(0)
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.map.len() as u64);
        for (name, value) in &self.map {
            out.put_bytes(name);
            out.put_u64(*value as u64);
        }
    }

    /// Decodes what [`Counters::encode`] wrote.
    pub fn decode(reader: &mut Reader) -> Result<Counters, String> {
        let count = reader.u64()?;
        if count > reader.bytes.len() as u64 {
            return Err(format!("{count} counters cannot fit in the snapshot"));
        }
        let mut counters = Counters::default();
        for _ in 0..count {
            let name = reader.bytes(KEY_BYTES_MAX)?.to_vec();
            counters.map.insert(name, reader.u64()? as i64);
        }
        Ok(counters)
    }
}
