//! The only code that does I/O. Today: durable storage (`storage`). The event loop, the
//! transport and the clock join it as the cluster learns to run over a network.

pub mod connection;
pub mod node;
pub mod storage;
pub mod wire;
