//! Locks, elections, groups, queues, barriers and counters, as a program uses them.
//!
//! Everything a session holds is bound to it: when the session is lost, so is the lock or
//! the leadership, and the holder learns it through [`Session::wait_lost`] or the handle's
//! `is_held()`, which consults the session's safety clock on every call. Every grant
//! carries a fencing token (the revision of the grant, strictly increasing cluster-wide):
//! pass it to the resource you protect, and guard accord writes with
//! [`Compare::LockToken`](crate::core::state::Compare::LockToken) so that a deposed holder's
//! write is refused by the cluster itself.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Watch connections a session keeps for its blocking calls.
const WAIT_STREAMS_KEPT: usize = 2;

/// How often a blocked call looks at its session's state and cancellation (a cancelled wait
/// returns within about this long, plus its withdrawal's round trip).
const WAIT_STEP: Duration = Duration::from_millis(40);

use parking_lot::Mutex;

use super::client::{deadline_after, unexpected, Client};
use super::session::{Session, SessionShared, SessionStatus};
use super::watch::{WatchItem, WatchStream};
use crate::core::state::group::Member;
use crate::core::state::lock::Holder;
use crate::core::state::{Command, Ended, Event, EventKind, LockKind, Mode, Outcome, Space};
use crate::error::{Error, Result};
use crate::runtime::wire::{Answer, ClientOp, ClientReply, Query};

/// What a blocking acquire obtained.
enum Granted {
    Token(u64),
    Claim(ClaimedItem),
    Opened,
    NotNow,
}

/// A claimed item as the claim returned it.
struct ClaimedItem {
    item: u64,
    token: u64,
    payload: Vec<u8>,
}

/// A held lock (mutex, read or write side of a read-write lock, or a semaphore permit).
/// Dropping it does not release it (a release needs the network); call [`Lock::release`], or
/// let the session end.
pub struct Lock {
    session: Arc<SessionShared>,
    client: Arc<Client>,
    space: Space,
    name: Vec<u8>,
    token: u64,
    released: bool,
}

impl Lock {
    /// The fencing token of this grant.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// Whether the lock is still surely held: not released, and the session not lost by the
    /// safety clock (checked now). `false` means: stop touching the protected resource.
    pub fn is_held(&self) -> bool {
        !self.released && self.session.status() != SessionStatus::Lost
    }

    /// Waits until the lock is lost (its session lost) or `timeout` passes; returns whether
    /// it was lost.
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        // Bounded by the deadline.
        loop {
            let status = self.session.status();
            if status == SessionStatus::Lost || self.released {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.session.wait_change(status, left);
        }
    }

    /// Releases the lock (the next waiter, if any, gets it).
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.session
            .taken
            .lock()
            .remove(&(self.space, self.name.clone()));
        let command = Command::Release {
            space: self.space,
            name: self.name.clone(),
            session: self.session.id,
        };
        let deadline = deadline_after(self.client.config().timeout);
        self.client.write_until(command, deadline).map(|_| ())
    }
}

/// Leadership of an election, won by [`Session::campaign`].
pub struct Leadership {
    lock: Lock,
}

impl Leadership {
    /// The fencing token of this leadership.
    pub fn token(&self) -> u64 {
        self.lock.token
    }

    /// Whether this process surely still leads (see [`Lock::is_held`]).
    pub fn is_leader(&self) -> bool {
        self.lock.is_held()
    }

    /// Waits until leadership is lost or `timeout` passes; returns whether it was lost.
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        self.lock.wait_lost(timeout)
    }

    /// Publishes a new value for observers; fails if this leadership is over.
    pub fn proclaim(&self, value: &[u8]) -> Result<()> {
        let command = Command::Proclaim {
            name: self.lock.name.clone(),
            token: self.lock.token,
            value: value.to_vec(),
        };
        let deadline = deadline_after(self.lock.client.config().timeout);
        match self.lock.client.write_until(command, deadline)? {
            ClientReply::Written(Outcome::Done { ok: true, .. }) => Ok(()),
            ClientReply::Written(Outcome::Done { ok: false, .. }) => Err(Error::Rejected(
                "this leadership is over; a proclaim needs the current token".into(),
            )),
            other => Err(unexpected(other)),
        }
    }

    /// Steps down (the next candidate, if any, is elected).
    pub fn resign(self) -> Result<()> {
        self.lock.release()
    }
}

