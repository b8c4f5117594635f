//! The only code that does I/O: the member's event loop (`node`), its connections and wire
//! protocol (`connection`, `wire`), the watch hub that streams change events to clients
//! (`watch`), and durable storage (`storage`).

pub mod connection;
pub mod node;
pub mod storage;
pub mod watch;
pub mod wire;
