//! The watch hub of one member: a bounded history of the change events it applied, and the
//! watches of its client connections, indexed by (space, prefix) so that routing an event costs
//! one lookup per prefix of its key, not one per watch.
//!
//! A watch starts at any revision whose events are all still in the history (older: the
//! caller is told `Compacted` with the current revision, and lists again); its past events are
//! replayed from the history and its future ones routed as they are applied, both on the loop
//! thread, so nothing is missed or repeated in between.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::event::{Event, Space};
use crate::limits::{
    WATCHES_MAX, WATCHES_PER_CONNECTION_MAX, WATCH_HISTORY_BYTES_MAX, WATCH_HISTORY_EVENTS_MAX,
};

/// Identifies one watch: the connection (slot and serial) and the caller's watch id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchKey {
    /// The connection's slot.
    pub slot: usize,
    /// The connection's serial (a later connection in the same slot has another).
    pub serial: u64,
    /// The caller's id for the watch.
    pub watch: u64,
}

/// Why a watch could not start.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchRefused {
    /// Its start revision is older than the history: list again at this revision.
    Compacted(u64),
    /// A limit (the text says which).
    Limit(String),
}

/// The history and the watches.
pub struct WatchHub {
    history: VecDeque<Event>,
    history_bytes: usize,
    /// Every event with a revision up to this one has left the history (or was never in it:
    /// the member started from a snapshot at this revision).
    compacted: u64,
    /// The last revision seen.
    revision: u64,
    /// Each watch's space, prefix and start revision (a member still catching up, e.g. after
    /// a restart, applies entries older than a resumed watch's start: those are not sent).
    watches: BTreeMap<WatchKey, (Space, Vec<u8>, u64)>,
    index: BTreeMap<(Space, Vec<u8>), BTreeSet<WatchKey>>,
}

impl WatchHub {
    /// A hub for a state at `revision` (the history starts after it).
    pub fn new(revision: u64) -> WatchHub {
        WatchHub {
            history: VecDeque::new(),
            history_bytes: 0,
            compacted: revision,
            revision,
            watches: BTreeMap::new(),
            index: BTreeMap::new(),
        }
    }

    /// The state jumped to `revision` (a snapshot from the leader replaced it): the history
    /// no longer connects, so every watch ends (returned) and the history restarts.
    pub fn reset(&mut self, revision: u64) -> Vec<WatchKey> {
        let ended: Vec<WatchKey> = self.watches.keys().copied().collect();
        *self = WatchHub::new(revision);
        ended
    }

