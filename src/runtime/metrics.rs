//! Metrics in the Prometheus text format, served over HTTP (`accord server --metrics ADDR`).
//!
//! The event loop records into a [`Metrics`] (a mutex held for a few stores per tick, per
//! fsync and per answered write); a small thread of its own answers `GET /metrics`, one
//! connection at a time with a bounded request and a read timeout, so that a slow or hostile
//! scraper can delay other scrapes but never the event loop.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::limits::{METRICS_REQUEST_BYTES_MAX, METRICS_SCRAPE_TIMEOUT_MS};
use crate::types::NodeId;

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS_SECONDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram with fixed buckets.
#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS_SECONDS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Histogram {
    fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.counts.iter_mut().zip(BUCKETS_SECONDS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, node: NodeId) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (count, bound) in self.counts.iter().zip(BUCKETS_SECONDS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{node=\"{node}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{node=\"{node}\",le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{node=\"{node}\"}} {}", self.sum_seconds);
        let _ = writeln!(out, "{name}_count{{node=\"{node}\"}} {}", self.count);
    }
}

/// One member's view of another, on the leader.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peer {
    /// Entries behind the leader's log.
    pub lag_entries: u64,
    /// Seconds since the leader last heard from it (`None`: never).
    pub last_contact_seconds: Option<f64>,
    /// Whether it votes.
    pub voter: bool,
}

/// What the event loop reports.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Current term.
    pub term: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// Whether this member leads.
    pub leader: bool,
    /// Voters in the membership.
    pub voters: u64,
    /// Learners in the membership.
    pub learners: u64,
    /// Live sessions.
    pub sessions: u64,
    /// Locks held (holders of mutexes, read-write locks and semaphores).
    pub locks_held: u64,
    /// Watches registered by clients of this member.
    pub watches: u64,
    /// Transactions refused because a fencing token no longer held its lock or election.
    pub fencing_rejections: u64,
    /// Unsent bytes of all client connections (replies and watch events).
    pub client_send_bytes: u64,
    /// Client connections not read from until their unsent output drains.
    pub connections_paused: u64,
    /// The longest turn of the event loop since the previous report, in microseconds.
    pub loop_turn_us_max: u64,
    /// On the leader: every other member.
    pub peers: BTreeMap<NodeId, Peer>,
}

#[derive(Default)]
struct State {
    gauges: Gauges,
    leader_changes: u64,
    ticks_late: u64,
    connections_shed: u64,
    proposals: Histogram,
    fsyncs: Histogram,
}

