//! The Python module `accord._native` (cargo feature `python`, built by maturin): the Rust API
//! as Python classes. `python/accord/__init__.py` builds the Pythonic layer (context
//! managers, iterators, `str` keys) on top.
//!
//! Every call that can wait runs with the GIL released. Calls that can wait long (lock,
//! claim, campaign, barrier, watch, session waits, writes) run on a helper thread while this
//! one checks for signals every 100 ms: Ctrl-C cancels the call and raises
//! `KeyboardInterrupt`.

#![allow(missing_docs)] // the Python-facing documentation is in the docstrings and the stubs

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::api::{
    Claim, Client, ClientConfig, Compare, Condition, Event, EventKind, Leadership, Lock,
    Membership, Node, NodeConfig, Op, Session, SessionStatus, Space, WatchItem, WatchStream,
};
use crate::Error;

create_exception!(
    _native,
    AccordError,
    PyException,
    "Base class of accord's errors."
);
create_exception!(
    _native,
    Timeout,
    AccordError,
    "A blocking call was not satisfied in time."
);
create_exception!(_native, Cancelled, AccordError, "The call was cancelled.");
create_exception!(
    _native,
    NotLeader,
    AccordError,
    "No leader answered in time; retry later."
);
create_exception!(
    _native,
    Rejected,
    AccordError,
    "The cluster refused the request."
);
create_exception!(
    _native,
    SessionLost,
    AccordError,
    "The session is lost: what it held is gone."
);
create_exception!(
    _native,
    LockLost,
    SessionLost,
    "The lock is lost (its session is)."
);
create_exception!(
    _native,
    Compacted,
    AccordError,
    "A watch's revision left the history."
);
create_exception!(
    _native,
    Shutdown,
    AccordError,
    "The object was closed or its node stopped."
);
create_exception!(
    _native,
    InvalidArgument,
    AccordError,
    "An argument is out of range."
);
create_exception!(
    _native,
    StorageError,
    AccordError,
    "Storage failed or is damaged."
);
create_exception!(
    _native,
    PermissionDenied,
    AccordError,
    "The client did not authenticate, or may not make this request."
);
create_exception!(
    _native,
    ConfigError,
    AccordError,
    "The configuration is invalid."
);

fn to_py(error: Error) -> PyErr {
    let text = error.to_string();
    match error {
        Error::Timeout(_) => Timeout::new_err(text),
        Error::Cancelled => Cancelled::new_err(text),
        Error::NotLeader { .. } | Error::Busy(_) | Error::TransferInProgress => {
            NotLeader::new_err(text)
        }
        Error::Rejected(_) => Rejected::new_err(text),
        Error::PermissionDenied(_) => PermissionDenied::new_err(text),
        Error::SessionLost(_) => SessionLost::new_err(text),
        Error::InvalidArgument(_) | Error::EntryTooLarge { .. } => InvalidArgument::new_err(text),
        Error::Compacted { .. } => Compacted::new_err(text),
        // A client's I/O errors are connections that failed: the cluster is unreachable.
        Error::Io { .. } => NotLeader::new_err(text),
        Error::StorageFailed(_)
        | Error::Corruption { .. }
        | Error::Corrupt(_)
        | Error::DataDirLocked { .. } => StorageError::new_err(text),
        Error::InvalidConfig(_) | Error::UnknownNode(_) => ConfigError::new_err(text),
        _ => AccordError::new_err(text),
    }
}

fn seconds(timeout: Option<f64>, default: Duration) -> PyResult<Duration> {
    match timeout {
        None => Ok(default),
        Some(t) if t.is_finite() && (0.0..=86_400.0 * 365.0).contains(&t) => {
            Ok(Duration::from_secs_f64(t))
        }
        Some(t) => Err(InvalidArgument::new_err(format!(
            "timeout must be a number of seconds >= 0, not {t}"
        ))),
    }
}

/// Runs `op` on a helper thread with the GIL released, checking for signals every 100 ms;
/// on a signal (Ctrl-C) calls `cancel`, waits for `op` to stop, and raises the signal's
/// exception.
fn blocking<T: Send + 'static>(
    py: Python<'_>,
    cancel: impl Fn(),
    op: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> PyResult<T> {
    interruptible(py, cancel, Duration::from_secs(5), op)
}

