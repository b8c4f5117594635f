//! The deterministic simulator: many consensus cores, one seed, virtual time, a faulty network.

pub mod history;