/// Presence in a group, bound to the session.
pub struct Membership {
    session: Arc<SessionShared>,
    client: Arc<Client>,
    group: Vec<u8>,
    member: Vec<u8>,
}

impl Membership {
    /// Leaves the group.
    pub fn leave(self) -> Result<()> {
        let command = Command::Leave {
            group: self.group.clone(),
            member: self.member.clone(),
            session: self.session.id,
        };
        let deadline = deadline_after(self.client.config().timeout);
        self.client.write_until(command, deadline).map(|_| ())
    }
}

/// A claimed work item: process it, then [`Claim::ack`] it (or [`Claim::release`] it for
/// someone else). If the session is lost first, the item is redelivered to another claimer.
pub struct Claim {
    session: Arc<SessionShared>,
    client: Arc<Client>,
    queue: Vec<u8>,
    /// The item's id in its queue.
    pub item: u64,
    /// The claim's fencing token.
    pub token: u64,
    /// The item's payload.
    pub payload: Vec<u8>,
}

impl Claim {
    /// Whether the claim surely still holds: its session is not lost by the safety clock
    /// (checked now). `false` means: stop working on the item, it will be redelivered.
    pub fn is_held(&self) -> bool {
        self.session.status() != SessionStatus::Lost
    }

    /// Acknowledges the item: it leaves the queue for good. Fails if the claim was lost
    /// (the session expired and the item went to someone else).
    pub fn ack(self) -> Result<()> {
        self.settle(true)
    }

    /// Gives the item back to the queue (to the front).
    pub fn release(self) -> Result<()> {
        self.settle(false)
    }

    fn settle(self, ack: bool) -> Result<()> {
        let (queue, item, token) = (self.queue.clone(), self.item, self.token);
        let command = if ack {
            Command::Ack { queue, item, token }
        } else {
            Command::Requeue { queue, item, token }
        };
        let deadline = deadline_after(self.client.config().timeout);
        match self.client.write_until(command, deadline)? {
            ClientReply::Written(Outcome::Done { ok: true, .. }) => Ok(()),
            ClientReply::Written(Outcome::Done { ok: false, .. }) => Err(Error::Rejected(format!(
                "item {item} is no longer claimed with token {token} (its claim was lost)"
            ))),
            other => Err(unexpected(other)),
        }
    }
}

impl Session {
    /// Takes the mutex `name`, waiting (FIFO) up to `timeout`.
    pub fn lock(&self, name: &[u8], timeout: Duration) -> Result<Lock> {
        self.take(
            Space::Lock,
            name,
            LockKind::Mutex,
            Mode::Exclusive,
            &[],
            Some(timeout),
        )?
        .ok_or_else(|| Error::Timeout("the lock".into()))
    }

    /// Takes the mutex `name` if it is free now.
    pub fn try_lock(&self, name: &[u8]) -> Result<Option<Lock>> {
        self.take(
            Space::Lock,
            name,
            LockKind::Mutex,
            Mode::Exclusive,
            &[],
            None,
        )
    }

    /// Takes the read side of the read-write lock `name` (shared with other readers).
    pub fn read_lock(&self, name: &[u8], timeout: Duration) -> Result<Lock> {
        self.take(
            Space::Lock,
            name,
            LockKind::RwLock,
            Mode::Shared,
            &[],
            Some(timeout),
        )?
        .ok_or_else(|| Error::Timeout("the read lock".into()))
    }

    /// Takes the write side of the read-write lock `name` (alone).
    pub fn write_lock(&self, name: &[u8], timeout: Duration) -> Result<Lock> {
        self.take(
            Space::Lock,
            name,
            LockKind::RwLock,
            Mode::Exclusive,
            &[],
            Some(timeout),
        )?
        .ok_or_else(|| Error::Timeout("the write lock".into()))
    }

    /// Takes one of the `permits` permits of the semaphore `name`.
    pub fn acquire_permit(&self, name: &[u8], permits: u32, timeout: Duration) -> Result<Lock> {
        let kind = LockKind::Semaphore(permits);
        self.take(Space::Lock, name, kind, Mode::Exclusive, &[], Some(timeout))?
            .ok_or_else(|| Error::Timeout("a semaphore permit".into()))
    }

