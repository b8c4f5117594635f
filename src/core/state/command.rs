//! Requests as they are written into log entries, and their outcomes.
//!
//! ```text
//! request = version:u8 (=1) | client:u64 | sequence:u64 | command
//! command = kind:u8 | fields (length-prefixed byte strings, little-endian integers)
//! ```
//! `sequence` 0 means "do not deduplicate"; otherwise a client's requests carry increasing
//! sequence numbers and a retried one (same client and sequence) is applied only once.

use crate::codec::{Put, Reader};
use crate::limits::{KEY_BYTES_MAX, TXN_OPERATIONS_MAX, VALUE_BYTES_MAX};

/// Version of the request encoding.
pub const REQUEST_VERSION: u8 = 1;

/// What a transaction compares a key against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compare {
    /// The key exists (`true`) or does not (`false`).
    Exists(bool),
    /// The key holds exactly this value.
    Value(Vec<u8>),
    /// The key's version (writes since it was created) is this; 0 means absent.
    Version(u64),
    /// The key was last written at this revision; 0 means absent.
    ModRevision(u64),
}

/// One comparison of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// The key compared.
    pub key: Vec<u8>,
    /// What it must satisfy.
    pub compare: Compare,
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

/// A write to the replicated state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Set a key.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Set `key` to `value` only if it now holds `expected` (`None`: only if it is absent).
    CompareAndSwap {
        /// The key.
        key: Vec<u8>,
        /// The value it must hold, or `None` for "absent".
        expected: Option<Vec<u8>>,
        /// The new value.
        value: Vec<u8>,
    },
    /// If every condition holds, apply `success`, else `failure`; atomically, as one revision.
    Txn {
        /// The comparisons.
        conditions: Vec<Condition>,
        /// Writes applied when all hold.
        success: Vec<Op>,
        /// Writes applied otherwise.
        failure: Vec<Op>,
    },
}

/// A command with the identity that makes retries idempotent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The issuing client (random per client process).
    pub client: u64,
    /// The client's sequence number (0: no deduplication).
    pub sequence: u64,
    /// What to do.
    pub command: Command,
}

/// What applying a request did. Every outcome carries the revision after it was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A put was applied.
    Put {
        /// Revision after the write.
        revision: u64,
    },
    /// A delete was applied.
    Delete {
        /// Revision after the write.
        revision: u64,
        /// Whether the key existed.
        deleted: bool,
    },
    /// A compare-and-swap was evaluated.
    CompareAndSwap {
        /// Revision after it.
        revision: u64,
        /// Whether the value was swapped.
        swapped: bool,
    },
    /// A transaction was evaluated.
    Txn {
        /// Revision after it.
        revision: u64,
        /// Whether the conditions held (success branch applied).
        succeeded: bool,
    },
    /// The request is older than the last one this client had applied; it was not applied
    /// (the client had already moved on).
    Stale {
        /// Current revision.
        revision: u64,
    },
}

impl Outcome {
    /// The revision the outcome was served at.
    pub fn revision(&self) -> u64 {
        match self {
            Outcome::Put { revision }
            | Outcome::Delete { revision, .. }
            | Outcome::CompareAndSwap { revision, .. }
            | Outcome::Txn { revision, .. }
            | Outcome::Stale { revision } => *revision,
        }
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (kind, revision, flag) = match self {
            Outcome::Put { revision } => (1, revision, false),
            Outcome::Delete { revision, deleted } => (2, revision, *deleted),
            Outcome::CompareAndSwap { revision, swapped } => (3, revision, *swapped),
            Outcome::Txn {
                revision,
                succeeded,
            } => (4, revision, *succeeded),
            Outcome::Stale { revision } => (5, revision, false),
        };
        out.put_u8(kind);
        out.put_u64(*revision);
        out.put_u8(flag as u8);
    }

    /// Decodes what [`Outcome::encode`] wrote.
    pub fn decode(reader: &mut Reader) -> Result<Outcome, String> {
        let kind = reader.u8()?;
        let revision = reader.u64()?;
        let flag = reader.u8()? != 0;
        Ok(match kind {
            1 => Outcome::Put { revision },
            2 => Outcome::Delete {
                revision,
                deleted: flag,
            },
            3 => Outcome::CompareAndSwap {
                revision,
                swapped: flag,
            },
            4 => Outcome::Txn {
                revision,
                succeeded: flag,
            },
            5 => Outcome::Stale { revision },
            other => return Err(format!("unknown outcome kind {other}")),
        })
    }
}

fn put_op(out: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Put { key, value } => {
            out.put_u8(1);
            out.put_bytes(key);
            out.put_bytes(value);
        }
        Op::Delete { key } => {
            out.put_u8(2);
            out.put_bytes(key);
        }
    }
}

fn read_op(reader: &mut Reader) -> Result<Op, String> {
    match reader.u8()? {
        1 => Ok(Op::Put {
            key: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
            value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
        }),
        2 => Ok(Op::Delete {
            key: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
        }),
        other => Err(format!("unknown transaction operation {other}")),
    }
}

fn put_condition(out: &mut Vec<u8>, condition: &Condition) {
    out.put_bytes(&condition.key);
    match &condition.compare {
        Compare::Exists(exists) => {
            out.put_u8(1);
            out.put_u8(*exists as u8);
        }
        Compare::Value(value) => {
            out.put_u8(2);
            out.put_bytes(value);
        }
        Compare::Version(version) => {
            out.put_u8(3);
            out.put_u64(*version);
        }
        Compare::ModRevision(revision) => {
            out.put_u8(4);
            out.put_u64(*revision);
        }
    }
}

