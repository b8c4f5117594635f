//! Keepalives of every session of this process, sent by one thread per cluster.
//!
//! A thread and a connection per session would cost a process holding 10,000 sessions
//! 10,000 threads and 10,000 connections (and the leader 10,000 sockets). Instead the sessions
//! of one cluster share a hub: one thread, one connection, and keepalives that fall due close
//! together travel in one `KeepAlive` request (at most [`EXPIRE_BATCH_MAX`] sessions each),
//! so that the leader confirms its leadership once for all of them.
//!
//! The hub runs while it has sessions: the first registration starts its thread, the last
//! deregistration stops and joins it (so a program that closed its sessions has no thread of
//! ours left behind).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::client::{CancelHandle, Client};
use super::session::{boot_now, SessionShared, SessionStatus};
use crate::error::{Error, Result};
use crate::limits::EXPIRE_BATCH_MAX;
use crate::runtime::wire::{ClientOp, ClientReply};

/// How long after a failed keepalive the hub tries again (less than any session's interval).
const RETRY: Duration = Duration::from_millis(100);

/// The shortest time a keepalive may wait for its answer (a session's interval is longer).
const CALL_MIN: Duration = Duration::from_millis(200);

/// How early a keepalive may go: keepalives falling due within this window share a request.
/// Well below the shortest interval (a third of the shortest TTL), so an early renewal
/// changes nothing for the session's safety.
const COALESCE: Duration = Duration::from_millis(80);
const _: () = assert!(COALESCE.as_millis() * 3 * 4 <= crate::limits::SESSION_TTL_MS_MIN as u128);

/// Which hub a session belongs to: sessions of the same cluster reached through the same
/// endpoints share one.
#[derive(Clone, PartialEq, Eq)]
struct HubKey {
    endpoints: Vec<String>,
    cluster: u64,
    /// Clients with other credentials keep their sessions alive through a hub of their own.
    tls: Option<crate::runtime::tls::TlsFiles>,
    token: crate::runtime::access::Secret,
}

/// One registered session.
struct Entry {
    shared: Arc<SessionShared>,
    /// Its key in [`State::schedule`]; `None` while its keepalive is in flight (or after it
    /// ended: it is then only waiting to be deregistered).
    scheduled: Option<Instant>,
    /// When [`Hub::hurry`] last asked for a renewal now (a batch sent before then does
    /// not answer it).
    hurried: Option<Instant>,
}

impl Entry {
    fn live(&self) -> bool {
        !self.shared.stop.load(Ordering::SeqCst) && self.shared.status() != SessionStatus::Lost
    }
}

struct State {
    /// The sessions registered (bounded by the sessions this process holds, which the
    /// cluster bounds by `SESSIONS_MAX`).
    sessions: BTreeMap<u64, Entry>,
    /// When each scheduled session's next keepalive goes, soonest first (so that a round
    /// costs the sessions it sends, not all of them).
    schedule: std::collections::BTreeSet<(Instant, u64)>,
    /// Set by the last deregistration: the thread ends.
    shutdown: bool,
}

impl State {
    /// (Re)schedules session `id`'s next keepalive at `at`.
    fn schedule(&mut self, id: u64, at: Instant) {
        if let Some(entry) = self.sessions.get_mut(&id) {
            if let Some(old) = entry.scheduled.replace(at) {
                self.schedule.remove(&(old, id));
            }
            self.schedule.insert((at, id));
        }
    }
}

