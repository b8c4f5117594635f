//! Sessions with a client-side safety clock.
//!
//! A session is kept alive by a thread of this library (never by the host language's
//! threads, so a GC or GIL pause of the caller cannot starve it): one thread per cluster
//! keeps every session of the process alive, in batches (see [`super::keepalive`]). After every acknowledged
//! keepalive the session is safe until `send time of that keepalive + TTL × (1 − drift)`: the
//! leader restarted the session's deadline no earlier than when the keepalive was sent, and
//! a new leader restarts every deadline, so the cluster cannot expire the session before
//! then. The session moves Held → Suspect (a keepalive is overdue) → Lost (the safe time
//! passed, or the cluster said the session is gone) and never back; code holding a lock can
//! wait for the move.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::client::{deadline_after, unexpected, Client, ClientConfig};
use super::keepalive::{self, Hub};
use crate::core::state::{Command, Outcome, Space};
use crate::error::{Error, Result};
use crate::limits::{SESSION_DRIFT_PER_MILLE, SESSION_TTL_MS_MAX, SESSION_TTL_MS_MIN};
use crate::runtime::wire::ClientReply;

/// How sure this process is that its session is alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    /// Alive: the last keepalive was acknowledged recently.
    Held,
    /// A keepalive is overdue; still safe until the safety clock runs out.
    Suspect,
    /// The session may have expired (or did, or was closed): nothing it held may be relied on.
    Lost,
}

struct View {
    status: SessionStatus,
    /// Until when the cluster cannot have expired the session (on the boot clock).
    safe_until: Duration,
    /// Send time of the last acknowledged keepalive, or of the creation (on the boot clock).
    last_ack_sent: Duration,
    /// Why the session was lost.
    reason: String,
}

/// What the session's handles share with its keepalive thread.
pub(crate) struct SessionShared {
    pub(crate) id: u64,
    pub(crate) ttl: Duration,
    view: Mutex<View>,
    changed: Condvar,
    /// Set when the session is closed or dropped: its keepalives stop.
    pub(crate) stop: AtomicBool,
    /// Locks, elections and barriers this session holds or waits for through this process:
    /// a second acquire of one of them (from another thread) is refused, since the cluster
    /// would answer it with the same grant and one release would end both.
    pub(crate) taken: Mutex<std::collections::BTreeSet<(Space, Vec<u8>)>>,
    /// Bumped by [`Session::cancel_waits`]; a blocking call that sees it move stops.
    pub(crate) cancel_generation: std::sync::atomic::AtomicU64,
}

impl SessionShared {
    /// The status now (the safety clock is checked on every call, not only by the thread).
    pub(crate) fn status(&self) -> SessionStatus {
        let mut view = self.view.lock();
        self.refresh(&mut view);
        view.status
    }

    fn refresh(&self, view: &mut View) {
        let now = boot_now();
        let next = match view.status {
            SessionStatus::Lost => return,
            _ if now >= view.safe_until => {
                view.reason = format!(
                    "no keepalive was acknowledged within the session's safe time ({} ms)",
                    self.ttl.as_millis()
                );
                SessionStatus::Lost
            }
            // One keepalive interval (TTL / 3) late, plus slack.
            _ if now > view.last_ack_sent + self.ttl / 2 => SessionStatus::Suspect,
            _ => SessionStatus::Held,
        };
        if next != view.status {
            view.status = next;
            self.changed.notify_all();
        }
    }

    pub(crate) fn lose(&self, reason: String) {
        let mut view = self.view.lock();
        if view.status != SessionStatus::Lost {
            view.status = SessionStatus::Lost;
            view.reason = reason;
            self.changed.notify_all();
        }
    }

    /// Records a keepalive sent at `sent` (boot clock) and acknowledged with `ttl`.
    pub(crate) fn acknowledged(&self, sent: Duration, ttl: Duration) {
        let mut view = self.view.lock();
        if view.status == SessionStatus::Lost {
            return;
        }
        let safe = safe_time(ttl);
        if sent + safe > view.safe_until {
            view.safe_until = sent + safe;
            view.last_ack_sent = sent;
            // For a renewal waiting for this acknowledgement.
            self.changed.notify_all();
        }
        self.refresh(&mut view);
    }

