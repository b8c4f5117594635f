//! The key-value state machine: keys with values, versions and revisions, one global revision
//! counter, and the last outcome per client so that a retried request is applied once.

use std::collections::BTreeMap;

use super::command::{Command, Compare, Condition, Op, Outcome, Request};
use crate::codec::{Put, Reader};
use crate::limits::{
    CLIENT_RESULTS_MAX, KEY_BYTES_MAX, RANGE_BYTES_MAX, RANGE_KEY_OVERHEAD_BYTES,
    RANGE_RESULTS_MAX, VALUE_BYTES_MAX,
};
use crate::types::Index;

/// One key as stored, with its history counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Revision of the write that created the key.
    pub create_revision: u64,
    /// Revision of the last write to the key.
    pub mod_revision: u64,
    /// Writes since the key was created (1 after the first).
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    value: Vec<u8>,
    create_revision: u64,
    mod_revision: u64,
    version: u64,
}

/// The last request applied for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ClientRecord {
    sequence: u64,
    outcome: Outcome,
    /// Revision when the client was last active (for forgetting the least recent one).
    last_active: u64,
}

/// The replicated key-value state of one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateMachine {
    revision: u64,
    applied_index: Index,
    data: BTreeMap<Vec<u8>, Stored>,
    clients: BTreeMap<u64, ClientRecord>,
    /// (last_active, client) for every remembered client, to find the least recent one.
    clients_by_activity: BTreeMap<(u64, u64), ()>,
}

/// What applying one log entry produced, for answering the client that asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The client that issued the request.
    pub client: u64,
    /// Its sequence number.
    pub sequence: u64,
    /// The outcome (the stored one, for a retry of an applied request).
    pub outcome: Outcome,
}