/// The metrics of one member.
pub struct Metrics {
    node: NodeId,
    data_dir: PathBuf,
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Metrics {
    /// Metrics of member `node`, whose data directory is `data_dir` (its WAL and snapshot
    /// sizes are read at each scrape).
    pub fn new(node: NodeId, data_dir: &Path) -> Metrics {
        Metrics {
            node,
            data_dir: data_dir.to_path_buf(),
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
        }
    }

    /// Counts a tick that ran more than a tick late.
    pub fn tick_late(&self) {
        self.state.lock().ticks_late += 1;
    }

    /// Counts a client connection closed for not reading its replies.
    pub fn connection_shed(&self) {
        self.state.lock().connections_shed += 1;
    }

    /// Replaces the gauges.
    pub fn set_gauges(&self, gauges: Gauges) {
        self.state.lock().gauges = gauges;
    }

    /// A new leader was seen.
    pub fn leader_changed(&self) {
        self.state.lock().leader_changes += 1;
    }

    /// A client write took `elapsed` from its arrival to its answer.
    pub fn proposal(&self, elapsed: Duration) {
        self.state.lock().proposals.observe(elapsed);
    }

    /// A durable write (append and fdatasync) took `elapsed`.
    pub fn fsync(&self, elapsed: Duration) {
        self.state.lock().fsyncs.observe(elapsed);
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let (gauges, leader_changes, ticks_late, connections_shed, proposals, fsyncs) = {
            let state = self.state.lock();
            (
                state.gauges.clone(),
                state.leader_changes,
                state.ticks_late,
                state.connections_shed,
                state.proposals.clone(),
                state.fsyncs.clone(),
            )
        };
        let node = self.node;
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name}{{node=\"{node}\"}} {value}");
        };
        gauge("accord_term", "Current Raft term.", "gauge", gauges.term);
        gauge(
            "accord_commit_index",
            "Highest log index known committed.",
            "gauge",
            gauges.commit,
        );
        gauge(
            "accord_applied_index",
            "Highest log index applied.",
            "gauge",
            gauges.applied,
        );
        gauge(
            "accord_last_index",
            "Last log index held.",
            "gauge",
            gauges.last_index,
        );
        gauge(
            "accord_is_leader",
            "1 while this member leads.",
            "gauge",
            gauges.leader as u64,
        );
        gauge(
            "accord_leader_changes_total",
            "New leaders this member has seen.",
            "counter",
            leader_changes,
        );
        gauge(
            "accord_voters",
            "Voters in the membership.",
            "gauge",
            gauges.voters,
        );
        gauge(
            "accord_learners",
            "Learners in the membership.",
            "gauge",
            gauges.learners,
        );
        gauge(
            "accord_sessions",
            "Live sessions.",
            "gauge",
            gauges.sessions,
        );
        gauge(
            "accord_locks_held",
            "Lock and semaphore grants held.",
            "gauge",
            gauges.locks_held,
        );
        gauge(
            "accord_watches",
            "Watches of this member's clients.",
            "gauge",
            gauges.watches,
        );
        gauge(
            "accord_fencing_rejections_total",
            "Transactions refused because a fencing token no longer held.",
            "counter",
            gauges.fencing_rejections,
        );
        gauge(
            "accord_client_send_bytes",
            "Unsent bytes of all client connections (replies and watch events).",
            "gauge",
            gauges.client_send_bytes,
        );
        gauge(
            "accord_client_send_bytes_max",
            "The member's budget for them (MEMBER_CLIENT_SEND_BYTES_MAX).",
            "gauge",
            crate::limits::MEMBER_CLIENT_SEND_BYTES_MAX as u64,
        );
        gauge(
            "accord_client_connections_paused",
            "Client connections not read from until their unsent replies drain.",
            "gauge",
            gauges.connections_paused,
        );
        gauge(
            "accord_client_connections_shed_total",
            "Client connections closed for not reading their replies.",
            "counter",
            connections_shed,
        );
        gauge(
            "accord_loop_turn_us_max",
            "The longest turn of the event loop in the last tick, in microseconds.",
            "gauge",
            gauges.loop_turn_us_max,
        );
        gauge(
            "accord_ticks_late_total",
            "Ticks that ran more than a tick late (the event loop was held up).",
            "counter",
            ticks_late,
        );
        gauge(
            "accord_wal_bytes",
            "Bytes of write-ahead log segments on disk.",
            "gauge",
            dir_bytes(&self.data_dir.join("wal")),
        );
        gauge(
            "accord_snapshot_bytes",
            "Bytes of snapshot files on disk.",
            "gauge",
            dir_bytes(&self.data_dir.join("snap")),
        );
        if !gauges.peers.is_empty() {
            out.push_str(
                "# HELP accord_member_lag_entries Entries a member trails the leader by.\n",
            );
            out.push_str("# TYPE accord_member_lag_entries gauge\n");
            for (id, peer) in &gauges.peers {
                let _ = writeln!(
                    out,
                    "accord_member_lag_entries{{node=\"{node}\",member=\"{id}\",voter=\"{}\"}} {}",
                    peer.voter, peer.lag_entries
                );
            }
            out.push_str(
                "# HELP accord_member_last_contact_seconds Seconds since the leader heard from \
                 a member (-1: never).\n",
            );
            out.push_str("# TYPE accord_member_last_contact_seconds gauge\n");
            for (id, peer) in &gauges.peers {
                let _ = writeln!(
                    out,
                    "accord_member_last_contact_seconds{{node=\"{node}\",member=\"{id}\"}} {}",
                    peer.last_contact_seconds.unwrap_or(-1.0)
                );
            }
        }
        proposals.render(
            &mut out,
            "accord_proposal_duration_seconds",
            "Time from a client write's arrival to its answer.",
            node,
        );
        fsyncs.render(
            &mut out,
            "accord_fsync_duration_seconds",
            "Time of one durable write (append and fdatasync) of the log.",
            node,
        );
        out
    }

