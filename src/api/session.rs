//! Sessions with a client-side safety clock.
//!
//! A session is kept alive by a thread of this library (never by the host language's
//! threads, so a GC or GIL pause of the caller cannot starve it). After every acknowledged
//! keepalive the session is safe until `send time of that keepalive + TTL × (1 − drift)`: the
//! leader restarted the session's deadline no earlier than when the keepalive was sent, and
//! a new leader restarts every deadline, so the cluster cannot expire the session before
//! then. The session moves Held → Suspect (a keepalive is overdue) → Lost (the safe time
//! passed, or the cluster said the session is gone) and never back; code holding a lock can
//! wait for the move.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::client::{deadline_after, unexpected, Client, ClientConfig};
use crate::core::state::{Command, Outcome, Space};
use crate::error::{Error, Result};
use crate::limits::{SESSION_DRIFT_PER_MILLE, SESSION_TTL_MS_MAX, SESSION_TTL_MS_MIN};
use crate::runtime::wire::{ClientOp, ClientReply};

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
    stop: AtomicBool,
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

    fn lose(&self, reason: String) {
        let mut view = self.view.lock();
        if view.status != SessionStatus::Lost {
            view.status = SessionStatus::Lost;
            view.reason = reason;
            self.changed.notify_all();
        }
    }

    fn acknowledged(&self, sent: Duration, ttl: Duration) {
        let mut view = self.view.lock();
        if view.status == SessionStatus::Lost {
            return;
        }
        let safe = safe_time(ttl);
        if sent + safe > view.safe_until {
            view.safe_until = sent + safe;
            view.last_ack_sent = sent;
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
fn boot_now() -> Duration {
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
fn boot_now() -> Duration {
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
    keepalive: Option<JoinHandle<()>>,
    /// Cancels the keepalive in flight, so that closing does not wait for its answer.
    keepalive_cancel: super::client::CancelHandle,
    /// Watch connections kept for blocking calls (a wait reuses one instead of connecting).
    pub(crate) wait_streams: Mutex<Vec<super::watch::WatchStream>>,
}

impl Session {
    /// Opens a session with `ttl` (1 s to a day; 10 s is typical: long enough to ride out an
    /// election, short enough to notice a dead process soon).
    pub fn create(config: ClientConfig, ttl: Duration) -> Result<Session> {
        let ttl_ms = ttl.as_millis() as u64;
        if !(SESSION_TTL_MS_MIN..=SESSION_TTL_MS_MAX).contains(&ttl_ms) {
            return Err(Error::InvalidArgument(format!(
                "a session's TTL must be {SESSION_TTL_MS_MIN}..={SESSION_TTL_MS_MAX} ms, not {ttl_ms}"
            )));
        }
        let client = Arc::new(Client::connect(config.clone())?);
        let sent = boot_now();
        let reply = client.write_until(
            Command::CreateSession { ttl_ms },
            deadline_after(config.timeout),
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
        let keepalive_client = Client::connect(config)?;
        let keepalive_cancel = keepalive_client.cancel_handle();
        let thread_shared = shared.clone();
        let keepalive = std::thread::Builder::new()
            .name(format!("accord-keepalive-{id}"))
            .spawn(move || keep_alive(thread_shared, keepalive_client))
            .map_err(|e| Error::io("starting the keepalive thread", &e))?;
        Ok(Session {
            shared,
            client,
            keepalive: Some(keepalive),
            keepalive_cancel,
            wait_streams: Mutex::new(Vec::new()),
        })
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
        self.shared.cancel_generation.fetch_add(1, Ordering::SeqCst);
        self.client.cancel_handle().cancel();
    }

    /// The client the session issues its commands through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the session now: everything it holds is released at once.
    pub fn close(mut self) -> Result<()> {
        self.stop_keepalive();
        self.end()
    }

    /// Ends the session now through a shared reference (for handles shared across threads,
    /// as the C and Python bindings hold them): it is `Lost` at once, its keepalives stop,
    /// blocked calls are cancelled, and the cluster releases what it held. A session already
    /// lost is not sent anywhere (the cluster may be unreachable; it expires there anyway).
    pub fn end(&self) -> Result<()> {
        let was_lost = self.status() == SessionStatus::Lost;
        {
            let _view = self.shared.view.lock();
            self.shared.stop.store(true, Ordering::SeqCst);
            self.shared.changed.notify_all();
        }
        self.keepalive_cancel.cancel();
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

    fn stop_keepalive(&mut self) {
        {
            // Under the lock the thread waits with, so the wake-up cannot fall between its
            // check of `stop` and its wait.
            let _view = self.shared.view.lock();
            self.shared.stop.store(true, Ordering::SeqCst);
            self.shared.changed.notify_all();
        }
        self.keepalive_cancel.cancel();
        if let Some(thread) = self.keepalive.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_keepalive();
    }
}

/// The keepalive thread: one keepalive every TTL / 3 (sooner after a failure), each bounded
/// so that the thread never waits past the safety deadline.
fn keep_alive(shared: Arc<SessionShared>, client: Client) {
    let interval = shared.ttl / 3;
    let retry = Duration::from_millis(100).min(interval);
    let mut next = Instant::now() + interval;
    // Bounded by the session's life: ends when stopped or lost.
    while !shared.stop.load(Ordering::SeqCst) {
        {
            let mut view = shared.view.lock();
            shared.refresh(&mut view);
            if view.status == SessionStatus::Lost || shared.stop.load(Ordering::SeqCst) {
                return;
            }
            if Instant::now() < next {
                shared.changed.wait_until(&mut view, next);
                continue;
            }
        }
        let started = Instant::now();
        let sent = boot_now();
        let op = ClientOp::KeepAlive {
            sessions: vec![shared.id],
        };
        let answer = client.call_until(op, started + interval.max(Duration::from_millis(200)));
        match answer {
            Ok(ClientReply::KeptAlive(ttls)) => match ttls.first() {
                Some((_, ttl_ms)) if *ttl_ms > 0 => {
                    shared.acknowledged(sent, Duration::from_millis(*ttl_ms));
                    next = started + interval;
                }
                _ => {
                    shared.lose("the cluster no longer has the session (it expired)".into());
                    return;
                }
            },
            _ => next = Instant::now() + retry,
        }
    }
}