/// [`blocking`] for a call that cannot be cancelled (a session's creation, a release...): on
/// a signal the caller gets the exception at once and the call ends by its own timeout on
/// its thread.
fn uncancellable<T: Send + 'static>(
    py: Python<'_>,
    op: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> PyResult<T> {
    interruptible(py, || {}, Duration::ZERO, op)
}

fn interruptible<T: Send + 'static>(
    py: Python<'_>,
    cancel: impl Fn(),
    settle: Duration,
    op: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> PyResult<T> {
    let (done, result) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("accord-python-call".into())
        .spawn(move || {
            let _ = done.send(op());
        })
        .map_err(|e| AccordError::new_err(format!("starting a thread: {e}")))?;
    // Bounded by the operation's own timeout; a signal ends it early.
    loop {
        let received = py.detach(|| result.recv_timeout(Duration::from_millis(100)));
        match received {
            Ok(value) => return value.map_err(to_py),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(AccordError::new_err(
                    "the call's thread ended without an answer",
                ))
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Err(signal) = py.check_signals() {
                    cancel();
                    // A cancellable call withdraws within a few hundred milliseconds: wait
                    // for it, so that nothing it obtained meanwhile is left behind.
                    let _ = py.detach(|| result.recv_timeout(settle));
                    return Err(signal);
                }
            }
        }
    }
}

/// A (key, value) pair as Python gets it.
type PyPair<'py> = (Bound<'py, PyBytes>, Bound<'py, PyBytes>);

/// A group member as Python gets it: (id, session, metadata).
type PyMember<'py> = (Bound<'py, PyBytes>, u64, Bound<'py, PyBytes>);

fn bytes<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, data)
}

/// Set when the caller of a blocking call gave up (a signal): a grant that arrives anyway is
/// handed back instead of being left to a caller that is gone.
#[derive(Clone)]
struct Interrupted(Arc<std::sync::atomic::AtomicBool>);

impl Interrupted {
    fn pair() -> (Interrupted, Interrupted) {
        let flag = Interrupted(Arc::new(std::sync::atomic::AtomicBool::new(false)));
        (flag.clone(), flag)
    }

    fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A connection to a cluster.
#[pyclass(module = "accord._native", frozen)]
pub struct NativeClient {
    client: Arc<Client>,
}

#[pymethods]
impl NativeClient {
    /// Connects to `endpoints` (addresses "host:port"); `timeout` bounds each call.
    #[new]
    #[pyo3(signature = (endpoints, cluster_id=1, timeout=None, tls_ca=None, tls_cert=None, tls_key=None, token=None))]
    fn new(
        endpoints: Vec<String>,
        cluster_id: u64,
        timeout: Option<f64>,
        tls_ca: Option<std::path::PathBuf>,
        tls_cert: Option<std::path::PathBuf>,
        tls_key: Option<std::path::PathBuf>,
        token: Option<String>,
    ) -> PyResult<Self> {
        let mut config = ClientConfig::new(endpoints);
        config.cluster = cluster_id;
        config.timeout = seconds(timeout, config.timeout)?;
        config.tls = match (tls_ca, tls_cert, tls_key) {
            (None, None, None) => None,
            (Some(ca), cert, key) => Some(crate::runtime::tls::TlsFiles { ca, cert, key }),
            (None, _, _) => return Err(ConfigError::new_err("tls_cert and tls_key need tls_ca")),
        };
        config.token = crate::runtime::access::Secret(token.unwrap_or_default().into_bytes());
        let client = Client::connect(config).map_err(to_py)?;
        Ok(NativeClient {
            client: Arc::new(client),
        })
    }

    fn put(&self, py: Python<'_>, key: Vec<u8>, value: Vec<u8>) -> PyResult<u64> {
        let client = self.client.clone();
        let cancel = client.cancel_handle();
        blocking(
            py,
            move || cancel.cancel(),
            move || client.put(&key, &value),
        )
    }

