//! The only code that does I/O: the member's event loop (`node`), its connections and wire
//! protocol (`connection`, `wire`), and durable storage (`storage`).

pub mod access;
pub mod connection;
pub mod log;
pub mod members;
pub mod metrics;
pub mod node;
pub mod storage;
pub mod tls;
pub mod wire;
