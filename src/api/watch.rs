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

/// Where a watch stands. Several events can share a revision (a transaction's writes) and a
/// member may split them across frames, so the position is (revision, events of it seen).
struct WatchState {
    space: Space,
    prefix: Vec<u8>,
    /// The last revision delivered (or the one before the start).
    last_revision: u64,
    /// Events of `last_revision` delivered.
    seen_at_last: usize,
    /// Events of `last_revision` a resumed watch will receive again and must drop.
    skip: usize,
}

impl WatchState {
    /// The revision to (re)start from: the last one again if part of it was delivered (its
    /// delivered events are then skipped), else the next one.
    fn resume_from(&mut self) -> u64 {
        self.skip = self.seen_at_last;
        if self.seen_at_last > 0 {
            self.last_revision
        } else {
            self.last_revision + 1
        }
    }

    /// Keeps the events not delivered yet and moves the position past them.
    fn take_new(&mut self, events: Vec<Event>) -> Vec<Event> {
        let mut fresh = Vec::with_capacity(events.len());
        for event in events {
            if event.revision < self.last_revision {
                continue;
            }
            if event.revision == self.last_revision {
                if self.skip > 0 {
                    self.skip -= 1;
                    continue;
                }
                self.seen_at_last += 1;
            } else {
                self.last_revision = event.revision;
                self.seen_at_last = 1;
                self.skip = 0;
            }
            fresh.push(event);
        }
        fresh
    }
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
        Ok(WatchStream::on(Client::connect(config)?))
    }

    /// A stream on a connection of its own, configured as `client` is.
    pub(crate) fn beside(client: &Client) -> WatchStream {
        WatchStream::on(client.sibling())
    }

    fn on(client: Client) -> WatchStream {
        WatchStream {
            timeout: client.config().timeout,
            client,
            watches: BTreeMap::new(),
            next_id: 1,
            connected: false,
            compacted: Vec::new(),
        }
    }

    /// Starts watching `space` keys under `prefix` from revision `from` (1: from the oldest
    /// event the member still has, 0 is treated as 1). Returns the watch's id, or
    /// `Ok(Err(revision))` when `from` is already compacted (list at `revision`, then watch
    /// from `revision + 1`). Tries every member until the client's timeout.
    pub fn add(
        &mut self,
        space: Space,
        prefix: &[u8],
        from: u64,
    ) -> Result<std::result::Result<u64, u64>> {
        let id = self.next_id;
        // A prefix the member would refuse is refused here, at once, not retried.
        super::client::refuse_what_members_refuse(&ClientOp::Watch {
            watch: id,
            space,
            prefix: prefix.to_vec(),
            from,
        })?;
        self.next_id += 1;
        let state = WatchState {
            space,
            prefix: prefix.to_vec(),
            last_revision: from.max(1) - 1,
            seen_at_last: 0,
            skip: 0,
        };
        let deadline = deadline_after(self.timeout);
        let mut state = Some(state);
        let mut last_error = Error::Busy("no member answered within the timeout");
        // Bounded by the deadline.
        while Instant::now() < deadline {
            if !self.connected {
                // Registers the other watches again; this one is added after.
                if let Some(state) = self.watches.remove(&id) {
                    self.reconnect(deadline)?;
                    self.watches.insert(id, state);
                } else {
                    self.reconnect(deadline)?;
                }
                if !self.connected {
                    break;
                }
            }
            if let Some(state) = state.take() {
                self.watches.insert(id, state);
            }
            match self.register(id, deadline) {
                Ok(None) => return Ok(Ok(id)),
                Ok(Some(revision)) => {
                    self.watches.remove(&id);
                    return Ok(Err(revision));
                }
                Err(
                    error @ (Error::Rejected(_)
                    | Error::PermissionDenied(_)
                    | Error::InvalidConfig(_)),
                ) => {
                    self.watches.remove(&id);
                    return Err(error);
                }
                Err(error) => last_error = error, // the connection failed: try again
            }
        }
        self.watches.remove(&id);
        Err(last_error)
    }

    /// Stops a watch (events already received for it are dropped).
    pub fn remove(&mut self, watch: u64) -> Result<()> {
        if self.watches.remove(&watch).is_some() && self.connected {
            let deadline = deadline_after(self.timeout);
            self.client
                .stream_request(&ClientOp::Unwatch { watch }, deadline)
                .inspect_err(|_| self.connected = false)?;
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

    /// Whether the stream's connection is up (a kept stream is reused only then).
    pub fn is_connected(&self) -> bool {
        self.connected
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
                    let events = state.take_new(events);
                    if !events.is_empty() {
                        return Ok(Some((watch, WatchItem::Events(events))));
                    }
                }
                Ok(Some(Frame::WatchEnded {
                    watch,
                    reason,
                    resume,
                })) => {
                    if !self.watches.contains_key(&watch) {
                        continue;
                    }
                    if !resume {
                        self.watches.remove(&watch);
                        return Ok(Some((watch, WatchItem::Cancelled(reason))));
                    }
                    // The member lost its history (it installed a snapshot): start again
                    // from our position, which may now be compacted.
                    match self.register(watch, deadline) {
                        Ok(None) => {}
                        Ok(Some(revision)) => {
                            self.watches.remove(&watch);
                            return Ok(Some((watch, WatchItem::Compacted { revision })));
                        }
                        Err(_) => self.connected = false,
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
    /// position. Watches whose revision was compacted meanwhile end; `next` reports them as
    /// `Compacted`.
    fn reconnect(&mut self, deadline: Instant) -> Result<()> {
        let pause = Duration::from_millis(50);
        // Bounded by the deadline.
        while Instant::now() < deadline {
            match self.client.open_stream(deadline) {
                Ok(_) => {}
                // No credentials, or TLS that cannot work: retrying will not help.
                Err(error @ (Error::PermissionDenied(_) | Error::InvalidConfig(_))) => {
                    return Err(error)
                }
                Err(_) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(pause.min(left));
                    continue;
                }
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

    /// Sends the watch request on the open connection; `Some(revision)` when its start is
    /// compacted.
    fn register(&mut self, id: u64, deadline: Instant) -> Result<Option<u64>> {
        let Some(state) = self.watches.get_mut(&id) else {
            return Ok(None);
        };
        let op = ClientOp::Watch {
            watch: id,
            space: state.space,
            prefix: state.prefix.clone(),
            from: state.resume_from(),
        };
        match self.client.stream_request(&op, deadline) {
            Ok(ClientReply::Watching { .. }) => Ok(None),
            Ok(ClientReply::Compacted { revision }) => Ok(Some(revision)),
            Ok(ClientReply::Failed(why)) => Err(Error::Rejected(why)),
            Ok(ClientReply::Denied(why)) => Err(Error::PermissionDenied(why)),
            Ok(other) => Err(unexpected(other)),
            Err(error) => {
                self.connected = false;
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::EventKind;

    fn event(revision: u64, key: &str) -> Event {
        Event::new(revision, Space::Kv, key.as_bytes(), EventKind::Put)
    }

    #[test]
    fn a_revision_split_across_frames_or_resumed_is_delivered_once_and_whole() {
        let mut state = WatchState {
            space: Space::Kv,
            prefix: Vec::new(),
            last_revision: 4,
            seen_at_last: 0,
            skip: 0,
        };
        // Revision 5 has three events; the first frame carries two of them.
        let first = state.take_new(vec![event(5, "a"), event(5, "b")]);
        assert_eq!(first.len(), 2);
        assert_eq!(state.resume_from(), 5, "resume within revision 5");
        // The resumed watch gets revision 5 again, whole, then revision 6.
        let again = state.take_new(vec![
            event(5, "a"),
            event(5, "b"),
            event(5, "c"),
            event(6, "d"),
        ]);
        assert_eq!(again, vec![event(5, "c"), event(6, "d")]);
        assert_eq!(state.resume_from(), 6);
        assert!(state.take_new(vec![event(6, "d")]).is_empty());
    }
}
