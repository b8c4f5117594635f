//! Watch streams: many watches over one connection to a member, each resuming where it left
//! off when the connection fails (on another member if need be). Events come in revision
//! order with no gaps and no duplicates; a watch whose next revision left the member's
//! history ends with [`WatchItem::Compacted`], so the caller lists again instead of silently
//! missing changes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::client::{deadline_after, unexpected, Client, ClientConfig};
use crate::core::state::{Event, Space};
use crate::error::{Error, Result};
use crate::runtime::wire::{ClientOp, ClientReply, Frame};

/// What a watch stream yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    /// Events of one watch, in revision order.
    Events(Vec<Event>),
    /// The watch's next revision is no longer in the member's history; it ended. List again
    /// (at `revision` or later) and watch from there.
    Compacted {
        /// The member's revision when it said so.
        revision: u64,
    },
    /// The member ended the watch (a slow consumer); the reason says why. It ended.
    Cancelled(String),
}

struct WatchState {
    space: Space,
    prefix: Vec<u8>,
    /// The next revision this watch wants (one past the last event delivered).
    next: u64,
}

/// A connection carrying watches. Not shared between threads: one consumer reads it.
pub struct WatchStream {
    client: Client,
    watches: BTreeMap<u64, WatchState>,
    next_id: u64,
    connected: bool,
    /// Watches found compacted while resuming, to report from `next`.
    compacted: Vec<(u64, u64)>,
    /// How long to keep trying to reach a member before a call fails.
    timeout: Duration,
}

impl WatchStream {
    /// A stream on a connection of its own (opened on first use).
    pub fn open(config: ClientConfig) -> Result<WatchStream> {
        let timeout = config.timeout;
        Ok(WatchStream {
            client: Client::connect(config)?,
            watches: BTreeMap::new(),
            next_id: 1,
            connected: false,
            compacted: Vec::new(),
            timeout,
        })
    }

    /// Starts watching `space` keys under `prefix` from revision `from` (1: from the oldest
    /// event the member still has, 0 is treated as 1). Returns the watch's id, or
    /// `Ok(Err(revision))` when `from` is already compacted (list at `revision`, then watch
    /// from `revision + 1`).
    pub fn add(
        &mut self,
        space: Space,
        prefix: &[u8],
        from: u64,
    ) -> Result<std::result::Result<u64, u64>> {
        let id = self.next_id;
        self.next_id += 1;
        let state = WatchState {
            space,
            prefix: prefix.to_vec(),
            next: from.max(1),
        };
        let deadline = deadline_after(self.timeout);
        self.watches.insert(id, state);
        match self.register(id, deadline) {
            Ok(None) => Ok(Ok(id)),
            Ok(Some(revision)) => {
                self.watches.remove(&id);
                Ok(Err(revision))
            }
            Err(error) => {
                self.watches.remove(&id);
                Err(error)
            }
        }
    }

    /// Stops a watch (events already received for it may still be returned once).
    pub fn remove(&mut self, watch: u64) -> Result<()> {
        if self.watches.remove(&watch).is_some() && self.connected {
            let deadline = deadline_after(self.timeout);
            let _ = self
                .client
                .stream_request(&ClientOp::Unwatch { watch }, deadline);
        }
        Ok(())
    }

    /// Number of live watches.
    pub fn len(&self) -> usize {
        self.watches.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// The next item of any watch, waiting up to `timeout`; `Ok(None)` when nothing came.
    /// Reconnects and resumes every watch when the connection fails.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<(u64, WatchItem)>> {
        let deadline = deadline_after(timeout);
        // Bounded by the deadline.
        loop {
            if let Some((id, revision)) = self.compacted.pop() {
                return Ok(Some((id, WatchItem::Compacted { revision })));
            }
            if !self.connected {
                self.reconnect(deadline)?;
                if !self.compacted.is_empty() {
                    continue;
                }
                if !self.connected {
                    return Ok(None);
                }
            }
            match self.client.next_pushed(deadline) {
                Ok(None) => return Ok(None),
                Ok(Some(Frame::Events { watch, events })) => {
                    let Some(state) = self.watches.get_mut(&watch) else {
                        continue; // removed since
                    };
                    // A resumed watch may repeat nothing: drop what was delivered already.
                    let events: Vec<Event> = events
                        .into_iter()
                        .filter(|e| e.revision >= state.next)
                        .collect();
                    if let Some(last) = events.last() {
                        state.next = last.revision + 1;
                        return Ok(Some((watch, WatchItem::Events(events))));
                    }
                }
                Ok(Some(Frame::WatchEnded { watch, reason })) => {
                    if self.watches.remove(&watch).is_some() {
                        return Ok(Some((watch, WatchItem::Cancelled(reason))));
                    }
                }
                Ok(Some(_)) => {}
                Err(_) => {
                    self.connected = false;
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Reconnects (to whichever member answers) and registers every watch again from its
    /// next revision. Watches whose revision was compacted meanwhile end; their ids are
    /// reported through `next` as `Compacted` on the following calls.
    fn reconnect(&mut self, deadline: Instant) -> Result<()> {
        let pause = Duration::from_millis(50);
        // Bounded by the deadline.
        while Instant::now() < deadline {
            if self.client.open_stream(deadline).is_err() {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                continue;
            }
            self.connected = true;
            let ids: Vec<u64> = self.watches.keys().copied().collect();
            let mut compacted = Vec::new();
            for id in ids {
                match self.register(id, deadline) {
                    Ok(None) => {}
                    Ok(Some(revision)) => compacted.push((id, revision)),
                    Err(_) => {
                        self.connected = false;
                        break;
                    }
                }
            }
            for (id, revision) in compacted {
                self.watches.remove(&id);
                self.compacted.push((id, revision));
            }
            if self.connected {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Sends the watch request; `Some(revision)` when its start is compacted.
    fn register(&mut self, id: u64, deadline: Instant) -> Result<Option<u64>> {
        if !self.connected {
            self.client.open_stream(deadline)?;
            self.connected = true;
        }
        let state = &self.watches[&id];
        let op = ClientOp::Watch {
            watch: id,
            space: state.space,
            prefix: state.prefix.clone(),
            from: state.next,
        };
        match self.client.stream_request(&op, deadline) {
            Ok(ClientReply::Watching { .. }) => Ok(None),
            Ok(ClientReply::Compacted { revision }) => Ok(Some(revision)),
            Ok(ClientReply::Failed(why)) => Err(Error::Rejected(why)),
            Ok(other) => Err(unexpected(other)),
            Err(error) => {
                self.connected = false;
                Err(error)
            }
        }
    }
}
