//! The replicated state machine: what committed log entries do. Deterministic: the same
//! entries applied in the same order give the same state and the same answers on every
//! member, so any member can serve reads and any member can become leader.
//!
//! - `command`: the versioned binary encoding of requests (what goes into log entries) and
//!   of their outcomes;
//! - `machine`: the state machine: the key-value store with a global revision,
//!   compare-and-swap and transactions, exactly-once application of retried requests, and
//!   the dispatch to sessions and primitives;
//! - `session`, `lock` (mutexes, read-write locks, semaphores, elections), `group`, `queue`,
//!   `barrier` (barriers and counters): the coordination primitives;
//! - `event`: the change events applying produces, for watches and blocking calls;
//! - `lease`: the leader's clock of session deadlines (sans-IO: time is passed in);
//! - `watch`: a member's bounded event history and the watches it routes events to.

pub mod barrier;
pub mod command;
pub mod event;
pub mod group;
pub mod lease;
pub mod lock;
pub mod machine;
pub mod queue;
pub mod session;
pub mod watch;

pub use command::{Command, Compare, Condition, LockKind, Mode, Op, Outcome, Request};
pub use event::{Ended, Event, EventKind, Space};
pub use machine::{KeyValue, StateMachine};