/// The keepalive thread of one cluster and the sessions it keeps alive.
pub(crate) struct Hub {
    key: HubKey,
    state: Mutex<State>,
    wake: Condvar,
    client: Client,
    cancel: CancelHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The hubs with sessions, one per cluster (bounded by the sessions this process holds).
fn hubs() -> &'static Mutex<Vec<Arc<Hub>>> {
    static HUBS: OnceLock<Mutex<Vec<Arc<Hub>>>> = OnceLock::new();
    HUBS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Starts keeping `shared` alive, the first keepalive going one interval after `created`
/// (when the request that created it was sent: its safe time runs from then, so a creation
/// that took long leaves less of it); returns its hub (for [`Hub::deregister`]).
pub(crate) fn register(
    through: &Client,
    shared: Arc<SessionShared>,
    created: Instant,
) -> Result<Arc<Hub>> {
    let config = through.config();
    let key = HubKey {
        endpoints: config.endpoints.clone(),
        cluster: config.cluster,
        tls: config.tls.clone(),
        token: config.token.clone(),
    };
    let mut hubs = hubs().lock();
    let hub = match hubs.iter().find(|h| h.key == key) {
        Some(hub) => hub.clone(),
        None => {
            let client = through.sibling();
            // Where the session was just created is where its first keepalive should go
            // (the endpoints before it may be down or slow).
            if let Some(endpoint) = through.last_endpoint() {
                client.prefer(endpoint);
            }
            let hub = Arc::new(Hub {
                key,
                state: Mutex::new(State {
                    sessions: BTreeMap::new(),
                    schedule: std::collections::BTreeSet::new(),
                    shutdown: false,
                }),
                wake: Condvar::new(),
                cancel: client.cancel_handle(),
                client,
                thread: Mutex::new(None),
            });
            let runner = hub.clone();
            let thread = std::thread::Builder::new()
                .name("accord-sessions".into()) // 15 bytes: the most a thread name shows
                .spawn(move || runner.run())
                .map_err(|e| Error::io("starting the keepalive thread", &e))?;
            *hub.thread.lock() = Some(thread);
            hubs.push(hub.clone());
            hub
        }
    };
    let id = shared.id;
    let at = created + shared.ttl / 3 - COALESCE;
    let mut state = hub.state.lock();
    let entry = Entry {
        shared,
        scheduled: None,
        hurried: None,
    };
    state.sessions.insert(id, entry);
    state.schedule(id, at);
    drop(state);
    hub.wake.notify_all();
    Ok(hub)
}

impl Hub {
    /// Stops keeping session `id` alive; the last session out stops the thread.
    pub(crate) fn deregister(self: &Arc<Hub>, id: u64) {
        let thread = {
            let mut hubs = hubs().lock();
            let mut state = self.state.lock();
            if let Some(Entry {
                scheduled: Some(at),
                ..
            }) = state.sessions.remove(&id)
            {
                state.schedule.remove(&(at, id));
            }
            if !state.sessions.is_empty() || state.shutdown {
                return;
            }
            state.shutdown = true;
            hubs.retain(|h| !Arc::ptr_eq(h, self));
            self.wake.notify_all();
            self.thread.lock().take()
        };
        // Outside the locks: the thread may need them to finish its current round.
        self.cancel.cancel();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Sends session `id`'s keepalive in the next batch, now.
    pub(crate) fn hurry(&self, id: u64) {
        let now = Instant::now();
        let mut state = self.state.lock();
        match state.sessions.get_mut(&id) {
            Some(entry) if entry.scheduled.is_some() => state.schedule(id, now),
            // In flight: rescheduled for now when its answer comes.
            Some(entry) => entry.hurried = Some(now),
            None => return,
        }
        self.wake.notify_all();
    }

    /// The thread: waits for the earliest keepalive due, sends every one due (in batches),
    /// and records the answers. Bounded by the hub's life.
    fn run(self: Arc<Hub>) {
        loop {
            let batch = {
                let mut state = self.state.lock();
                // Bounded: every pass either returns, sends a batch or waits.
                loop {
                    if state.shutdown {
                        return;
                    }
                    let now = Instant::now();
                    let mut batch = Vec::new();
                    while batch.len() < EXPIRE_BATCH_MAX {
                        let Some(&(at, id)) = state.schedule.first() else {
                            break;
                        };
                        if at > now {
                            break;
                        }
                        state.schedule.pop_first();
                        let Some(entry) = state.sessions.get_mut(&id) else {
                            continue;
                        };
                        entry.scheduled = None;
                        // A session closed or lost is not sent again (nor rescheduled).
                        if entry.live() {
                            batch.push(entry.shared.clone());
                        }
                    }
                    if !batch.is_empty() {
                        break batch;
                    }
                    match state.schedule.first() {
                        Some(&(at, _)) => {
                            self.wake.wait_until(&mut state, at);
                        }
                        None => self.wake.wait(&mut state),
                    }
                }
            };
            self.send(&batch);
        }
    }

    /// Sends one keepalive for `batch` and records what the cluster answered.
    fn send(&self, batch: &[Arc<SessionShared>]) {
        let started = Instant::now();
        let sent = boot_now();
        // Never waits past the soonest next keepalive, so one slow answer cannot make a
        // session miss its safe time.
        let shortest = batch.iter().map(|s| s.ttl / 3).min().unwrap_or(CALL_MIN);
        let op = ClientOp::KeepAlive {
            sessions: batch.iter().map(|s| s.id).collect(),
        };
        let answer = self.client.call_until(op, started + shortest.max(CALL_MIN));
        let now = Instant::now();
        let mut state = self.state.lock();
        let granted: BTreeMap<u64, u64> = match answer {
            Ok(ClientReply::KeptAlive(ttls)) => ttls.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let answered = !granted.is_empty();
        for shared in batch {
            let next = match granted.get(&shared.id) {
                Some(ttl_ms) if *ttl_ms > 0 => {
                    shared.acknowledged(sent, Duration::from_millis(*ttl_ms));
                    started + shared.ttl / 3 - COALESCE
                }
                Some(_) => {
                    shared.lose("the cluster no longer has the session (it expired)".into());
                    continue;
                }
                // No answer (no leader, a lost connection): again soon.
                None if !answered => now + RETRY,
                None => continue,
            };
            let Some(entry) = state.sessions.get_mut(&shared.id) else {
                continue; // deregistered meanwhile
            };
            let next = match entry.hurried.take() {
                // Asked for after this batch left: still due now.
                Some(at) if at > started => now,
                _ => next,
            };
            state.schedule(shared.id, next);
        }
    }
}
