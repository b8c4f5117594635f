//! The Rust API: run a member in this process ([`Node`]), or talk to a cluster ([`Client`]).
//! A node also contains a client, so an embedded member uses the same calls as a remote one.

mod client;
mod node;

pub use crate::core::state::{Compare, Condition, KeyValue, Op};
pub use crate::runtime::node::NodeConfig;
pub use crate::runtime::wire::Status;
pub use client::{CancelHandle, Client, ClientConfig};
pub use node::Node;