impl StateMachine {
    /// An empty store at revision 0.
    pub fn new() -> StateMachine {
        StateMachine::default()
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The last log index applied.
    pub fn applied_index(&self) -> Index {
        self.applied_index
    }

    /// Applies the entry at `index` holding `data`. Malformed data is skipped identically on
    /// every member (it cannot come from our own proposals, which are validated first).
    pub fn apply(&mut self, index: Index, data: &[u8]) -> Option<Applied> {
        debug_assert!(index > self.applied_index, "entries applied out of order");
        self.applied_index = index;
        let request = Request::decode(data).ok()?;
        if request.command.validate().is_err() {
            return None;
        }
        let outcome = self.apply_request(&request);
        Some(Applied {
            client: request.client,
            sequence: request.sequence,
            outcome,
        })
    }

    /// Records that a no-op entry at `index` was applied.
    pub fn apply_noop(&mut self, index: Index) {
        self.applied_index = self.applied_index.max(index);
    }

    fn apply_request(&mut self, request: &Request) -> Outcome {
        if request.sequence != 0 {
            if let Some(record) = self.clients.get(&request.client) {
                if request.sequence == record.sequence {
                    return record.outcome.clone(); // a retry: answer, do not apply again
                }
                if request.sequence < record.sequence {
                    return Outcome::Stale {
                        revision: self.revision,
                    };
                }
            }
        }
        let outcome = self.execute(&request.command);
        if request.sequence != 0 {
            self.remember(request.client, request.sequence, outcome.clone());
        }
        outcome
    }

    fn execute(&mut self, command: &Command) -> Outcome {
        match command {
            Command::Put { key, value } => {
                self.revision += 1;
                self.put(key, value);
                Outcome::Put {
                    revision: self.revision,
                }
            }
            Command::Delete { key } => {
                let deleted = self.data.contains_key(key);
                if deleted {
                    self.revision += 1;
                    self.data.remove(key);
                }
                Outcome::Delete {
                    revision: self.revision,
                    deleted,
                }
            }
            Command::CompareAndSwap {
                key,
                expected,
                value,
            } => {
                let current = self.data.get(key).map(|s| &s.value);
                let swapped = current == expected.as_ref();
                if swapped {
                    self.revision += 1;
                    self.put(key, value);
                }
                Outcome::CompareAndSwap {
                    revision: self.revision,
                    swapped,
                }
            }
            Command::Txn {
                conditions,
                success,
                failure,
            } => {
                let succeeded = conditions.iter().all(|c| self.holds(c));
                let ops = if succeeded { success } else { failure };
                if !ops.is_empty() {
                    self.revision += 1;
                    for op in ops {
                        match op {
                            Op::Put { key, value } => self.put(key, value),
                            Op::Delete { key } => {
                                self.data.remove(key);
                            }
                        }
                    }
                }
                Outcome::Txn {
                    revision: self.revision,
                    succeeded,
                }
            }
        }
    }

    /// Writes `key` at the current revision.
    fn put(&mut self, key: &[u8], value: &[u8]) {
        let revision = self.revision;
        match self.data.get_mut(key) {
            Some(stored) => {
                stored.value = value.to_vec();
                stored.mod_revision = revision;
                stored.version += 1;
            }
            None => {
                self.data.insert(
                    key.to_vec(),
                    Stored {
                        value: value.to_vec(),
                        create_revision: revision,
                        mod_revision: revision,
                        version: 1,
                    },
                );
            }
        }
    }

    fn holds(&self, condition: &Condition) -> bool {
        let stored = self.data.get(&condition.key);
        match &condition.compare {
            Compare::Exists(exists) => stored.is_some() == *exists,
            Compare::Value(value) => stored.is_some_and(|s| &s.value == value),
            Compare::Version(version) => stored.map_or(0, |s| s.version) == *version,
            Compare::ModRevision(revision) => stored.map_or(0, |s| s.mod_revision) == *revision,
        }
    }

    fn remember(&mut self, client: u64, sequence: u64, outcome: Outcome) {
        let last_active = self.revision;
        if let Some(old) = self.clients.insert(
            client,
            ClientRecord {
                sequence,
                outcome,
                last_active,
            },
        ) {
            self.clients_by_activity.remove(&(old.last_active, client));
        }
        self.clients_by_activity.insert((last_active, client), ());
        // Bounded: forget the least recently active client once over the limit.
        while self.clients.len() > CLIENT_RESULTS_MAX {
            let Some(((_, oldest), ())) = self.clients_by_activity.pop_first() else {
                break;
            };
            self.clients.remove(&oldest);
        }
    }

    /// The key, if present.
    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.data.get(key).map(|stored| to_key_value(key, stored))
    }

    /// Keys starting with `prefix`, in order, at most `limit` (capped by
    /// [`RANGE_RESULTS_MAX`]) and about [`RANGE_BYTES_MAX`] bytes (always at least one key);
    /// the flag says whether more matched.
    pub fn range(&self, prefix: &[u8], limit: usize) -> (Vec<KeyValue>, bool) {
        let limit = limit.clamp(1, RANGE_RESULTS_MAX);
        let mut matching = self
            .data
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .peekable();
        let mut found = Vec::new();
        let mut bytes = 0usize;
        // Bounded by `limit` and the byte budget.
        while let Some((key, stored)) = matching
            .next_if(|_| found.len() < limit && (found.is_empty() || bytes < RANGE_BYTES_MAX))
        {
            bytes += key.len() + stored.value.len() + RANGE_KEY_OVERHEAD_BYTES;
            found.push(to_key_value(key, stored));
        }
        let more = matching.peek().is_some();
        (found, more)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Encodes the whole state (the snapshot of this state machine).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        let _ = self.encode_into(&mut out); // writing to a Vec cannot fail
        out
    }