    /// (value or None, revision).
    #[pyo3(signature = (key, serializable=false))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: Vec<u8>,
        serializable: bool,
    ) -> PyResult<(Option<Bound<'py, PyBytes>>, u64)> {
        // A serializable read is answered by one member at once: the fast path, no helper
        // thread. A linearizable one may wait for a quorum: interruptible.
        let (found, revision) = if serializable {
            let client = &self.client;
            py.detach(|| client.get_serializable(&key)).map_err(to_py)?
        } else {
            let client = self.client.clone();
            let cancel = client.cancel_handle();
            blocking(py, move || cancel.cancel(), move || client.get(&key))?
        };
        Ok((found.map(|kv| bytes(py, &kv.value)), revision))
    }

    fn delete(&self, py: Python<'_>, key: Vec<u8>) -> PyResult<(bool, u64)> {
        let client = self.client.clone();
        let cancel = client.cancel_handle();
        blocking(py, move || cancel.cancel(), move || client.delete(&key))
    }

    #[pyo3(signature = (key, expected, value))]
    fn compare_and_swap(
        &self,
        py: Python<'_>,
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> PyResult<(bool, u64)> {
        let client = self.client.clone();
        let cancel = client.cancel_handle();
        blocking(
            py,
            move || cancel.cancel(),
            move || client.compare_and_swap(&key, expected.as_deref(), &value),
        )
    }

    /// ([(key, value)], more, revision).
    #[pyo3(signature = (prefix, limit=10_000))]
    fn range<'py>(
        &self,
        py: Python<'py>,
        prefix: Vec<u8>,
        limit: u32,
    ) -> PyResult<(Vec<PyPair<'py>>, bool, u64)> {
        let client = self.client.clone();
        let cancel = client.cancel_handle();
        let (found, more, revision) = blocking(
            py,
            move || cancel.cancel(),
            move || client.range(&prefix, limit),
        )?;
        let pairs = found
            .iter()
            .map(|kv| (bytes(py, &kv.key), bytes(py, &kv.value)))
            .collect();
        Ok((pairs, more, revision))
    }

