//! The Rust API: run a member in this process ([`Node`]), or talk to a cluster ([`Client`]);
//! open a [`Session`] to hold locks, lead elections, join groups, claim work and wait at
//! barriers; watch changes with a [`WatchStream`]. A node also contains a client, so an
//! embedded member uses the same calls as a remote one.

mod client;
mod keepalive;
mod node;
mod primitives;
mod session;
mod watch;

pub use crate::core::state::group::Member;
pub use crate::core::state::lock::Holder;
pub use crate::core::state::{Compare, Condition, Ended, Event, EventKind, KeyValue, Op, Space};
pub use crate::runtime::node::NodeConfig;
pub use crate::runtime::wire::{MembershipView, Status};
pub use client::{CancelHandle, Client, ClientConfig};
pub use node::Node;
pub use primitives::{session, Claim, Fence, LeaderChange, Leadership, Lock, Membership, Observer};
pub use session::{Session, SessionStatus};
pub use watch::{WatchItem, WatchStream};
