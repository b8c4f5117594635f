//! The deterministic heart of accord: no sockets, threads, clocks or OS randomness.
//!
//! `raft` is consensus; `rng` is the seeded generator the core may draw from. The replicated
//! state machine (`state`) joins in a later issue.

pub mod raft;
pub mod rng;