    /// Stands for election `name` with `value`; returns once elected, or fails after
    /// `timeout` (the candidacy is withdrawn).
    pub fn campaign(&self, name: &[u8], value: &[u8], timeout: Duration) -> Result<Leadership> {
        let kind = LockKind::Election;
        let lock = self
            .take(
                Space::Election,
                name,
                kind,
                Mode::Exclusive,
                value,
                Some(timeout),
            )?
            .ok_or_else(|| Error::Timeout("the election".into()))?;
        Ok(Leadership { lock })
    }

    /// Joins `group` as `member` with `metadata`, for as long as the session lives.
    pub fn join(&self, group: &[u8], member: &[u8], metadata: &[u8]) -> Result<Membership> {
        self.alive()?;
        let command = Command::Join {
            group: group.to_vec(),
            member: member.to_vec(),
            session: self.shared.id,
            metadata: metadata.to_vec(),
        };
        let deadline = deadline_after(self.client.config().timeout);
        match self.client.write_until(command, deadline)? {
            ClientReply::Written(Outcome::Done { .. }) => Ok(Membership {
                session: self.shared.clone(),
                client: self.client.clone(),
                group: group.to_vec(),
                member: member.to_vec(),
            }),
            ClientReply::Written(Outcome::Refused { reason, .. }) => Err(Error::Rejected(reason)),
            other => Err(unexpected(other)),
        }
    }

    /// Claims the oldest unclaimed item of `queue`, waiting up to `timeout` for one.
    pub fn claim(&self, queue: &[u8], timeout: Duration) -> Result<Claim> {
        self.claim_with(queue, Some(timeout))?
            .ok_or_else(|| Error::Timeout("a queue item".into()))
    }

    /// Claims the oldest unclaimed item of `queue`, if there is one now.
    pub fn try_claim(&self, queue: &[u8]) -> Result<Option<Claim>> {
        self.claim_with(queue, None)
    }

    fn claim_with(&self, queue: &[u8], timeout: Option<Duration>) -> Result<Option<Claim>> {
        let command = Command::Claim {
            queue: queue.to_vec(),
            session: self.shared.id,
            wait: timeout.is_some(),
        };
        let cancel = Command::Release {
            space: Space::Queue,
            name: queue.to_vec(),
            session: self.shared.id,
        };
        let timeout = timeout.unwrap_or(Duration::ZERO);
        match self.wait_for(command, cancel, Space::Queue, queue, timeout)? {
            Granted::Claim(claimed) => Ok(Some(Claim {
                session: self.shared.clone(),
                client: self.client.clone(),
                queue: queue.to_vec(),
                item: claimed.item,
                token: claimed.token,
                payload: claimed.payload,
            })),
            Granted::NotNow => Ok(None),
            Granted::Token(_) | Granted::Opened => {
                Err(Error::Protocol("a claim was answered like a lock".into()))
            }
        }
    }

    /// Arrives at barrier `name` of `participants` and waits until all arrived (then every
    /// participant returns) or `timeout` passes (this session leaves the barrier).
    pub fn barrier(&self, name: &[u8], participants: u32, timeout: Duration) -> Result<()> {
        self.take_name(Space::Barrier, name)?;
        let result = self.barrier_wait(name, participants, timeout);
        self.shared
            .taken
            .lock()
            .remove(&(Space::Barrier, name.to_vec()));
        result
    }

    fn barrier_wait(&self, name: &[u8], participants: u32, timeout: Duration) -> Result<()> {
        let command = Command::Enter {
            barrier: name.to_vec(),
            participants,
            session: self.shared.id,
        };
        let cancel = Command::Exit {
            barrier: name.to_vec(),
            session: self.shared.id,
        };
        match self.wait_for(command, cancel, Space::Barrier, name, timeout)? {
            Granted::Opened => Ok(()),
            _ => Err(Error::Timeout("the barrier".into())),
        }
    }

    fn alive(&self) -> Result<()> {
        match self.shared.status() {
            SessionStatus::Lost => Err(self.shared.lost_error()),
            _ => Ok(()),
        }
    }

    /// Notes that this session is taking `name` through this process; refused if it
    /// already holds or waits for it (from another thread, say).
    fn take_name(&self, space: Space, name: &[u8]) -> Result<()> {
        if !self.shared.taken.lock().insert((space, name.to_vec())) {
            return Err(Error::InvalidArgument(format!(
                "this session already holds or waits for {} {}; use one session per holder",
                space.name(),
                String::from_utf8_lossy(name)
            )));
        }
        Ok(())
    }

