//! The deterministic heart of accord: no sockets, threads, clocks or OS randomness.
//!
//! `raft` is consensus; `state` is the replicated state machine that committed entries drive;
//! `rng` is the seeded generator the core may draw from.

pub mod raft;
pub mod rng;
pub mod state;
