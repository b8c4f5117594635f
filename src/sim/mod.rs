//! The deterministic simulator: many consensus cores, one seed, virtual time, a faulty network.
//!
//! - `cluster`: nodes driven by the Ready contract, with safety checks after every step;
//! - `network`: the event queue and the link fault model;
//! - `nemesis`: the fault schedule and malformed-message injection;
//! - `workload`: clients issuing put, get and compare-and-swap, recording a history;
//! - `coord`: clients with sessions taking locks, leading elections and claiming work, and
//!   watchers streaming change events, with the checks of those primitives;
//! - `linearizability`: the checker every history goes through;
//! - `run`: one seed end to end (faults, healing, liveness, linearizability) and many in
//!   parallel.

pub mod cluster;
pub mod coord;
pub mod history;
pub mod invariants;
pub mod kv;
pub mod linearizability;
pub mod nemesis;
pub mod network;
pub mod run;
pub mod workload;

pub use cluster::{Cluster, RaftSettings};
pub use nemesis::FaultSet;
pub use run::{run_seed, run_seeds, SeedReport, SimOptions, Summary};
