//! The replicated state machine: what committed log entries do. Deterministic: the same
//! entries applied in the same order give the same state and the same answers on every
//! member, so any member can serve reads and any member can become leader.
//!
//! - `command`: the versioned binary encoding of requests (what goes into log entries) and
//!   of their outcomes;
//! - `kv`: the key-value store with a global revision, compare-and-swap, transactions, and
//!   exactly-once application of retried requests.

pub mod command;
pub mod kv;

pub use command::{Command, Compare, Condition, Op, Outcome, Request};
pub use kv::{KeyValue, StateMachine};