    /// Starts answering `GET /metrics` on `address`; binding errors come back here.
    pub fn serve(self: &Arc<Metrics>, address: SocketAddr) -> Result<JoinHandle<()>> {
        let listener = TcpListener::bind(address)
            .map_err(|e| Error::io(format!("listening for metrics on {address}"), &e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("configuring the metrics listener", &e))?;
        let metrics = Arc::clone(self);
        std::thread::Builder::new()
            .name(format!("accord-metrics-{}", self.node))
            .spawn(move || metrics.accept_loop(listener))
            .map_err(|e| Error::io("starting the metrics thread", &e))
    }

    /// Stops the metrics thread (within about 100 ms).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn accept_loop(&self, listener: TcpListener) {
        // Bounded by the stop flag: one wake-up every 100 ms while idle.
        while !self.stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => self.answer(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn answer(&self, mut stream: TcpStream) {
        let timeout = Some(Duration::from_millis(METRICS_SCRAPE_TIMEOUT_MS));
        if stream.set_nonblocking(false).is_err()
            || stream.set_read_timeout(timeout).is_err()
            || stream.set_write_timeout(timeout).is_err()
        {
            return;
        }
        let mut request = Vec::with_capacity(512);
        let mut buffer = [0u8; 512];
        // Bounded by the request size limit and the read timeout.
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(read) => request.extend_from_slice(&buffer[..read]),
            }
            if request.len() > METRICS_REQUEST_BYTES_MAX {
                let _ = stream.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            }
        }
        let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
        let wanted = line.starts_with(b"GET /metrics ") || line.starts_with(b"GET / ");
        let (status, body) = if wanted {
            ("200 OK", self.render())
        } else {
            (
                "404 Not Found",
                "only GET /metrics is served here\n".to_string(),
            )
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body.as_bytes());
    }
}

/// Total size of the files in `dir` (0 when it cannot be read).
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_into_every_bucket_above_and_render() {
        let metrics = Metrics::new(3, Path::new("/nonexistent"));
        metrics.fsync(Duration::from_micros(300));
        metrics.fsync(Duration::from_secs(5));
        metrics.set_gauges(Gauges {
            term: 7,
            leader: true,
            peers: [(
                1,
                Peer {
                    lag_entries: 4,
                    last_contact_seconds: None,
                    voter: true,
                },
            )]
            .into(),
            ..Gauges::default()
        });
        let text = metrics.render();
        assert!(text.contains("accord_term{node=\"3\"} 7"), "{text}");
        assert!(text.contains("accord_is_leader{node=\"3\"} 1"));
        assert!(text.contains("accord_fsync_duration_seconds_bucket{node=\"3\",le=\"0.00025\"} 0"));
        assert!(text.contains("accord_fsync_duration_seconds_bucket{node=\"3\",le=\"0.0005\"} 1"));
        assert!(text.contains("accord_fsync_duration_seconds_bucket{node=\"3\",le=\"+Inf\"} 2"));
        assert!(
            text.contains("accord_member_lag_entries{node=\"3\",member=\"1\",voter=\"true\"} 4")
        );
        assert!(text.contains("accord_member_last_contact_seconds{node=\"3\",member=\"1\"} -1"));
    }
}