    /// Bytes [`StateMachine::encode`] produces, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        let keys: usize = self
            .data
            .iter()
            .map(|(key, stored)| 8 + key.len() + stored.value.len() + 24)
            .sum();
        let outcome_bytes = 10;
        1 + 24 + keys + 8 + self.clients.len() * (24 + outcome_bytes)
    }

    /// Streams the encoding into `writer`, a key at a time (no copy of the whole state is
    /// ever held in memory).
    pub fn encode_into(&self, writer: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(4096);
        out.put_u8(1); // snapshot encoding version
        out.put_u64(self.revision);
        out.put_u64(self.applied_index);
        out.put_u64(self.data.len() as u64);
        for (key, stored) in &self.data {
            out.put_bytes(key);
            out.put_bytes(&stored.value);
            out.put_u64(stored.create_revision);
            out.put_u64(stored.mod_revision);
            out.put_u64(stored.version);
            if out.len() >= 64 * 1024 {
                writer.write_all(&out)?;
                out.clear();
            }
        }
        out.put_u64(self.clients.len() as u64);
        for (client, record) in &self.clients {
            out.put_u64(*client);
            out.put_u64(record.sequence);
            out.put_u64(record.last_active);
            record.outcome.encode(&mut out);
            if out.len() >= 64 * 1024 {
                writer.write_all(&out)?;
                out.clear();
            }
        }
        writer.write_all(&out)
    }

    /// Decodes what [`StateMachine::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<StateMachine, String> {
        let mut reader = Reader::new(bytes);
        if reader.u8()? != 1 {
            return Err("unknown state snapshot version".into());
        }
        let mut state = StateMachine {
            revision: reader.u64()?,
            applied_index: reader.u64()?,
            ..StateMachine::default()
        };
        let keys = reader.u64()?;
        // Bounded by the input: every key takes at least 32 bytes.
        if keys > reader.bytes.len() as u64 / 32 {
            return Err(format!("{keys} keys cannot fit in the snapshot"));
        }
        for _ in 0..keys {
            let key = reader.bytes(KEY_BYTES_MAX)?.to_vec();
            let stored = Stored {
                value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
                create_revision: reader.u64()?,
                mod_revision: reader.u64()?,
                version: reader.u64()?,
            };
            state.data.insert(key, stored);
        }
        let clients = reader.u64()?;
        if clients > CLIENT_RESULTS_MAX as u64 {
            return Err(format!("{clients} client records exceed the limit"));
        }
        for _ in 0..clients {
            let client = reader.u64()?;
            let record = ClientRecord {
                sequence: reader.u64()?,
                last_active: reader.u64()?,
                outcome: Outcome::decode(&mut reader)?,
            };
            state
                .clients_by_activity
                .insert((record.last_active, client), ());
            state.clients.insert(client, record);
        }
        reader.finish()?;
        Ok(state)
    }
}