fn read_condition(reader: &mut Reader) -> Result<Condition, String> {
    let key = reader.bytes(KEY_BYTES_MAX)?.to_vec();
    let compare = match reader.u8()? {
        1 => Compare::Exists(reader.u8()? != 0),
        2 => Compare::Value(reader.bytes(VALUE_BYTES_MAX)?.to_vec()),
        3 => Compare::Version(reader.u64()?),
        4 => Compare::ModRevision(reader.u64()?),
        other => return Err(format!("unknown comparison {other}")),
    };
    Ok(Condition { key, compare })
}

fn read_list<T>(
    reader: &mut Reader,
    read: impl Fn(&mut Reader) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let count = reader.u32()? as usize;
    if count > TXN_OPERATIONS_MAX {
        return Err(format!(
            "{count} items exceed the limit of {TXN_OPERATIONS_MAX}"
        ));
    }
    (0..count).map(|_| read(reader)).collect()
}

impl Request {
    /// The encoding written into a log entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.put_u8(REQUEST_VERSION);
        out.put_u64(self.client);
        out.put_u64(self.sequence);
        self.command.encode(&mut out);
        out
    }

    /// Decodes a log entry's request; an error for anything malformed (never a panic).
    pub fn decode(bytes: &[u8]) -> Result<Request, String> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8()?;
        if version != REQUEST_VERSION {
            return Err(format!(
                "request encoding version {version} is not supported"
            ));
        }
        let client = reader.u64()?;
        let sequence = reader.u64()?;
        let command = Command::decode(&mut reader)?;
        reader.finish()?;
        Ok(Request {
            client,
            sequence,
            command,
        })
    }
}

impl Command {
    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Put { key, value } => {
                out.put_u8(1);
                out.put_bytes(key);
                out.put_bytes(value);
            }
            Command::Delete { key } => {
                out.put_u8(2);
                out.put_bytes(key);
            }
            Command::CompareAndSwap {
                key,
                expected,
                value,
            } => {
                out.put_u8(3);
                out.put_bytes(key);
                out.put_u8(expected.is_some() as u8);
                out.put_bytes(expected.as_deref().unwrap_or_default());
                out.put_bytes(value);
            }
            Command::Txn {
                conditions,
                success,
                failure,
            } => {
                out.put_u8(4);
                out.put_u32(conditions.len() as u32);
                conditions.iter().for_each(|c| put_condition(out, c));
                for ops in [success, failure] {
                    out.put_u32(ops.len() as u32);
                    ops.iter().for_each(|op| put_op(out, op));
                }
            }
        }
    }

    /// Decodes what [`Command::encode`] wrote.
    pub fn decode(reader: &mut Reader) -> Result<Command, String> {
        Ok(match reader.u8()? {
            1 => Command::Put {
                key: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
                value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
            },
            2 => Command::Delete {
                key: reader.bytes(KEY_BYTES_MAX)?.to_vec(),
            },
            3 => {
                let key = reader.bytes(KEY_BYTES_MAX)?.to_vec();
                let has_expected = reader.u8()? != 0;
                let expected = reader.bytes(VALUE_BYTES_MAX)?.to_vec();
                Command::CompareAndSwap {
                    key,
                    expected: has_expected.then_some(expected),
                    value: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
                }
            }
            4 => Command::Txn {
                conditions: read_list(reader, read_condition)?,
                success: read_list(reader, read_op)?,
                failure: read_list(reader, read_op)?,
            },
            other => return Err(format!("unknown command kind {other}")),
        })
    }

    /// Checks sizes and counts against the limits, with a message naming what is too big.
    pub fn validate(&self) -> Result<(), String> {
        let key = |key: &[u8]| {
            if key.is_empty() || key.len() > KEY_BYTES_MAX {
                return Err(format!(
                    "keys must be 1..={KEY_BYTES_MAX} bytes, not {}",
                    key.len()
                ));
            }
            Ok(())
        };
        let value = |value: &[u8]| {
            if value.len() > VALUE_BYTES_MAX {
                return Err(format!(
                    "values must be at most {VALUE_BYTES_MAX} bytes, not {}",
                    value.len()
                ));
            }
            Ok(())
        };
        match self {
            Command::Put { key: k, value: v } => key(k).and(value(v)),
            Command::Delete { key: k } => key(k),
            Command::CompareAndSwap {
                key: k,
                expected,
                value: v,
            } => key(k)
                .and(value(v))
                .and(value(expected.as_deref().unwrap_or_default())),
            Command::Txn {
                conditions,
                success,
                failure,
            } => {
                let count = conditions.len() + success.len() + failure.len();
                if count > TXN_OPERATIONS_MAX {
                    return Err(format!(
                        "a transaction may hold {TXN_OPERATIONS_MAX} comparisons and operations, not {count}"
                    ));
                }
                for condition in conditions {
                    key(&condition.key)?;
                }
                for op in success.iter().chain(failure) {
                    match op {
                        Op::Put { key: k, value: v } => key(k).and(value(v))?,
                        Op::Delete { key: k } => key(k)?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_garbage_is_refused() {
        let request = Request {
            client: 9,
            sequence: 4,
            command: Command::Txn {
                conditions: vec![Condition {
                    key: b"k".to_vec(),
                    compare: Compare::Version(3),
                }],
                success: vec![Op::Put {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                }],
                failure: vec![Op::Delete { key: b"j".to_vec() }],
            },
        };
        let bytes = request.encode();
        assert_eq!(Request::decode(&bytes).unwrap(), request);
        for cut in 0..bytes.len() {
            assert!(Request::decode(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[0] = 2;
        assert!(Request::decode(&bad).is_err());
    }
}
