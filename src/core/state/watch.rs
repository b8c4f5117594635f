//! The watch hub of one member: a bounded history of the change events it applied, and the
//! watches of its client connections, indexed by (space, prefix) so that routing an event costs
//! one lookup per prefix of its key, not one per watch.
//!
//! A watch starts at any revision whose events are all still in the history (older: the
//! caller is told `Compacted` with the current revision, and lists again); its past events are
//! replayed from the history and its future ones routed as they are applied, both on the loop
//! thread, so nothing is missed or repeated in between.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

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

/// One watch: what it covers and where it starts.
struct Watch {
    space: Space,
    /// Shared with the index entry (one allocation per watch).
    prefix: Arc<[u8]>,
    /// Its start revision: a member still catching up (after a restart) applies entries
    /// older than a resumed watch's start, and those are not sent to it.
    from: u64,
}

/// The watches on one (space, prefix); almost always one, so it is kept inline (a set
/// otherwise, in key order, so that removing one of many is cheap).
enum Watchers {
    One(WatchKey),
    Many(BTreeSet<WatchKey>),
}

impl Watchers {
    fn for_each(&self, mut visit: impl FnMut(&WatchKey)) {
        match self {
            Watchers::One(key) => visit(key),
            Watchers::Many(keys) => keys.iter().for_each(visit),
        }
    }
}

/// Number of [`Space`]s (the index has one map per space).
const SPACES: usize = 8;

/// The history and the watches. The layout is chosen for many idle watches (about 200 bytes
/// each): hash maps instead of ordered ones, the prefix stored once, a single watcher per
/// prefix kept inline.
pub struct WatchHub {
    history: VecDeque<Event>,
    history_bytes: usize,
    /// Every event with a revision up to this one has left the history (or was never in it:
    /// the member started from a snapshot at this revision).
    compacted: u64,
    /// The last revision seen.
    revision: u64,
    watches: HashMap<WatchKey, Watch>,
    /// Per space: prefix → the watches on it.
    index: [HashMap<Arc<[u8]>, Watchers>; SPACES],
    /// Per space: the lengths of the prefixes watched, with how many prefixes have each
    /// (routing an event looks up only those lengths, not every prefix of its key).
    lengths: [BTreeMap<usize, usize>; SPACES],
    /// Per connection slot: its serial and its watch ids (for the per-connection limit and
    /// for dropping them all when it closes).
    connections: HashMap<usize, (u64, Vec<u64>)>,
}

fn space_slot(space: Space) -> usize {
    (space as usize - 1) % SPACES
}

impl WatchHub {
    /// A hub for a state at `revision` (the history starts after it).
    pub fn new(revision: u64) -> WatchHub {
        WatchHub {
            history: VecDeque::new(),
            history_bytes: 0,
            compacted: revision,
            revision,
            watches: HashMap::new(),
            index: Default::default(),
            lengths: Default::default(),
            connections: HashMap::new(),
        }
    }

    /// The state jumped to `revision` (a snapshot from the leader replaced it): the history
    /// no longer connects, so every watch ends (returned, in order) and the history restarts.
    pub fn reset(&mut self, revision: u64) -> Vec<WatchKey> {
        let mut ended: Vec<WatchKey> = self.watches.keys().copied().collect();
        ended.sort();
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
        let on_connection = match self.connections.get(&key.slot) {
            Some((serial, ids)) if *serial == key.serial => ids.len(),
            _ => 0,
        };
        if on_connection >= WATCHES_PER_CONNECTION_MAX {
            return Err(WatchRefused::Limit(format!(
                "a connection may hold {WATCHES_PER_CONNECTION_MAX} watches"
            )));
        }
        // The history is in revision order: start at the first event at or after `from`.
        let start = self.history.partition_point(|e| e.revision < from);
        let past = self
            .history
            .range(start..)
            .filter(|e| e.space == space && e.key.starts_with(&prefix))
            .cloned()
            .collect();
        let prefix: Arc<[u8]> = Arc::from(prefix);
        let slot = space_slot(space);
        match self.index[slot].entry(prefix.clone()) {
            Entry::Occupied(mut entry) => {
                let watchers = entry.get_mut();
                match watchers {
                    Watchers::One(first) => {
                        *watchers = Watchers::Many([*first, key].into_iter().collect())
                    }
                    Watchers::Many(keys) => {
                        keys.insert(key);
                    }
                }
            }
            Entry::Vacant(entry) => {
                entry.insert(Watchers::One(key));
                *self.lengths[slot].entry(prefix.len()).or_insert(0) += 1;
            }
        }
        self.watches.insert(
            key,
            Watch {
                space,
                prefix,
                from,
            },
        );
        let connection = self
            .connections
            .entry(key.slot)
            .or_insert_with(|| (key.serial, Vec::new()));
        if connection.0 != key.serial {
            *connection = (key.serial, Vec::new()); // a stale connection's leftovers
        }
        connection.1.push(key.watch);
        Ok(past)
    }