fn to_key_value(key: &[u8], stored: &Stored) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: stored.value.clone(),
        create_revision: stored.create_revision,
        mod_revision: stored.mod_revision,
        version: stored.version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(client: u64, sequence: u64, command: Command) -> Vec<u8> {
        Request {
            client,
            sequence,
            command,
        }
        .encode()
    }

    fn put(key: &str, value: &str) -> Command {
        Command::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn revisions_versions_and_ranges() {
        let mut state = StateMachine::new();
        state.apply(1, &request(1, 0, put("a/1", "x")));
        state.apply(2, &request(1, 0, put("a/2", "y")));
        state.apply(3, &request(1, 0, put("a/1", "z")));
        state.apply(4, &request(1, 0, put("b", "w")));
        let a1 = state.get(b"a/1").unwrap();
        assert_eq!((a1.create_revision, a1.mod_revision, a1.version), (1, 3, 2));
        let (found, more) = state.range(b"a/", 10);
        assert_eq!(found.len(), 2);
        assert!(!more);
        let (found, more) = state.range(b"a/", 1);
        assert_eq!((found.len(), more), (1, true));
        assert_eq!(state.revision(), 4);
    }

    #[test]
    fn a_range_of_large_values_stops_at_its_byte_budget() {
        let mut state = StateMachine::new();
        let big = vec![b'x'; 400 * 1024];
        for i in 0..10u64 {
            let command = Command::Put {
                key: format!("big/{i}").into_bytes(),
                value: big.clone(),
            };
            state.apply(i + 1, &request(1, 0, command));
        }
        let (found, more) = state.range(b"big/", 100);
        assert_eq!(
            found.len(),
            2,
            "the second 400 KiB value crosses the 512 KiB budget"
        );
        assert!(more);
    }

    #[test]
    fn a_retried_request_is_applied_once_and_older_ones_are_stale() {
        let mut state = StateMachine::new();
        let first = state.apply(1, &request(7, 1, put("k", "v1"))).unwrap();
        let retry = state.apply(2, &request(7, 1, put("k", "v1"))).unwrap();
        assert_eq!(first.outcome, retry.outcome);
        assert_eq!(
            state.get(b"k").unwrap().version,
            1,
            "the retry was applied again"
        );
        state.apply(3, &request(7, 2, put("k", "v2")));
        let stale = state.apply(4, &request(7, 1, put("k", "v1"))).unwrap();
        assert!(matches!(stale.outcome, Outcome::Stale { .. }));
        assert_eq!(state.get(b"k").unwrap().value, b"v2");
    }

    #[test]
    fn compare_and_swap_and_transactions_are_atomic() {
        let mut state = StateMachine::new();
        let cas = |expected: Option<&str>, value: &str| Command::CompareAndSwap {
            key: b"k".to_vec(),
            expected: expected.map(|e| e.as_bytes().to_vec()),
            value: value.into(),
        };
        let created = state.apply(1, &request(1, 0, cas(None, "a"))).unwrap();
        assert!(matches!(
            created.outcome,
            Outcome::CompareAndSwap { swapped: true, .. }
        ));
        let lost = state.apply(2, &request(1, 0, cas(Some("b"), "c"))).unwrap();
        assert!(matches!(
            lost.outcome,
            Outcome::CompareAndSwap {
                swapped: false,
                revision: 1
            }
        ));
        let txn = Command::Txn {
            conditions: vec![Condition {
                key: b"k".to_vec(),
                compare: Compare::Value(b"a".to_vec()),
            }],
            success: vec![
                Op::Put {
                    key: b"k".to_vec(),
                    value: b"b".to_vec(),
                },
                Op::Put {
                    key: b"other".to_vec(),
                    value: b"1".to_vec(),
                },
            ],
            failure: vec![],
        };
        let done = state.apply(3, &request(1, 0, txn)).unwrap();
        assert_eq!(
            done.outcome,
            Outcome::Txn {
                revision: 2,
                succeeded: true
            }
        );
        assert_eq!(
            state.get(b"other").unwrap().mod_revision,
            2,
            "one revision per txn"
        );
    }

    #[test]
    fn snapshots_round_trip_and_garbage_is_skipped_deterministically() {
        let mut state = StateMachine::new();
        state.apply(1, &request(3, 1, put("k", "v")));
        assert!(state.apply(2, b"garbage").is_none());
        assert_eq!(state.applied_index(), 2);
        let restored = StateMachine::decode(&state.encode()).unwrap();
        assert_eq!(restored, state);
        assert_eq!(state.encode().len(), state.encoded_len());
        let encoded = state.encode();
        for cut in 0..encoded.len() {
            assert!(StateMachine::decode(&encoded[..cut]).is_err());
        }
    }

    #[test]
    fn the_client_table_is_bounded() {
        let mut state = StateMachine::new();
        for client in 0..(CLIENT_RESULTS_MAX as u64 + 10) {
            state.apply(client + 1, &request(client, 1, put("k", "v")));
        }
        assert_eq!(state.clients.len(), CLIENT_RESULTS_MAX);
        assert!(
            !state.clients.contains_key(&0),
            "the least recent client was kept"
        );
    }
}
