//! The minimal replicated key-value store the simulator's clients talk to: one `u64` register
//! per key, with put, get and compare-and-swap. (The product's state machine lives in
//! `core::state`; this one exists to give the simulator commands whose results it can check.)

use std::collections::BTreeMap;

use super::history::{OpInput, OpOutput};

/// Encoded size of a [`Command`].
pub const COMMAND_BYTES: usize = 33;

/// One client command, as carried in a log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// The issuing client.
    pub client: u32,
    /// The client's sequence number for this operation.
    pub seq: u64,
    /// The register.
    pub key: u32,
    /// What to do (never `Get`: reads go through ReadIndex, not the log).
    pub input: OpInput,
}

impl Command {
    /// Fixed-size little-endian encoding.
    pub fn encode(&self) -> [u8; COMMAND_BYTES] {
        let (tag, a, b) = match self.input {
            OpInput::Put(value) => (1u8, value, 0),
            OpInput::Get => (2, 0, 0),
            OpInput::Cas { expected, new } => (3, expected, new),
        };
        let mut out = [0u8; COMMAND_BYTES];
        out[0..4].copy_from_slice(&self.client.to_le_bytes());
        out[4..12].copy_from_slice(&self.seq.to_le_bytes());
        out[12..16].copy_from_slice(&self.key.to_le_bytes());
        out[16] = tag;
        out[17..25].copy_from_slice(&a.to_le_bytes());
        out[25..33].copy_from_slice(&b.to_le_bytes());
        out
    }

    /// Decodes; `None` for anything that is not a well-formed command.
    pub fn decode(bytes: &[u8]) -> Option<Command> {
        if bytes.len() != COMMAND_BYTES {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        let (a, b) = (u64_at(17), u64_at(25));
        let input = match bytes[16] {
            1 => OpInput::Put(a),
            2 => OpInput::Get,
            3 => OpInput::Cas {
                expected: a,
                new: b,
            },
            _ => return None,
        };
        Some(Command {
            client: u32_at(0),
            seq: u64_at(4),
            key: u32_at(12),
            input,
        })
    }
}

/// The registers of one replica.
#[derive(Clone, Debug, Default)]
pub struct KvStore {
    values: BTreeMap<u32, u64>,
}

impl KvStore {
    /// Applies a command and returns what its client is told.
    pub fn apply(&mut self, command: &Command) -> OpOutput {
        match command.input {
            OpInput::Put(value) => {
                self.values.insert(command.key, value);
                OpOutput::Written
            }
            OpInput::Get => OpOutput::Value(self.get(command.key)),
            OpInput::Cas { expected, new } => {
                let swapped = self.get(command.key) == Some(expected);
                if swapped {
                    self.values.insert(command.key, new);
                }
                OpOutput::Swapped(swapped)
            }
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: u32) -> Option<u64> {
        self.values.get(&key).copied()
    }

    /// Encodes every register (the snapshot of this state machine): a count, then
    /// (key, value) pairs, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.values.len() * 12);
        out.extend_from_slice(&(self.values.len() as u32).to_le_bytes());
        for (key, value) in &self.values {
            out.extend_from_slice(&key.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
        out
    }

    /// Decodes what [`KvStore::encode`] wrote; `None` for anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<KvStore> {
        let count = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        if bytes.len() != 4 + count.checked_mul(12)? {
            return None;
        }
        let mut values = BTreeMap::new();
        for pair in bytes[4..].chunks_exact(12) {
            let key = u32::from_le_bytes(pair[..4].try_into().ok()?);
            let value = u64::from_le_bytes(pair[4..].try_into().ok()?);
            values.insert(key, value);
        }
        Some(KvStore { values })
    }

    /// A fingerprint of the whole state, to compare replicas cheaply.
    pub fn fingerprint(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (key, value) in &self.values {
            for byte in key.to_le_bytes().iter().chain(&value.to_le_bytes()) {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_garbage_is_refused() {
        let command = Command {
            client: 3,
            seq: 99,
            key: 2,
            input: OpInput::Cas {
                expected: 5,
                new: 6,
            },
        };
        assert_eq!(Command::decode(&command.encode()), Some(command));
        assert_eq!(Command::decode(&[1, 2, 3]), None);
        let mut bad = command.encode();
        bad[16] = 9;
        assert_eq!(Command::decode(&bad), None);
    }

    #[test]
    fn snapshots_round_trip_and_malformed_ones_are_refused() {
        let mut kv = KvStore::default();
        for key in 0..5 {
            kv.apply(&Command {
                client: 0,
                seq: 0,
                key,
                input: OpInput::Put(u64::from(key) * 7),
            });
        }
        let encoded = kv.encode();
        let decoded = KvStore::decode(&encoded).unwrap();
        assert_eq!(decoded.fingerprint(), kv.fingerprint());
        assert!(KvStore::decode(&encoded[..encoded.len() - 1]).is_none());
        assert!(KvStore::decode(&[255, 255, 255, 255]).is_none());
        assert!(KvStore::decode(&[]).is_none());
    }

    #[test]
    fn cas_swaps_only_on_match() {
        let mut kv = KvStore::default();
        let cas = |expected, new| Command {
            client: 1,
            seq: 1,
            key: 1,
            input: OpInput::Cas { expected, new },
        };
        assert_eq!(kv.apply(&cas(0, 1)), OpOutput::Swapped(false));
        kv.apply(&Command {
            input: OpInput::Put(4),
            ..cas(0, 0)
        });
        assert_eq!(kv.apply(&cas(4, 7)), OpOutput::Swapped(true));
        assert_eq!(kv.get(1), Some(7));
    }
}