    /// compares: [(key, kind, operand)] with kind "value" | "exists" | "version" |
    /// "mod_revision" | "lock_token" | "leader_token"; success / failure: [(key, value or
    /// None for a delete)]. Returns (succeeded, revision).
    fn txn(
        &self,
        py: Python<'_>,
        compares: Vec<(Vec<u8>, String, Bound<'_, PyAny>)>,
        success: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        failure: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> PyResult<(bool, u64)> {
        let mut conditions = Vec::new();
        for (key, kind, operand) in compares {
            let compare = match kind.as_str() {
                "value" => Compare::Value(operand.extract()?),
                "exists" => Compare::Exists(operand.extract()?),
                "version" => Compare::Version(operand.extract()?),
                "mod_revision" => Compare::ModRevision(operand.extract()?),
                "lock_token" => Compare::LockToken(operand.extract()?),
                "leader_token" => Compare::LeaderToken(operand.extract()?),
                other => {
                    return Err(InvalidArgument::new_err(format!(
                        "unknown comparison {other:?}"
                    )))
                }
            };
            conditions.push(Condition { key, compare });
        }
        let ops = |list: Vec<(Vec<u8>, Option<Vec<u8>>)>| -> Vec<Op> {
            list.into_iter()
                .map(|(key, value)| match value {
                    Some(value) => Op::Put { key, value },
                    None => Op::Delete { key },
                })
                .collect()
        };
        let (success, failure) = (ops(success), ops(failure));
        let client = self.client.clone();
        let cancel = client.cancel_handle();
        blocking(
            py,
            move || cancel.cancel(),
            move || client.txn(conditions, success, failure),
        )
    }

    fn counter_add(&self, py: Python<'_>, name: Vec<u8>, delta: i64) -> PyResult<i64> {
        let client = self.client.clone();
        let cancel = client.cancel_handle();
        blocking(
            py,
            move || cancel.cancel(),
            move || client.add(&name, delta),
        )
    }

    fn counter(&self, py: Python<'_>, name: Vec<u8>) -> PyResult<i64> {
        let client = self.client.clone();
        let cancel = client.cancel_handle();
        blocking(py, move || cancel.cancel(), move || client.counter(&name))
    }

    fn enqueue(&self, py: Python<'_>, queue: Vec<u8>, payload: Vec<u8>) -> PyResult<u64> {
        let client = self.client.clone();
        let cancel = client.cancel_handle();
        blocking(
            py,
            move || cancel.cancel(),
            move || client.enqueue(&queue, &payload),
        )
    }

    /// (session, token, value) of election `name`'s leader, or None.
    fn leader<'py>(
        &self,
        py: Python<'py>,
        name: Vec<u8>,
    ) -> PyResult<Option<(u64, u64, Bound<'py, PyBytes>)>> {
        let client = self.client.clone();
        let cancel = client.cancel_handle();
        let leader = blocking(py, move || cancel.cancel(), move || client.leader(&name))?;
        Ok(leader.map(|l| (l.session, l.token, bytes(py, &l.value))))
    }

    /// [(member id, session, metadata)] of `group`.
    fn members<'py>(&self, py: Python<'py>, group: Vec<u8>) -> PyResult<Vec<PyMember<'py>>> {
        let client = self.client.clone();
        let cancel = client.cancel_handle();
        let (members, _) = blocking(py, move || cancel.cancel(), move || client.members(&group))?;
        Ok(members
            .iter()
            .map(|m| (bytes(py, &m.id), m.session, bytes(py, &m.metadata)))
            .collect())
    }

    /// The member's status: (id, role, term, leader, commit, applied, revision).
    fn status(&self, py: Python<'_>) -> PyResult<(u64, String, u64, u64, u64, u64, u64)> {
        let client = self.client.clone();
        let cancel = client.cancel_handle();
        let s = blocking(py, move || cancel.cancel(), move || client.status())?;
        Ok((
            s.id, s.role, s.term, s.leader, s.commit, s.applied, s.revision,
        ))
    }

    /// A watch of `space` ("kv", "lock", "election", "group", "queue", "barrier", "counter",
    /// "session") under `prefix` from revision `start_revision`.
    fn watch(
        &self,
        py: Python<'_>,
        space: &str,
        prefix: Vec<u8>,
        start_revision: u64,
    ) -> PyResult<NativeWatch> {
        let space = parse_space(space)?;
        let client = self.client.clone();
        let opened = uncancellable(py, move || {
            match client.watch(space, &prefix, start_revision) {
                Err(Error::Rejected(why)) if why.contains("history") => Ok(Err(why)),
                other => other.map(Ok),
            }
        })?;
        let (stream, _) = opened.map_err(Compacted::new_err)?;
        Ok(NativeWatch {
            stream: Arc::new(Mutex::new(stream)),
        })
    }

    /// Opens a session with `ttl` seconds.
    fn session(&self, py: Python<'_>, ttl: f64) -> PyResult<NativeSession> {
        if !ttl.is_finite() || ttl <= 0.0 {
            return Err(InvalidArgument::new_err(format!(
                "a session's TTL must be a positive number of seconds (1 to 86400), not {ttl}"
            )));
        }
        let ttl = seconds(Some(ttl), Duration::ZERO)?;
        let client = self.client.clone();
        let session = uncancellable(py, move || Session::create_on(client, ttl))?;
        Ok(NativeSession {
            session: Arc::new(session),
        })
    }

    fn cancel(&self) {
        self.client.cancel_handle().cancel();
    }
}

fn parse_space(space: &str) -> PyResult<Space> {
    Space::from_name(space)
        .ok_or_else(|| InvalidArgument::new_err(format!("{space:?} is not a space")))
}

fn event_kind(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Put => "put",
        EventKind::Delete => "delete",
        EventKind::Granted => "granted",
        EventKind::Waiting => "waiting",
        EventKind::Ended(_) => "ended",
        EventKind::Proclaimed => "proclaimed",
        EventKind::Joined => "joined",
        EventKind::Left(_) => "left",
        EventKind::Enqueued => "enqueued",
        EventKind::Acked => "acked",
        EventKind::Requeued => "requeued",
        EventKind::Arrived => "arrived",
        EventKind::Opened => "opened",
        EventKind::Counted => "counted",
        EventKind::SessionCreated => "session_created",
        EventKind::SessionEnded(_) => "session_ended",
    }
}