    /// Number of watches.
    pub fn len(&self) -> usize {
        self.watches.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// Registers a watch from revision `from`; returns the past events it must get first.
    pub fn add(
        &mut self,
        key: WatchKey,
        space: Space,
        prefix: Vec<u8>,
        from: u64,
    ) -> Result<Vec<Event>, WatchRefused> {
        if from <= self.compacted {
            return Err(WatchRefused::Compacted(self.revision));
        }
        if self.watches.contains_key(&key) {
            return Err(WatchRefused::Limit(format!(
                "watch id {} is in use on this connection",
                key.watch
            )));
        }
        if self.watches.len() >= WATCHES_MAX {
            return Err(WatchRefused::Limit(format!(
                "this member serves {WATCHES_MAX} watches already"
            )));
        }
        if self.connection_watches(key.slot, key.serial) >= WATCHES_PER_CONNECTION_MAX {
            return Err(WatchRefused::Limit(format!(
                "a connection may hold {WATCHES_PER_CONNECTION_MAX} watches"
            )));
        }
        // Bounded by the history.
        let past = self
            .history
            .iter()
            .filter(|e| e.revision >= from && e.space == space && e.key.starts_with(&prefix))
            .cloned()
            .collect();
        self.index
            .entry((space, prefix.clone()))
            .or_default()
            .insert(key);
        self.watches.insert(key, (space, prefix, from));
        Ok(past)
    }

    fn connection_watches(&self, slot: usize, serial: u64) -> usize {
        let start = WatchKey {
            slot,
            serial,
            watch: 0,
        };
        let end = WatchKey {
            slot,
            serial,
            watch: u64::MAX,
        };
        self.watches.range(start..=end).count()
    }

    /// Removes a watch; false if there was none.
    pub fn remove(&mut self, key: &WatchKey) -> bool {
        let Some((space, prefix, _)) = self.watches.remove(key) else {
            return false;
        };
        let index_key = (space, prefix);
        if let Some(keys) = self.index.get_mut(&index_key) {
            keys.remove(key);
            if keys.is_empty() {
                self.index.remove(&index_key);
            }
        }
        true
    }

    /// Removes every watch of a connection (it closed).
    pub fn remove_connection(&mut self, slot: usize) {
        let start = WatchKey {
            slot,
            serial: 0,
            watch: 0,
        };
        let end = WatchKey {
            slot,
            serial: u64::MAX,
            watch: u64::MAX,
        };
        let keys: Vec<WatchKey> = self.watches.range(start..=end).map(|(k, _)| *k).collect();
        for key in keys {
            self.remove(&key);
        }
    }

    /// Records applied events in the history and returns, per watch, those it must get.
    pub fn publish(&mut self, events: Vec<Event>) -> BTreeMap<WatchKey, Vec<Event>> {
        let mut routed: BTreeMap<WatchKey, Vec<Event>> = BTreeMap::new();
        for event in events {
            self.revision = self.revision.max(event.revision);
            if !self.watches.is_empty() {
                // One lookup per prefix of the key (the empty prefix included).
                for end in 0..=event.key.len() {
                    let index_key = (event.space, event.key[..end].to_vec());
                    if let Some(keys) = self.index.get(&index_key) {
                        for key in keys {
                            let from = self.watches.get(key).map_or(0, |w| w.2);
                            if event.revision < from {
                                continue;
                            }
                            routed.entry(*key).or_default().push(event.clone());
                        }
                    }
                }
            }
            self.history_bytes += event.cost_bytes();
            self.history.push_back(event);
        }
        // Bounded: drop the oldest revisions (whole revisions, so a resumable start
        // never falls in the middle of one) until under both limits.
        while self.history.len() > WATCH_HISTORY_EVENTS_MAX
            || self.history_bytes > WATCH_HISTORY_BYTES_MAX
        {
            let Some(oldest) = self.history.front().map(|e| e.revision) else {
                break;
            };
            while self.history.front().is_some_and(|e| e.revision == oldest) {
                let event = self.history.pop_front().expect("front exists");
                self.history_bytes -= event.cost_bytes();
            }
            self.compacted = oldest;
        }
        routed
    }

    /// Notes the state's revision when no event came with it (so `Compacted` answers carry it).
    pub fn note_revision(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::EventKind;

    fn event(revision: u64, key: &str) -> Event {
        Event::new(revision, Space::Kv, key.as_bytes(), EventKind::Put)
    }

    fn key(watch: u64) -> WatchKey {
        WatchKey {
            slot: 1,
            serial: 1,
            watch,
        }
    }

    #[test]
    fn watches_get_matching_events_replayed_then_live() {
        let mut hub = WatchHub::new(0);
        hub.publish(vec![event(1, "a/1"), event(2, "b/1"), event(3, "a/2")]);
        let past = hub.add(key(1), Space::Kv, b"a/".to_vec(), 2).unwrap();
        assert_eq!(past, vec![event(3, "a/2")]);
        let routed = hub.publish(vec![event(4, "a/3"), event(5, "b/2")]);
        assert_eq!(routed.get(&key(1)), Some(&vec![event(4, "a/3")]));
        assert_eq!(routed.len(), 1);
        // A watch resumed ahead of the member's state skips what the member applies before.
        let ahead = WatchKey {
            slot: 2,
            serial: 1,
            watch: 1,
        };
        assert!(hub.add(ahead, Space::Kv, Vec::new(), 7).unwrap().is_empty());
        let routed = hub.publish(vec![event(6, "x"), event(7, "y")]);
        assert_eq!(routed.get(&ahead), Some(&vec![event(7, "y")]));
        hub.remove_connection(2);
        hub.remove_connection(1);
        assert!(hub.is_empty());
        assert!(hub.publish(vec![event(6, "a/4")]).is_empty());
    }

    #[test]
    fn a_start_before_the_history_is_compacted() {
        let mut hub = WatchHub::new(10);
        assert_eq!(
            hub.add(key(1), Space::Kv, Vec::new(), 10),
            Err(WatchRefused::Compacted(10))
        );
        let events: Vec<Event> = (11..11 + WATCH_HISTORY_EVENTS_MAX as u64 + 5)
            .map(|r| event(r, "k"))
            .collect();
        hub.publish(events);
        let newest = 10 + WATCH_HISTORY_EVENTS_MAX as u64 + 5;
        assert!(matches!(
            hub.add(key(2), Space::Kv, Vec::new(), 12),
            Err(WatchRefused::Compacted(r)) if r == newest
        ));
        let past = hub.add(key(3), Space::Kv, Vec::new(), newest - 1).unwrap();
        assert_eq!(past.len(), 2);
    }
}