    /// Acquire (wait when `timeout` is given) a lock-like name.
    fn take(
        &self,
        space: Space,
        name: &[u8],
        kind: LockKind,
        mode: Mode,
        value: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Option<Lock>> {
        self.take_name(space, name)?;
        let command = Command::Acquire {
            space,
            name: name.to_vec(),
            session: self.shared.id,
            kind,
            mode,
            value: value.to_vec(),
            wait: timeout.is_some(),
        };
        let cancel = Command::Release {
            space,
            name: name.to_vec(),
            session: self.shared.id,
        };
        let timeout = timeout.unwrap_or(Duration::ZERO);
        let result = match self.wait_for(command, cancel, space, name, timeout) {
            Ok(Granted::Token(token)) => Ok(Some(Lock {
                session: self.shared.clone(),
                client: self.client.clone(),
                space,
                name: name.to_vec(),
                token,
                released: false,
            })),
            Ok(Granted::NotNow) => Ok(None),
            Ok(Granted::Claim(_) | Granted::Opened) => {
                Err(Error::InvalidMessage("a lock was answered like a queue"))
            }
            Err(error) => Err(error),
        };
        if !matches!(result, Ok(Some(_))) {
            self.shared.taken.lock().remove(&(space, name.to_vec()));
        }
        result
    }

    /// Applies `command`; if it queued this session, waits for the grant until `timeout`.
    /// Whenever the wait ends without a grant (timeout, error, lost history) it withdraws
    /// with `cancel`, so nothing is later granted to a caller that left; a grant that came
    /// before the withdrawal is kept (locks: the withdrawal, a release, undoes it; queues and
    /// barriers: it is returned).
    fn wait_for(
        &self,
        command: Command,
        cancel: Command,
        space: Space,
        name: &[u8],
        timeout: Duration,
    ) -> Result<Granted> {
        self.alive()?;
        let write_deadline = || deadline_after(self.client.config().timeout);
        let wait_deadline = deadline_after(timeout);
        let waiting_since = match self.client.write_until(command, write_deadline())? {
            ClientReply::Written(Outcome::Acquired { token, .. }) => {
                return Ok(Granted::Token(token))
            }
            ClientReply::Claimed {
                outcome: Outcome::Claimed { item, token, .. },
                payload,
            } => {
                let claimed = ClaimedItem {
                    item,
                    token,
                    payload,
                };
                return Ok(Granted::Claim(claimed));
            }
            ClientReply::Written(Outcome::Claimed { item, .. }) => {
                // A retried claim whose item has since been acknowledged or redelivered.
                return Err(Error::Rejected(format!(
                    "item {item} was claimed and is no longer available"
                )));
            }
            ClientReply::Written(Outcome::Barrier { opened: true, .. }) => {
                return Ok(Granted::Opened)
            }
            ClientReply::Written(Outcome::Busy { .. }) => return Ok(Granted::NotNow),
            ClientReply::Written(Outcome::Refused { reason, .. }) => {
                return Err(Error::Rejected(reason))
            }
            ClientReply::Written(Outcome::Queued { revision })
            | ClientReply::Written(Outcome::Barrier { revision, .. }) => revision,
            other => return Err(unexpected(other)),
        };
        let waited = self.wait_granted(space, name, waiting_since, wait_deadline);
        if let Ok(Some(granted)) = waited {
            return Ok(granted);
        }
        let failure = waited
            .err()
            .unwrap_or_else(|| Error::Timeout(format!("waited {} ms", timeout.as_millis())));
        let (ok, revision) = match self.client.write_until(cancel, write_deadline())? {
            ClientReply::Written(Outcome::Done { ok, revision }) => (ok, revision),
            other => return Err(unexpected(other)),
        };
        if ok || matches!(space, Space::Lock | Space::Election) {
            return Err(failure);
        }
        // No longer waiting when the withdrawal applied: the barrier opened, or the claim was
        // granted, before it (or the session ended).
        self.alive()?;
        if space == Space::Barrier {
            return Ok(Granted::Opened);
        }
        match self.find_grant(space, name, waiting_since, revision) {
            Some(granted) => Ok(granted),
            None => Err(failure),
        }
    }

    /// Waits for the grant to this session on `name` after revision `since`, until
    /// `deadline`; `Ok(None)` when it did not come (or the history needed was lost).
    fn wait_granted(
        &self,
        space: Space,
        name: &[u8],
        since: u64,
        deadline: Instant,
    ) -> Result<Option<Granted>> {
        let mut stream = self.wait_stream()?;
        let watch = match stream.add(space, name, since + 1)? {
            Ok(watch) => watch,
            Err(_) => return self.granted_now(space, name),
        };
        let me = self.shared.id;
        let generation = self.shared.cancel_generation.load(Ordering::SeqCst);
        let result = (|| {
            // Bounded by the deadline.
            while Instant::now() < deadline {
                if self.shared.status() == SessionStatus::Lost {
                    return Err(self.shared.lost_error());
                }
                if self.shared.cancel_generation.load(Ordering::SeqCst) != generation {
                    return Err(Error::Cancelled);
                }
                let step = deadline
                    .saturating_duration_since(Instant::now())
                    .min(WAIT_STEP);
                match stream.next(step)? {
                    Some((_, WatchItem::Events(events))) => {
                        if let Some(granted) = grant_in(&events, name, me)? {
                            return Ok(Some(granted));
                        }
                    }
                    // The history ran out: ask the state itself.
                    Some((_, WatchItem::Compacted { .. } | WatchItem::Cancelled(_))) => {
                        return self.granted_now(space, name)
                    }
                    None => {}
                }
            }
            Ok(None)
        })();
        // Keep the connection for the next wait if it is healthy.
        if stream.remove(watch).is_ok() && stream.is_connected() {
            let mut kept = self.wait_streams.lock();
            if kept.len() < WAIT_STREAMS_KEPT {
                kept.push(stream);
            }
        }
        result
    }

    /// Whether this session holds `name` now (a linearizable read), for when the events that
    /// would have said so were compacted away. Queues cannot tell which item: `None`.
    fn granted_now(&self, space: Space, name: &[u8]) -> Result<Option<Granted>> {
        match space {
            Space::Lock | Space::Election => {
                let (holders, _) = self.client.holders(space, name)?;
                Ok(holders
                    .iter()
                    .find(|h| h.session == self.shared.id)
                    .map(|h| Granted::Token(h.token)))
            }
            _ => Ok(None),
        }
    }

    /// A grant to this session on `name` between revisions `since` and `until`, from the
    /// event history (after a withdrawal found the session no longer waiting).
    fn find_grant(&self, space: Space, name: &[u8], since: u64, until: u64) -> Option<Granted> {
        let mut stream = WatchStream::beside(&self.client);
        stream.add(space, name, since + 1).ok()?.ok()?;
        let deadline = deadline_after(self.client.config().timeout);
        // Bounded by the deadline.
        while Instant::now() < deadline {
            if let Ok(Some((_, WatchItem::Events(events)))) =
                stream.next(Duration::from_millis(200))
            {
                if let Ok(Some(granted)) = grant_in(&events, name, self.shared.id) {
                    return Some(granted);
                }
                if events.iter().any(|e| e.revision >= until) {
                    return None;
                }
            }
        }
        None
    }

    /// A watch connection for a blocking call: a kept one, or a new one.
    fn wait_stream(&self) -> Result<WatchStream> {
        if let Some(stream) = self.wait_streams.lock().pop() {
            return Ok(stream);
        }
        Ok(WatchStream::beside(&self.client))
    }
}

/// The grant (or the end of the wait) for `session` among a watch's events on `name`.
fn grant_in(events: &[Event], name: &[u8], session: u64) -> Result<Option<Granted>> {
    for event in events.iter().filter(|e| e.key == name) {
        match &event.kind {
            EventKind::Granted if event.session == session => {
                if event.space == Space::Queue {
                    return Ok(Some(Granted::Claim(ClaimedItem {
                        item: event.item,
                        token: event.token,
                        payload: event.value.clone(),
                    })));
                }
                return Ok(Some(Granted::Token(event.token)));
            }
            EventKind::Opened => return Ok(Some(Granted::Opened)),
            EventKind::Ended(why) if event.session == session => {
                let why = match why {
                    Ended::ByRequest => "the wait was withdrawn",
                    Ended::SessionClosed => "the session was closed",
                    Ended::SessionExpired => "the session expired",
                };
                return Err(Error::SessionLost(format!("stopped waiting: {why}")));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// A change of an election's leadership, as [`Observer::next`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderChange {
    /// Revision of the change.
    pub revision: u64,
    /// The leader now (session, token, value), or `None` while there is none.
    pub leader: Option<Holder>,
}

/// A stream of an election's leadership changes.
pub struct Observer {
    stream: WatchStream,
    name: Vec<u8>,
    leader: Option<Holder>,
    pending: std::collections::VecDeque<LeaderChange>,
}

impl Observer {
    /// The next change, waiting up to `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<LeaderChange>> {
        let deadline = deadline_after(timeout);
        // Bounded by the deadline.
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Ok(Some(change));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.stream.next(left)? {
                Some((_, WatchItem::Events(events))) => {
                    for event in events.iter().filter(|e| e.key == self.name) {
                        let next = match event.kind {
                            EventKind::Granted => Some(Holder {
                                session: event.session,
                                token: event.token,
                                mode: Mode::Exclusive,
                                value: event.value.clone(),
                            }),
                            EventKind::Proclaimed => Some(Holder {
                                session: event.session,
                                token: event.token,
                                mode: Mode::Exclusive,
                                value: event.value.clone(),
                            }),
                            EventKind::Ended(_)
                                if self.leader.as_ref().is_some_and(|l| l.token == event.token) =>
                            {
                                None
                            }
                            _ => continue,
                        };
                        self.leader = next.clone();
                        self.pending.push_back(LeaderChange {
                            revision: event.revision,
                            leader: next,
                        });
                    }
                }
                Some((_, WatchItem::Compacted { revision })) => {
                    return Err(Error::Rejected(format!(
                        "the observer fell behind the history (now at revision {revision}); observe again"
                    )))
                }
                Some((_, WatchItem::Cancelled(why))) => return Err(Error::Rejected(why)),
                None => return Ok(None),
            }
        }
    }
}

/// Rejects fencing tokens lower than the highest it has seen: put one in front of a resource
/// that several lock holders may reach (a file, a database row, a device), and have every
/// writer present its token.
#[derive(Default)]
pub struct Fence {
    highest: Mutex<u64>,
}

impl Fence {
    /// A fence that has seen no token.
    pub fn new() -> Fence {
        Fence::default()
    }

    /// Admits `token` if it is at least the highest seen (and remembers it); a lower token
    /// comes from a deposed holder and is refused.
    pub fn admit(&self, token: u64) -> Result<()> {
        let mut highest = self.highest.lock();
        if token < *highest {
            return Err(Error::Rejected(format!(
                "fencing token {token} is older than {} (its holder was deposed)",
                *highest
            )));
        }
        *highest = token;
        Ok(())
    }

    /// The highest token admitted so far.
    pub fn highest(&self) -> u64 {
        *self.highest.lock()
    }
}

impl Client {
    /// Adds `item` to `queue`; returns its id.
    pub fn enqueue(&self, queue: &[u8], payload: &[u8]) -> Result<u64> {
        let command = Command::Enqueue {
            queue: queue.to_vec(),
            payload: payload.to_vec(),
        };
        match self.write_until(command, deadline_after(self.config().timeout))? {
            ClientReply::Written(Outcome::Enqueued { item, .. }) => Ok(item),
            ClientReply::Written(Outcome::Refused { reason, .. }) => Err(Error::Rejected(reason)),
            other => Err(unexpected(other)),
        }
    }

    /// Acknowledges `item` of `queue` claimed with `token` (from a claim made elsewhere, e.g.
    /// by `accord queue claim`); fails if that claim is no longer valid.
    pub fn ack(&self, queue: &[u8], item: u64, token: u64) -> Result<()> {
        let command = Command::Ack {
            queue: queue.to_vec(),
            item,
            token,
        };
        match self.write_until(command, deadline_after(self.config().timeout))? {
            ClientReply::Written(Outcome::Done { ok: true, .. }) => Ok(()),
            ClientReply::Written(Outcome::Done { ok: false, .. }) => Err(Error::Rejected(format!(
                "item {item} is no longer claimed with token {token}"
            ))),
            other => Err(unexpected(other)),
        }
    }

    /// Creates a session without a keepalive thread (for programs that keep many sessions
    /// alive themselves, in batches, with [`Client::keep_alive`]); returns its id. Most
    /// programs want [`Session::create`] instead.
    pub fn create_session(&self, ttl: Duration) -> Result<u64> {
        let command = Command::CreateSession {
            ttl_ms: ttl.as_millis() as u64,
        };
        match self.write_until(command, deadline_after(self.config().timeout))? {
            ClientReply::Written(Outcome::Session { session, .. }) => Ok(session),
            ClientReply::Written(Outcome::Refused { reason, .. }) => Err(Error::Rejected(reason)),
            other => Err(unexpected(other)),
        }
    }

    /// Keeps sessions alive (at most [`crate::limits::EXPIRE_BATCH_MAX`] per call); returns
    /// each session's TTL, `None` for a session the cluster no longer has.
    pub fn keep_alive(&self, sessions: &[u64]) -> Result<Vec<(u64, Option<Duration>)>> {
        if sessions.len() > crate::limits::EXPIRE_BATCH_MAX {
            return Err(Error::InvalidArgument(format!(
                "at most {} sessions per keepalive, not {}",
                crate::limits::EXPIRE_BATCH_MAX,
                sessions.len()
            )));
        }
        let op = ClientOp::KeepAlive {
            sessions: sessions.to_vec(),
        };
        match self.call_until(op, deadline_after(self.config().timeout))? {
            ClientReply::KeptAlive(ttls) => Ok(ttls
                .into_iter()
                .map(|(s, ttl)| (s, (ttl > 0).then(|| Duration::from_millis(ttl))))
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    /// Ends a session made with [`Client::create_session`].
    pub fn close_session(&self, session: u64) -> Result<()> {
        let command = Command::CloseSession { session };
        self.write_until(command, deadline_after(self.config().timeout))
            .map(|_| ())
    }

    /// Adds `delta` to the counter `name`; returns the new value.
    pub fn add(&self, name: &[u8], delta: i64) -> Result<i64> {
        let command = Command::Add {
            counter: name.to_vec(),
            delta,
        };
        match self.write_until(command, deadline_after(self.config().timeout))? {
            ClientReply::Written(Outcome::Counter { value, .. }) => Ok(value),
            ClientReply::Written(Outcome::Refused { reason, .. }) => Err(Error::Rejected(reason)),
            other => Err(unexpected(other)),
        }
    }

    fn query(&self, query: Query) -> Result<(Answer, u64)> {
        let op = ClientOp::Query {
            query,
            serializable: false,
        };
        match self.call_until(op, deadline_after(self.config().timeout))? {
            ClientReply::Answer { revision, answer } => Ok((answer, revision)),
            other => Err(unexpected(other)),
        }
    }

    /// A counter's value (linearizable).
    pub fn counter(&self, name: &[u8]) -> Result<i64> {
        match self.query(Query::Counter {
            name: name.to_vec(),
        })? {
            (Answer::Counter(value), _) => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    /// The holders of lock `name` and the sessions waiting for it (linearizable).
    pub fn lock_holders(&self, name: &[u8]) -> Result<(Vec<Holder>, Vec<u64>)> {
        self.holders(Space::Lock, name)
    }

    /// The leader of election `name` (linearizable), if any.
    pub fn leader(&self, name: &[u8]) -> Result<Option<Holder>> {
        Ok(self.holders(Space::Election, name)?.0.into_iter().next())
    }

    fn holders(&self, space: Space, name: &[u8]) -> Result<(Vec<Holder>, Vec<u64>)> {
        let query = Query::Holders {
            space,
            name: name.to_vec(),
        };
        match self.query(query)? {
            (Answer::Holders { holders, waiters }, _) => Ok((holders, waiters)),
            other => Err(unexpected(other)),
        }
    }

    /// The members of `group` (linearizable), with the revision read at.
    pub fn members(&self, group: &[u8]) -> Result<(Vec<Member>, u64)> {
        match self.query(Query::Members {
            group: group.to_vec(),
        })? {
            (Answer::Members { more: true, .. }, _) => Err(Error::Rejected(format!(
                "group {} has more members than one reply holds ({} bytes); keep member ids \
                 and metadata small",
                String::from_utf8_lossy(group),
                crate::limits::RANGE_BYTES_MAX
            ))),
            (Answer::Members { members, .. }, revision) => Ok((members, revision)),
            other => Err(unexpected(other)),
        }
    }

    /// (items, unclaimed items, waiting claimers) of `queue` (linearizable).
    pub fn queue_counts(&self, queue: &[u8]) -> Result<(u64, u64, u64)> {
        match self.query(Query::Queue {
            queue: queue.to_vec(),
        })? {
            (
                Answer::Queue {
                    items,
                    ready,
                    waiters,
                },
                _,
            ) => Ok((items, ready, waiters)),
            other => Err(unexpected(other)),
        }
    }

    /// Whether `session` is alive, as the cluster sees it (its TTL, or `None`).
    pub fn session_ttl(&self, session: u64) -> Result<Option<Duration>> {
        match self.query(Query::Session { session })? {
            (Answer::Session(0), _) => Ok(None),
            (Answer::Session(ttl_ms), _) => Ok(Some(Duration::from_millis(ttl_ms))),
            other => Err(unexpected(other)),
        }
    }

    /// A stream of election `name`'s leadership changes, starting with the leader now.
    pub fn observe(&self, name: &[u8]) -> Result<Observer> {
        let (holders, revision) = match self.query(Query::Holders {
            space: Space::Election,
            name: name.to_vec(),
        })? {
            (Answer::Holders { holders, .. }, revision) => (holders, revision),
            other => return Err(unexpected(other)),
        };
        let leader = holders.into_iter().next();
        let mut stream = WatchStream::beside(self);
        if let Err(now) = stream.add(Space::Election, name, revision + 1)? {
            return Err(Error::Rejected(format!(
                "revision {revision} left the history already (now {now}); observe again"
            )));
        }
        let first = LeaderChange {
            revision,
            leader: leader.clone(),
        };
        Ok(Observer {
            stream,
            name: name.to_vec(),
            leader,
            pending: [first].into_iter().collect(),
        })
    }

    /// A stream of changes to `space` names or keys under `prefix`, from revision `from`.
    pub fn watch(&self, space: Space, prefix: &[u8], from: u64) -> Result<(WatchStream, u64)> {
        let mut stream = WatchStream::beside(self);
        match stream.add(space, prefix, from)? {
            Ok(watch) => Ok((stream, watch)),
            Err(revision) => Err(Error::Rejected(format!(
                "revision {from} left the member's history; list at {revision} and watch from {}",
                revision + 1
            ))),
        }
    }

    /// The keys under `prefix` at some revision R (linearizable) and a stream of every change
    /// after R: nothing is missed in between. Returns (keys, R, stream).
    pub fn list_and_watch(
        &self,
        prefix: &[u8],
    ) -> Result<(Vec<crate::core::state::KeyValue>, u64, WatchStream)> {
        // Bounded: a compaction between the list and the watch makes us list again; three
        // times in a row means the history is too short for the rate of change.
        for _ in 0..3 {
            let (found, more, revision) =
                self.range(prefix, crate::limits::RANGE_RESULTS_MAX as u32)?;
            if more {
                return Err(Error::InvalidArgument(format!(
                    "more keys are under {} than one reply holds ({} keys or {} bytes); \
                     narrow the prefix",
                    String::from_utf8_lossy(prefix),
                    crate::limits::RANGE_RESULTS_MAX,
                    crate::limits::RANGE_BYTES_MAX
                )));
            }
            let mut stream = WatchStream::beside(self);
            if stream.add(Space::Kv, prefix, revision + 1)?.is_ok() {
                return Ok((found, revision, stream));
            }
        }
        Err(Error::Busy(
            "the watch history (changes come faster than a list and a watch)",
        ))
    }
}

/// Opens a session on `client`'s cluster (see [`Session::create`]).
pub fn session(client: &Client, ttl: Duration) -> Result<Session> {
    Session::create(client.config().clone(), ttl)
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("token", &self.token)
            .field("session", &self.session.id)
            .finish()
    }
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Leadership").field(&self.lock).finish()
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("queue", &String::from_utf8_lossy(&self.queue))
            .field("item", &self.item)
            .field("token", &self.token)
            .finish()
    }
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("group", &String::from_utf8_lossy(&self.group))
            .field("member", &String::from_utf8_lossy(&self.member))
            .finish()
    }
}