/// A watch: `next(timeout)` returns a list of events (empty on timeout).
#[pyclass(module = "accord._native", frozen)]
pub struct NativeWatch {
    stream: Arc<Mutex<WatchStream>>,
}

type PyEvent<'py> = (
    u64,
    &'static str,
    &'static str,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    u64,
    u64,
    u64,
);

#[pymethods]
impl NativeWatch {
    /// [(revision, space, kind, key, value, session, token, item)]; [] when none came in time.
    #[pyo3(signature = (timeout=None))]
    fn next<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Vec<PyEvent<'py>>> {
        let timeout = seconds(timeout, Duration::from_secs(3600))?;
        let stream = self.stream.clone();
        let deadline = std::time::Instant::now() + timeout;
        // In slices of 100 ms, so that Ctrl-C is noticed.
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let step = left.min(Duration::from_millis(100));
            let next = {
                let stream = stream.clone();
                py.detach(move || stream.lock().next(step))
            }
            .map_err(to_py)?;
            match next {
                Some((_, WatchItem::Events(events))) => return Ok(py_events(py, &events)),
                Some((_, WatchItem::Compacted { revision })) => {
                    return Err(Compacted::new_err(format!(
                        "the watch fell behind the history; list again at revision {revision}"
                    )))
                }
                Some((_, WatchItem::Cancelled(why))) => return Err(Rejected::new_err(why)),
                None if left.is_zero() => return Ok(Vec::new()),
                None => py.check_signals()?,
            }
        }
    }
}

fn py_events<'py>(py: Python<'py>, events: &[Event]) -> Vec<PyEvent<'py>> {
    events
        .iter()
        .map(|e| {
            (
                e.revision,
                e.space.name(),
                event_kind(&e.kind),
                bytes(py, &e.key),
                bytes(
                    py,
                    if e.value.is_empty() {
                        &e.member
                    } else {
                        &e.value
                    },
                ),
                e.session,
                e.token,
                e.item,
            )
        })
        .collect()
}

/// A session (kept alive by a thread of the library).
#[pyclass(module = "accord._native", frozen)]
pub struct NativeSession {
    session: Arc<Session>,
}

#[pymethods]
impl NativeSession {
    #[getter]
    fn id(&self) -> u64 {
        self.session.id()
    }

