//! accord — an embeddable coordination engine.
//!
//! A service links this library and can join a cluster, elect a leader, take fenced locks,
//! and replicate small state, with no separate coordination service to run.
//!
//! Layers, dependencies pointing downward only (see `DESIGN.md` in the project's shared docs):
//! - [`core`]: sans-IO, deterministic consensus ([`core::raft`]) — no I/O, no clock.
//! - [`api`]: the Rust API — [`api::Node`] runs a member in this process, [`api::Client`]
//!   talks to a cluster.
//! - [`runtime`]: the only I/O — the member's event loop, connections (TLS), the wire
//!   protocol, access control and durable storage on real files.
//! - [`sim`]: a deterministic simulator that drives many cores through a faulty network and
//!   checks safety, liveness and linearizability after every step.
//! - [`local_cluster`]: a cluster of `accord server` processes on loopback (demo, benchmarks,
//!   tests).
//! - [`limits`], [`types`], [`error`]: bounds, shared data types, the error type.

#![warn(missing_docs)]

pub mod api;
pub mod codec;
pub mod core;
pub mod error;
pub mod ffi;
pub mod limits;
pub mod local_cluster;
#[cfg(feature = "python")]
pub mod python;
pub mod runtime;
pub mod sim;
pub mod types;

pub use error::{Error, Result};

/// The Rust guide's examples (`docs/guides/rust.md`), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/guides/rust.md")]
pub struct RustGuide;