    /// Waits until the status is no longer `from`, or `timeout` passes; returns the status.
    pub(crate) fn wait_change(&self, from: SessionStatus, timeout: Duration) -> SessionStatus {
        let deadline = deadline_after(timeout);
        let mut view = self.view.lock();
        // Bounded by the deadline (and woken at the safety deadline to re-check the clock).
        loop {
            self.refresh(&mut view);
            if view.status != from {
                return view.status;
            }
            // The next moment the status could change by itself, as an `Instant`.
            let now = boot_now();
            let next_change = view.safe_until.min(view.last_ack_sent + self.ttl / 2);
            let wake = match next_change.checked_sub(now) {
                Some(left) if !left.is_zero() => deadline.min(Instant::now() + left),
                _ => deadline,
            };
            if self.changed.wait_until(&mut view, wake).timed_out() && Instant::now() >= deadline {
                self.refresh(&mut view);
                return view.status;
            }
        }
    }

    /// The error a call made on behalf of a lost session returns.
    pub(crate) fn lost_error(&self) -> Error {
        let view = self.view.lock();
        Error::SessionLost(format!("session {}: {}", self.id, view.reason))
    }
}

/// Time since boot, counting time the machine spent suspended (`CLOCK_BOOTTIME`): the
/// cluster's clocks keep running while this host sleeps, so the safety clock must too
/// (`Instant` stops during a suspend on Linux).
#[cfg(target_os = "linux")]
pub(crate) fn boot_now() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass; CLOCK_BOOTTIME exists on Linux.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } == 0;
    if !ok {
        // Unreachable on Linux; the monotonic clock is the closest substitute.
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        return ORIGIN.get_or_init(Instant::now).elapsed();
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Elsewhere: the monotonic clock (which may stop during a suspend).
#[cfg(not(target_os = "linux"))]
pub(crate) fn boot_now() -> Duration {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

/// `ttl × (1 − drift)`: how long after a keepalive's send time the session is surely alive.
fn safe_time(ttl: Duration) -> Duration {
    ttl * (1000 - SESSION_DRIFT_PER_MILLE as u32) / 1000
}

/// A session: the liveness everything it holds (locks, leadership, group presence, queue
/// claims) depends on. Dropping it stops the keepalives (the cluster expires it after its
/// TTL); [`Session::close`] ends it at once.
pub struct Session {
    pub(crate) shared: Arc<SessionShared>,
    pub(crate) client: Arc<Client>,
    /// Whether `client` is the session's alone (not shared with the program's other calls).
    owns_client: bool,
    /// The thread that keeps this session alive (shared with the process's other sessions
    /// of the same cluster); `None` once deregistered.
    hub: Mutex<Option<Arc<Hub>>>,
    /// Watch connections kept for blocking calls (a wait reuses one instead of connecting).
    pub(crate) wait_streams: Mutex<Vec<super::watch::WatchStream>>,
}

impl Session {
    /// Opens a session with `ttl` (1 s to a day; 10 s is typical: long enough to ride out an
    /// election, short enough to notice a dead process soon).
    pub fn create(config: ClientConfig, ttl: Duration) -> Result<Session> {
        Session::open(Arc::new(Client::connect(config)?), ttl, true)
    }

    /// Opens a session that issues its commands through `client`'s connection, as etcd's
    /// sessions share their client's: a process may hold thousands of sessions on one
    /// connection (their keepalives share another). The calls of the client and of all its
    /// sessions take turns on that connection (waits for a lock or a claim do not: they watch
    /// on connections of their own); open more clients for more calls in parallel.
    pub fn create_on(client: Arc<Client>, ttl: Duration) -> Result<Session> {
        Session::open(client, ttl, false)
    }

    fn open(client: Arc<Client>, ttl: Duration, owns_client: bool) -> Result<Session> {
        let ttl_ms = ttl.as_millis() as u64;
        if !(SESSION_TTL_MS_MIN..=SESSION_TTL_MS_MAX).contains(&ttl_ms) {
            return Err(Error::InvalidArgument(format!(
                "a session's TTL must be {SESSION_TTL_MS_MIN}..={SESSION_TTL_MS_MAX} ms, not {ttl_ms}"
            )));
        }
        let sent = boot_now();
        let created = Instant::now();
        let reply = client.write_until(
            Command::CreateSession { ttl_ms },
            deadline_after(client.config().timeout),
        )?;
        let id = match reply {
            ClientReply::Written(Outcome::Session { session, .. }) => session,
            ClientReply::Written(Outcome::Refused { reason, .. }) => {
                return Err(Error::Rejected(reason))
            }
            other => return Err(unexpected(other)),
        };
        let shared = Arc::new(SessionShared {
            id,
            ttl,
            view: Mutex::new(View {
                status: SessionStatus::Held,
                safe_until: sent + safe_time(ttl),
                last_ack_sent: sent,
                reason: String::new(),
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            taken: Mutex::new(std::collections::BTreeSet::new()),
            cancel_generation: std::sync::atomic::AtomicU64::new(0),
        });
        let hub = keepalive::register(&client, shared.clone(), created)?;
        Ok(Session {
            shared,
            client,
            owns_client,
            hub: Mutex::new(Some(hub)),
            wait_streams: Mutex::new(Vec::new()),
        })
    }

    /// Renews the session now, without waiting for its next keepalive (which the library
    /// sends every TTL / 3 anyway); returns once the cluster acknowledged it, or fails after
    /// `timeout` (or when [`Session::cancel_waits`] is called). Renewals asked for at the
    /// same time by several sessions travel in one request.
    pub fn keep_alive_once(&self, timeout: Duration) -> Result<()> {
        let asked = boot_now();
        let generation = self.shared.cancel_generation.load(Ordering::SeqCst);
        match self.hub.lock().as_ref() {
            Some(hub) => hub.hurry(self.shared.id),
            None => return Err(self.shared.lost_error()),
        }
        let deadline = deadline_after(timeout);
        let mut view = self.shared.view.lock();
        // Bounded by the deadline.
        loop {
            self.shared.refresh(&mut view);
            if view.status == SessionStatus::Lost {
                drop(view);
                return Err(self.shared.lost_error());
            }
            if view.last_ack_sent >= asked {
                return Ok(());
            }
            if self.shared.cancel_generation.load(Ordering::SeqCst) != generation {
                return Err(Error::Cancelled);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "session {}: no keepalive was acknowledged within {} ms",
                    self.shared.id,
                    timeout.as_millis()
                )));
            }
            self.shared.changed.wait_until(&mut view, deadline);
        }
    }

    /// The session's id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The session's TTL.
    pub fn ttl(&self) -> Duration {
        self.shared.ttl
    }

    /// How sure this process is that the session is alive (checked against the clock now).
    pub fn status(&self) -> SessionStatus {
        self.shared.status()
    }

    /// Why the session was lost (empty while it is not).
    pub fn lost_reason(&self) -> String {
        self.shared.view.lock().reason.clone()
    }

    /// Waits until the status differs from `from` or `timeout` passes; returns the status.
    pub fn wait_change(&self, from: SessionStatus, timeout: Duration) -> SessionStatus {
        self.shared.wait_change(from, timeout)
    }

    /// Waits until the session is lost or `timeout` passes; returns whether it was lost.
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        // Bounded by the deadline.
        loop {
            let status = self.status();
            if status == SessionStatus::Lost {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.shared.wait_change(status, left);
        }
    }

    /// Cancels the blocking calls (lock, campaign, claim, barrier) in progress on this
    /// session, from any thread: they withdraw and return [`Error::Cancelled`].
    pub fn cancel_waits(&self) {
        {
            // Under the view's lock, so that a renewal waiting on it sees the change.
            let _view = self.shared.view.lock();
            self.shared.cancel_generation.fetch_add(1, Ordering::SeqCst);
            self.shared.changed.notify_all();
        }
        // A shared client's call in progress may be another's; the waits themselves notice
        // the generation within `WAIT_STEP`.
        if self.owns_client {
            self.client.cancel_handle().cancel();
        }
    }

    /// The client the session issues its commands through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the session now: everything it holds is released at once.
    pub fn close(self) -> Result<()> {
        self.end()
    }

    /// Ends the session now through a shared reference (for handles shared across threads,
    /// as the C and Python bindings hold them): it is `Lost` at once, its keepalives stop,
    /// blocked calls are cancelled, and the cluster releases what it held. A session already
    /// lost is not sent anywhere (the cluster may be unreachable; it expires there anyway).
    pub fn end(&self) -> Result<()> {
        let was_lost = self.status() == SessionStatus::Lost;
        self.stop_keepalive();
        self.cancel_waits();
        self.shared.lose("the session was closed".into());
        if was_lost {
            return Ok(());
        }
        let command = Command::CloseSession {
            session: self.shared.id,
        };
        let deadline = deadline_after(self.client.config().timeout);
        self.client.write_until(command, deadline).map(|_| ())
    }

    fn stop_keepalive(&self) {
        {
            // Under the lock waiters wait with, so the wake-up cannot fall between their
            // check of `stop` and their wait.
            let _view = self.shared.view.lock();
            self.shared.stop.store(true, Ordering::SeqCst);
            self.shared.changed.notify_all();
        }
        if let Some(hub) = self.hub.lock().take() {
            hub.deregister(self.shared.id);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_keepalive();
    }
}