    /// "held", "suspect" or "lost".
    fn state(&self) -> &'static str {
        state_name(self.session.status())
    }

    /// Waits up to `timeout` seconds for the state to differ from `current`; returns it.
    fn wait_change(&self, py: Python<'_>, current: &str, timeout: f64) -> PyResult<&'static str> {
        let from = match current {
            "held" => SessionStatus::Held,
            "suspect" => SessionStatus::Suspect,
            "lost" => SessionStatus::Lost,
            other => {
                return Err(InvalidArgument::new_err(format!(
                    "{other:?} is not a state"
                )))
            }
        };
        let timeout = seconds(Some(timeout), Duration::ZERO)?;
        let session = self.session.clone();
        let state = uncancellable(py, move || Ok(session.wait_change(from, timeout)))?;
        Ok(state_name(state))
    }

    /// kind: "mutex", "read", "write" or "semaphore" (with `permits`); `timeout` None waits
    /// up to an hour; `wait=False` returns None at once when busy (mutex only).
    #[pyo3(signature = (name, kind="mutex", permits=1, timeout=None, wait=true))]
    fn lock(
        &self,
        py: Python<'_>,
        name: Vec<u8>,
        kind: &str,
        permits: u32,
        timeout: Option<f64>,
        wait: bool,
    ) -> PyResult<Option<NativeLock>> {
        let timeout = seconds(timeout, Duration::from_secs(3600))?;
        let session = self.session.clone();
        let cancel = self.session.clone();
        let kind = kind.to_string();
        let (interrupted, flag) = Interrupted::pair();
        let lock = blocking(
            py,
            move || {
                flag.set();
                cancel.cancel_waits()
            },
            move || {
                let taken = match (kind.as_str(), wait) {
                    ("mutex", false) => session.try_lock(&name),
                    ("mutex", true) => session.lock(&name, timeout).map(Some),
                    ("read", true) => session.read_lock(&name, timeout).map(Some),
                    ("write", true) => session.write_lock(&name, timeout).map(Some),
                    ("semaphore", true) => {
                        session.acquire_permit(&name, permits, timeout).map(Some)
                    }
                    (other, _) => Err(Error::InvalidArgument(format!(
                        "{other:?} with wait={wait} is not a lock kind (mutex, read, write, \
                         semaphore; wait=False for mutexes only)"
                    ))),
                };
                // Granted just as the caller gave up: nobody will use it, give it back.
                match taken {
                    Ok(Some(lock)) if interrupted.is_set() => {
                        let _ = lock.release();
                        Err(Error::Cancelled)
                    }
                    other => other,
                }
            },
        )?;
        Ok(lock.map(|lock| NativeLock {
            token: lock.token(),
            lock: Arc::new(Mutex::new(Some(lock))),
        }))
    }

    #[pyo3(signature = (name, value, timeout=None))]
    fn campaign(
        &self,
        py: Python<'_>,
        name: Vec<u8>,
        value: Vec<u8>,
        timeout: Option<f64>,
    ) -> PyResult<NativeLeadership> {
        let timeout = seconds(timeout, Duration::from_secs(3600))?;
        let session = self.session.clone();
        let cancel = self.session.clone();
        let (interrupted, flag) = Interrupted::pair();
        let leadership = blocking(
            py,
            move || {
                flag.set();
                cancel.cancel_waits()
            },
            move || match session.campaign(&name, &value, timeout) {
                Ok(leadership) if interrupted.is_set() => {
                    let _ = leadership.resign();
                    Err(Error::Cancelled)
                }
                other => other,
            },
        )?;
        Ok(NativeLeadership {
            token: leadership.token(),
            leadership: Arc::new(Mutex::new(Some(leadership))),
        })
    }

    fn join(
        &self,
        py: Python<'_>,
        group: Vec<u8>,
        member: Vec<u8>,
        metadata: Vec<u8>,
    ) -> PyResult<NativeMembership> {
        let session = self.session.clone();
        let membership = uncancellable(py, move || session.join(&group, &member, &metadata))?;
        Ok(NativeMembership {
            membership: Arc::new(Mutex::new(Some(membership))),
        })
    }

    /// Claims an item of `queue` (None when `wait=False` and it is empty).
    #[pyo3(signature = (queue, timeout=None, wait=true))]
    fn claim(
        &self,
        py: Python<'_>,
        queue: Vec<u8>,
        timeout: Option<f64>,
        wait: bool,
    ) -> PyResult<Option<NativeClaim>> {
        let timeout = seconds(timeout, Duration::from_secs(3600))?;
        let session = self.session.clone();
        let cancel = self.session.clone();
        let (interrupted, flag) = Interrupted::pair();
        let claim = blocking(
            py,
            move || {
                flag.set();
                cancel.cancel_waits()
            },
            move || {
                let claimed = if wait {
                    session.claim(&queue, timeout).map(Some)
                } else {
                    session.try_claim(&queue)
                };
                match claimed {
                    // Claimed just as the caller gave up: back to the queue for others.
                    Ok(Some(claim)) if interrupted.is_set() => {
                        let _ = claim.release();
                        Err(Error::Cancelled)
                    }
                    other => other,
                }
            },
        )?;
        Ok(claim.map(|claim| NativeClaim {
            item: claim.item,
            token: claim.token,
            payload: claim.payload.clone(),
            claim: Arc::new(Mutex::new(Some(claim))),
        }))
    }

    #[pyo3(signature = (name, participants, timeout=None))]
    fn barrier(
        &self,
        py: Python<'_>,
        name: Vec<u8>,
        participants: u32,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let timeout = seconds(timeout, Duration::from_secs(3600))?;
        let session = self.session.clone();
        let cancel = self.session.clone();
        blocking(
            py,
            move || cancel.cancel_waits(),
            move || session.barrier(&name, participants, timeout),
        )
    }

    /// Renews the session now; returns once the cluster acknowledged it.
    #[pyo3(signature = (timeout=None))]
    fn keep_alive_once(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = seconds(timeout, self.session.client().config().timeout)?;
        let session = self.session.clone();
        let cancel = self.session.clone();
        blocking(
            py,
            move || cancel.cancel_waits(),
            move || session.keep_alive_once(timeout),
        )
    }

    /// Cancels the blocking calls in progress on this session (they raise Cancelled).
    fn cancel(&self) {
        self.session.cancel_waits();
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let session = self.session.clone();
        uncancellable(py, move || session.end())
    }
}