    /// Removes a watch; false if there was none.
    pub fn remove(&mut self, key: &WatchKey) -> bool {
        if !self.unindex(key) {
            return false;
        }
        if let Some((serial, ids)) = self.connections.get_mut(&key.slot) {
            if *serial == key.serial {
                if let Some(at) = ids.iter().position(|w| *w == key.watch) {
                    ids.swap_remove(at);
                }
                if ids.is_empty() {
                    self.connections.remove(&key.slot);
                }
            }
        }
        true
    }

    /// Removes a watch from `watches` and the index (not from its connection's list).
    fn unindex(&mut self, key: &WatchKey) -> bool {
        let Some(watch) = self.watches.remove(key) else {
            return false;
        };
        let slot = space_slot(watch.space);
        let index = &mut self.index[slot];
        if let Some(watchers) = index.get_mut(&watch.prefix) {
            let empty = match watchers {
                Watchers::One(_) => true,
                Watchers::Many(keys) => {
                    keys.remove(key);
                    keys.is_empty()
                }
            };
            if empty {
                index.remove(&watch.prefix);
                let length = watch.prefix.len();
                if let Some(count) = self.lengths[slot].get_mut(&length) {
                    *count -= 1;
                    if *count == 0 {
                        self.lengths[slot].remove(&length);
                    }
                }
            }
        }
        true
    }

    /// Removes every watch of a connection (it closed).
    pub fn remove_connection(&mut self, slot: usize) {
        let Some((serial, ids)) = self.connections.remove(&slot) else {
            return;
        };
        for watch in ids {
            self.unindex(&WatchKey {
                slot,
                serial,
                watch,
            });
        }
    }

    /// Which of `events` each watch must get, as positions in `events` (nothing is copied:
    /// the caller encodes them straight from `events`, then hands them to
    /// [`WatchHub::record`]).
    pub fn route(&self, events: &[Event]) -> BTreeMap<WatchKey, Vec<usize>> {
        let mut routed: BTreeMap<WatchKey, Vec<usize>> = BTreeMap::new();
        if self.watches.is_empty() {
            return routed;
        }
        for (position, event) in events.iter().enumerate() {
            let slot = space_slot(event.space);
            let index = &self.index[slot];
            // One lookup per watched prefix length that fits the key.
            for &length in self.lengths[slot].keys() {
                if length > event.key.len() {
                    break;
                }
                let Some(watchers) = index.get(&event.key[..length]) else {
                    continue;
                };
                watchers.for_each(|key| {
                    let from = self.watches.get(key).map_or(0, |w| w.from);
                    if event.revision >= from {
                        routed.entry(*key).or_default().push(position);
                    }
                });
            }
        }
        routed
    }

    /// Appends applied events to the history (dropping the oldest revisions past its bounds).
    pub fn record(&mut self, events: Vec<Event>) {
        for event in events {
            self.revision = self.revision.max(event.revision);
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
    }

    /// [`WatchHub::route`] then [`WatchHub::record`], with the routed events copied (for
    /// callers with few watches, like the simulator and the tests).
    pub fn publish(&mut self, events: Vec<Event>) -> BTreeMap<WatchKey, Vec<Event>> {
        let routed = self
            .route(&events)
            .into_iter()
            .map(|(key, positions)| {
                let copies = positions.iter().map(|&p| events[p].clone()).collect();
                (key, copies)
            })
            .collect();
        self.record(events);
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
    fn one_connection_cannot_hold_more_than_its_share_of_watches() {
        let mut hub = WatchHub::new(0);
        let on = |slot: usize, watch: u64| WatchKey {
            slot,
            serial: 1,
            watch,
        };
        for watch in 0..WATCHES_PER_CONNECTION_MAX as u64 {
            hub.add(on(1, watch), Space::Kv, b"p/".to_vec(), 1).unwrap();
        }
        let over = WATCHES_PER_CONNECTION_MAX as u64;
        match hub.add(on(1, over), Space::Kv, b"p/".to_vec(), 1) {
            Err(WatchRefused::Limit(why)) => assert!(why.contains("a connection may hold")),
            other => panic!("over the limit: {other:?}"),
        }
        // Another connection is served, and events still reach every watch.
        hub.add(on(2, 0), Space::Kv, b"p/".to_vec(), 1).unwrap();
        let routed = hub.publish(vec![event(1, "p/x")]);
        assert_eq!(routed.len(), WATCHES_PER_CONNECTION_MAX + 1);
        // Closing the connection frees its share.
        hub.remove_connection(1);
        hub.add(on(1, over), Space::Kv, b"p/".to_vec(), 2).unwrap();
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