fn state_name(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Held => "held",
        SessionStatus::Suspect => "suspect",
        SessionStatus::Lost => "lost",
    }
}

/// A held lock.
#[pyclass(module = "accord._native", frozen)]
pub struct NativeLock {
    lock: Arc<Mutex<Option<Lock>>>,
    #[pyo3(get)]
    token: u64,
}

#[pymethods]
impl NativeLock {
    fn is_held(&self) -> bool {
        self.lock.lock().as_ref().is_some_and(Lock::is_held)
    }

    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let lock = self.lock.clone();
        uncancellable(py, move || match lock.lock().take() {
            Some(held) => held.release(),
            None => Ok(()),
        })
    }
}

/// Leadership of an election.
#[pyclass(module = "accord._native", frozen)]
pub struct NativeLeadership {
    leadership: Arc<Mutex<Option<Leadership>>>,
    #[pyo3(get)]
    token: u64,
}

#[pymethods]
impl NativeLeadership {
    fn is_leader(&self) -> bool {
        self.leadership
            .lock()
            .as_ref()
            .is_some_and(Leadership::is_leader)
    }

    fn proclaim(&self, py: Python<'_>, value: Vec<u8>) -> PyResult<()> {
        let leadership = self.leadership.clone();
        uncancellable(py, move || match leadership.lock().as_ref() {
            Some(held) => held.proclaim(&value),
            None => Err(Error::Rejected("this leadership was resigned".into())),
        })
    }

    fn resign(&self, py: Python<'_>) -> PyResult<()> {
        let leadership = self.leadership.clone();
        uncancellable(py, move || match leadership.lock().take() {
            Some(held) => held.resign(),
            None => Ok(()),
        })
    }
}

/// Presence in a group.
#[pyclass(module = "accord._native", frozen)]
pub struct NativeMembership {
    membership: Arc<Mutex<Option<Membership>>>,
}

#[pymethods]
impl NativeMembership {
    fn leave(&self, py: Python<'_>) -> PyResult<()> {
        let membership = self.membership.clone();
        uncancellable(py, move || match membership.lock().take() {
            Some(present) => present.leave(),
            None => Ok(()),
        })
    }
}

/// A claimed queue item.
#[pyclass(module = "accord._native", frozen)]
pub struct NativeClaim {
    claim: Arc<Mutex<Option<Claim>>>,
    #[pyo3(get)]
    item: u64,
    #[pyo3(get)]
    token: u64,
    payload: Vec<u8>,
}

#[pymethods]
impl NativeClaim {
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes(py, &self.payload)
    }

    fn is_held(&self) -> bool {
        self.claim.lock().as_ref().is_some_and(Claim::is_held)
    }

    /// Acknowledges (`ack=True`) or gives the item back.
    fn settle(&self, py: Python<'_>, ack: bool) -> PyResult<()> {
        let claim = self.claim.clone();
        uncancellable(py, move || match claim.lock().take() {
            Some(held) if ack => held.ack(),
            Some(held) => held.release(),
            None => Err(Error::Rejected("this claim was already settled".into())),
        })
    }
}

/// A cluster member running in this process.
#[pyclass(module = "accord._native", frozen)]
pub struct NativeNode {
    node: Mutex<Option<Node>>,
}

#[pymethods]
impl NativeNode {
    /// Starts member `id` on `listen` with `peers` {id: "host:port"} and its data in
    /// `data_dir`; `tick` is the clock tick in seconds (elections take 10 to 20 ticks).
    #[new]
    #[pyo3(signature = (id, listen, peers, data_dir, tick=0.05))]
    fn new(
        py: Python<'_>,
        id: u64,
        listen: &str,
        peers: std::collections::BTreeMap<u64, String>,
        data_dir: &str,
        tick: f64,
    ) -> PyResult<Self> {
        let address = |text: &str| -> PyResult<std::net::SocketAddr> {
            text.parse()
                .map_err(|_| InvalidArgument::new_err(format!("{text:?} is not host:port")))
        };
        let listen = address(listen)?;
        let mut members = std::collections::BTreeMap::new();
        members.insert(id, listen);
        for (peer, peer_address) in peers {
            members.insert(peer, address(&peer_address)?);
        }
        let mut config = NodeConfig::new(id, listen, members, data_dir.into());
        config.tick = seconds(Some(tick), Duration::from_millis(50))?;
        let node = py
            .detach(|| Node::start(config))
            .map_err(|error| match error {
                // A member's I/O errors are its data directory's (or its address's).
                Error::Io { .. } => StorageError::new_err(error.to_string()),
                other => to_py(other),
            })?;
        Ok(NativeNode {
            node: Mutex::new(Some(node)),
        })
    }

    /// A client of this member (local requests; follows the leader when it does not lead).
    fn client(&self) -> PyResult<NativeClient> {
        let node = self.node.lock();
        let node = node
            .as_ref()
            .ok_or_else(|| Shutdown::new_err("the node was stopped"))?;
        Ok(NativeClient {
            client: Arc::new(node.client().map_err(to_py)?),
        })
    }

    /// The address this member listens on, "host:port" (the chosen one when it was started
    /// on port 0).
    #[getter]
    fn address(&self) -> PyResult<String> {
        let node = self.node.lock();
        let node = node
            .as_ref()
            .ok_or_else(|| Shutdown::new_err("the node was stopped"))?;
        Ok(node.address().to_string())
    }

    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let node = self.node.lock().take();
        match node {
            Some(node) => py.detach(|| node.stop()).map_err(to_py),
            None => Ok(()),
        }
    }
}

/// Nanoseconds per call of `calls` serializable gets of `key` through `client`, looped in
/// Rust (the benchmark's reference for the same call made from Python).
#[pyfunction]
fn bench_rust_get(
    py: Python<'_>,
    client: &NativeClient,
    key: Vec<u8>,
    calls: u32,
) -> PyResult<f64> {
    let client = client.client.clone();
    py.detach(|| {
        let start = std::time::Instant::now();
        for _ in 0..calls {
            std::hint::black_box(client.get_serializable(&key)?);
        }
        Ok(start.elapsed().as_nanos() as f64 / f64::from(calls.max(1)))
    })
    .map_err(to_py)
}

/// The module `accord._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<NativeClient>()?;
    m.add_class::<NativeSession>()?;
    m.add_class::<NativeLock>()?;
    m.add_class::<NativeLeadership>()?;
    m.add_class::<NativeMembership>()?;
    m.add_class::<NativeClaim>()?;
    m.add_class::<NativeWatch>()?;
    m.add_class::<NativeNode>()?;
    m.add_function(wrap_pyfunction!(bench_rust_get, m)?)?;
    m.add("AccordError", py.get_type::<AccordError>())?;
    m.add("Timeout", py.get_type::<Timeout>())?;
    m.add("Cancelled", py.get_type::<Cancelled>())?;
    m.add("NotLeader", py.get_type::<NotLeader>())?;
    m.add("Rejected", py.get_type::<Rejected>())?;
    m.add("PermissionDenied", py.get_type::<PermissionDenied>())?;
    m.add("SessionLost", py.get_type::<SessionLost>())?;
    m.add("LockLost", py.get_type::<LockLost>())?;
    m.add("Compacted", py.get_type::<Compacted>())?;
    m.add("Shutdown", py.get_type::<Shutdown>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
