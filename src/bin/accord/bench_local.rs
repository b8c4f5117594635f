//! `accord bench local`: a 3-process cluster on loopback with fsync on, the floor measured in
//! the same run (loopback round trip between our processes + fdatasync of the data disk), and
//! each workload against it.
//!
//! Lines printed, in order (every `bench <workload>` line has the form
//! `bench <workload>: clients=<n> ops_per_s=<n> p50_us=<n> p99_us=<n> floor_us=<n>`):
//! - `bench floor`: the loopback round trip and fdatasync p50 it is made of;
//! - `put` at 1, 16 and 128 clients, `get-linearizable`, `get-serializable`;
//! - `failover`: kill -9 the leader → first successful write (p99_us is the maximum);
//! - then, the cluster having a leader again, the coordination workloads, with a follower as
//!   the clients' first endpoint (so watch streams, lock waits and observers are served by a
//!   follower, whichever member the failover loop left leading):
//!   - `lock-uncontended`: one session, `lock` + `release` of one mutex; one op = both;
//!   - `lock-contended`: 10 sessions (one thread each) on one mutex; ops_per_s counts
//!     acquisitions per second across all threads, p50/p99 are the time spent inside
//!     `lock()` (the wait for the handoff included);
//!   - `election-failover`: a leader's session is closed while a second candidate waits;
//!     time from the close call to an observer seeing the new leader (p99_us is the maximum;
//!     ends with ` trials=<n>`, as many as `--failover-trials`);
//!   - `watch-latency`: one writer puts under a prefix one watch stream watches; time from
//!     the put call's start to the event reaching the watching thread;
//!   - `session-keepalive`: 10,000 sessions kept alive by batch keepalives of 1,000;
//!     ops_per_s counts session keepalives per second, p50/p99 are per batch call;
//! - `bench rss`: each member's peak memory after loading 100,000 keys of 256 B (fresh cluster);
//! - `bench memory: sessions=100000 bytes_per_session=<n> watches=100000 bytes_per_watch=<n>`:
//!   resident memory grown per session and per idle watch (fresh cluster; the largest growth
//!   among the members).
//!
//! `--scale N` multiplies the operation counts of the workloads (not the memory counts).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::api::{Client, ClientConfig, EventKind, Session, Space, WatchItem, WatchStream};
use accord::limits::EXPIRE_BATCH_MAX;
use accord::local_cluster::LocalCluster;

use crate::args::Args;

/// Whether the clusters run with TLS (`--tls`), and the TLS files of the cluster running
/// now: every client of a workload connects as `client_config` says.
static TLS: std::sync::Mutex<(bool, Option<accord::runtime::tls::TlsFiles>)> =
    std::sync::Mutex::new((false, None));

/// A client configuration for the cluster running now (with its TLS files under `--tls`).
fn client_config(endpoints: Vec<String>) -> ClientConfig {
    ClientConfig {
        tls: TLS.lock().map(|t| t.1.clone()).unwrap_or(None),
        ..ClientConfig::new(endpoints)
    }
}

/// Whether `--tls` was given.
fn tls_wanted() -> bool {
    TLS.lock().map(|t| t.0).unwrap_or(false)
}

/// Makes `cluster` the one clients connect to.
fn use_cluster(cluster: &LocalCluster) {
    if let Ok(mut tls) = TLS.lock() {
        tls.1 = cluster.client_tls().cloned();
    }
}
use crate::bench_wal::{percentile_us, raw_fsync_p50_us};

/// Value size of the put workloads.
const VALUE_BYTES: usize = 256;

struct Measured {
    clients: usize,
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Runs `ops` operations spread over `clients` threads, each with its own connection.
fn run_workload(
    endpoints: &[String],
    clients: usize,
    ops: u64,
    op: impl Fn(&Client, u64) -> accord::Result<()> + Send + Sync + 'static,
) -> Result<Measured, String> {
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (op, next, endpoints) = (op.clone(), next.clone(), endpoints.to_vec());
            std::thread::spawn(move || -> Result<Vec<f64>, String> {
                let client =
                    Client::connect(client_config(endpoints)).map_err(|e| e.to_string())?;
                let mut latencies = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= ops {
                        return Ok(latencies);
                    }
                    let one = Instant::now();
                    op(&client, n).map_err(|e| e.to_string())?;
                    latencies.push(one.elapsed().as_secs_f64());
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(ops as usize);
    for thread in threads {
        all.extend(thread.join().map_err(|_| "a client thread panicked")??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Measured {
        clients,
        ops_per_s: all.len() as f64 / elapsed,
        p50_us: percentile_us(&mut all, 50.0),
        p99_us: percentile_us(&mut all, 99.0),
    })
}

fn print(workload: &str, m: &Measured, floor_us: f64, extra: &str) {
    println!(
        "bench {workload}: clients={} ops_per_s={:.0} p50_us={:.0} p99_us={:.0} floor_us={floor_us:.0}{extra}",
        m.clients, m.ops_per_s, m.p50_us, m.p99_us
    );
}

fn key(n: u64) -> Vec<u8> {
    format!("k{:07}", n % 10_000_000).into_bytes()
}

/// Current resident memory of a process, from /proc (Linux), in bytes.
pub fn current_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Peak resident memory of a process, from /proc (Linux), in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn main(mut args: Args) -> Result<ExitCode, String> {
    let trials: u32 = args.get("failover-trials", 20)?;
    let nodes: usize = args.get("nodes", 3)?;
    let server_args: String = args.get("server-args", String::new())?;
    let server_args: Vec<&str> = server_args.split_whitespace().collect();
    let scale: u64 = args.get("scale", 1)?;
    let only: String = args.get("only", String::new())?;
    let tls = args.flag("tls");
    if let Ok(mut wanted) = TLS.lock() {
        wanted.0 = tls;
    }
    args.finish_keeping_words()?;
    let known = [
        "put",
        "get-linearizable",
        "get-serializable",
        "failover",
        "lock-uncontended",
        "lock-contended",
        "election-failover",
        "watch-latency",
        "session-keepalive",
        "rss",
        "memory",
    ];
    let only: Vec<&str> = only.split(',').filter(|w| !w.is_empty()).collect();
    if let Some(unknown) = only.iter().find(|w| !known.contains(w)) {
        return Err(format!(
            "--only: unknown workload {unknown} (one of {})",
            known.join(", ")
        ));
    }
    let wants = |workload: &str| only.is_empty() || only.contains(&workload);
    if !(1..=1000).contains(&trials) || !(1..=100).contains(&scale) {
        return Err("--failover-trials must be 1..=1000 and --scale 1..=100".into());
    }
    let binary = std::env::current_exe().map_err(|e| e.to_string())?;
    let fail = |e: accord::Error| e.to_string();
    if !matches!(nodes, 1 | 3 | 5) {
        return Err("--nodes must be 1, 3 or 5".into());
    }
    let mut cluster =
        LocalCluster::start_with(&binary, nodes, "bench", &server_args, tls).map_err(fail)?;
    use_cluster(&cluster);
    let election_timeout_ms_max = 2 * 10 * 50; // [10, 20) ticks of 50 ms
    let (leader, _) = cluster
        .wait_for_leader(None, Duration::from_secs(10))
        .map_err(fail)?;
    let endpoints = cluster.endpoints();
    // The floor: a round trip to one of our server processes that touches no disk, plus one
    // fdatasync on the disk the data directories are on.
    let leader_address = cluster
        .address(leader)
        .map(|a| a.to_string())
        .unwrap_or_default();
    let probe = Client::connect(client_config(vec![leader_address.clone()])).map_err(fail)?;
    let mut rtts = Vec::new();
    for _ in 0..2000 {
        let one = Instant::now();
        probe.status().map_err(fail)?;
        rtts.push(one.elapsed().as_secs_f64());
    }
    let rtt_us = percentile_us(&mut rtts, 50.0);
    let fsync_us = raw_fsync_p50_us(cluster.dir(), 2000)?;
    let floor_us = rtt_us + fsync_us;
    println!("bench floor: loopback_rtt_p50_us={rtt_us:.0} fdatasync_p50_us={fsync_us:.0} floor_us={floor_us:.0}");
    let value = Arc::new(vec![b'v'; VALUE_BYTES]);
    for (clients, ops) in [(1usize, 2_000u64), (16, 20_000), (128, 60_000)] {
        if !wants("put") {
            break;
        }
        let value = value.clone();
        let m = run_workload(&endpoints, clients, ops * scale, move |c, n| {
            c.put(&key(n), &value).map(|_| ())
        })?;
        print("put", &m, floor_us, "");
    }
    if wants("get-linearizable") {
        let m = run_workload(&endpoints, 16, 20_000 * scale, |c, n| {
            c.get(&key(n % 1000)).map(|_| ())
        })?;
        print("get-linearizable", &m, floor_us, "");
    }
    if wants("get-serializable") {
        let m = run_workload(&endpoints, 16, 20_000 * scale, |c, n| {
            c.get_serializable(&key(n % 1000)).map(|_| ())
        })?;
        print("get-serializable", &m, floor_us, "");
    }
    if wants("failover") {
        failover(&mut cluster, trials, floor_us, election_timeout_ms_max)?;
    }
    // The failover loop restarted members: wait for a leader and let the last one catch up.
    let (leader, _) = cluster
        .wait_for_leader(None, Duration::from_secs(10))
        .map_err(fail)?;
    std::thread::sleep(Duration::from_millis(300));
    // A client's watch streams (and so lock waits and observers) go to its first endpoint.
    // Which member leads after the failover loop is chance; put a follower first so that
    // every run measures the same (and the common) case: events served by a follower.
    let leader_address = cluster
        .address(leader)
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut endpoints: Vec<String> = cluster
        .endpoints()
        .into_iter()
        .filter(|e| *e != leader_address)
        .collect();
    endpoints.push(leader_address);
    if wants("lock-uncontended") {
        lock_uncontended(&endpoints, 1_000 * scale, floor_us)?;
    }
    if wants("lock-contended") {
        lock_contended(&endpoints, 100 * scale, floor_us)?;
    }
    if wants("election-failover") {
        election_failover(&endpoints, trials, floor_us)?;
    }
    if wants("watch-latency") {
        watch_latency(&endpoints, 2_000 * scale, floor_us)?;
    }
    if wants("session-keepalive") {
        session_keepalive(&endpoints, 20 * scale, floor_us)?;
    }
    drop(cluster);
    if wants("rss") {
        rss(&binary, &value)?;
    }
    if wants("memory") {
        memory(&binary)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Kill -9 the leader, time the first successful write after it; restart and let it catch up.
fn failover(
    cluster: &mut LocalCluster,
    trials: u32,
    floor_us: f64,
    timeout_ms_max: u64,
) -> Result<(), String> {
    let fail = |e: accord::Error| e.to_string();
    let client = Client::connect(client_config(cluster.endpoints())).map_err(fail)?;
    let mut samples = Vec::new();
    for trial in 0..trials {
        let (leader, _) = cluster
            .wait_for_leader(None, Duration::from_secs(10))
            .map_err(fail)?;
        client.put(b"failover", b"before").map_err(fail)?;
        let killed = Instant::now();
        cluster.kill(leader);
        client
            .put(b"failover", format!("after {trial}").as_bytes())
            .map_err(fail)?;
        samples.push(killed.elapsed().as_secs_f64());
        cluster.spawn(leader).map_err(fail)?;
        cluster
            .wait_for_leader(None, Duration::from_secs(10))
            .map_err(fail)?;
        std::thread::sleep(Duration::from_millis(300)); // the restarted member catches up
    }
    let p50 = percentile_us(&mut samples, 50.0);
    let max = percentile_us(&mut samples, 100.0);
    println!(
        "bench failover: clients=1 ops_per_s=0 p50_us={p50:.0} p99_us={max:.0} floor_us={floor_us:.0} election_timeout_ms_max={timeout_ms_max} trials={trials}"
    );
    Ok(())
}

/// Loads 100,000 keys of 256 B into a fresh cluster and reports each member's peak resident
/// memory.
fn rss(binary: &std::path::Path, value: &Arc<Vec<u8>>) -> Result<(), String> {
    let fail = |e: accord::Error| e.to_string();
    let cluster =
        LocalCluster::start_with(binary, 3, "bench-rss", &[], tls_wanted()).map_err(fail)?;
    use_cluster(&cluster);
    cluster
        .wait_for_leader(None, Duration::from_secs(10))
        .map_err(fail)?;
    let endpoints = cluster.endpoints();
    let value = value.clone();
    run_workload(&endpoints, 64, 100_000, move |c, n| {
        c.put(format!("rss/{n:07}").as_bytes(), &value).map(|_| ())
    })?;
    let peaks: Vec<String> = cluster
        .ids()
        .into_iter()
        .filter_map(|id| {
            cluster
                .pid(id)
                .and_then(peak_rss_mib)
                .map(|mib| format!("{id}:{mib:.1}"))
        })
        .collect();
    println!(
        "bench rss: keys=100000 value_bytes={VALUE_BYTES} peak_rss_mib_per_node={}",
        peaks.join(",")
    );
    Ok(())
}

/// Session TTL of the coordination workloads.
const SESSION_TTL: Duration = Duration::from_secs(10);

/// Longest a benchmark waits for a lock, an election or an event before it gives up.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// Name of the mutex the lock workloads use.
const LOCK_NAME: &[u8] = b"bench-lock";

/// Name of the election the election workload uses.
const ELECTION_NAME: &[u8] = b"bench-election";

/// Threads of the contended lock workload (each with its own session).
const LOCK_CONTENDERS: usize = 10;

/// Sessions of the keepalive workload (and threads creating and keeping them alive).
const KEEPALIVE_SESSIONS: usize = 10_000;
const KEEPALIVE_THREADS: usize = KEEPALIVE_SESSIONS / EXPIRE_BATCH_MAX;

/// Sessions and idle watches of the memory measurement.
const MEMORY_SESSIONS: usize = 100_000;
const MEMORY_WATCHES: usize = 100_000;
/// Watches per watch stream (one stream is one connection to one member).
const WATCHES_PER_STREAM: usize = 25_000;
/// Threads creating the sessions of the memory measurement.
const MEMORY_SESSION_THREADS: usize = 32;

/// Turns an accord error into a message that says which step failed.
fn context(what: &'static str) -> impl Fn(accord::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn joined<T>(thread: std::thread::JoinHandle<Result<T, String>>) -> Result<T, String> {
    thread
        .join()
        .map_err(|_| "a benchmark thread panicked".to_string())?
}

fn summarize(clients: usize, ops: usize, elapsed: Duration, samples: &mut [f64]) -> Measured {
    Measured {
        clients,
        ops_per_s: ops as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_us: percentile_us(samples, 50.0),
        p99_us: percentile_us(samples, 99.0),
    }
}

/// One session takes and releases one mutex nobody else wants, `cycles` times; one op is
/// the acquire plus the release (two writes through the log).
fn lock_uncontended(endpoints: &[String], cycles: u64, floor_us: f64) -> Result<(), String> {
    let config = client_config(endpoints.to_vec());
    let session =
        Session::create(config, SESSION_TTL).map_err(context("lock-uncontended: session"))?;
    let mut samples = Vec::with_capacity(cycles as usize);
    let started = Instant::now();
    for _ in 0..cycles {
        let one = Instant::now();
        let lock = session
            .lock(LOCK_NAME, WAIT_MAX)
            .map_err(context("lock-uncontended: lock"))?;
        lock.release()
            .map_err(context("lock-uncontended: release"))?;
        samples.push(one.elapsed().as_secs_f64());
    }
    let elapsed = started.elapsed();
    session
        .close()
        .map_err(context("lock-uncontended: closing the session"))?;
    let m = summarize(1, samples.len(), elapsed, &mut samples);
    print("lock-uncontended", &m, floor_us, "");
    Ok(())
}

/// `LOCK_CONTENDERS` threads, each with its own session, loop lock → release on one mutex,
/// `per_thread` times each, holding it for no time at all.
///
/// Definition: a release's return in one thread and the next holder's `lock()` return in
/// another cannot be paired without a shared clock protocol, so the handoff is measured from
/// the waiter's side: each sample is the time one thread spent inside `lock()` (its acquire
/// write, its wait in the FIFO queue behind the other threads, and the delivery of its
/// grant). ops_per_s is acquisitions per second across all threads (total acquisitions over
/// the wall time from the start barrier to the last thread's last release), i.e. the rate at
/// which the mutex changes hands.
fn lock_contended(endpoints: &[String], per_thread: u64, floor_us: f64) -> Result<(), String> {
    let mut sessions = Vec::with_capacity(LOCK_CONTENDERS);
    for _ in 0..LOCK_CONTENDERS {
        let config = client_config(endpoints.to_vec());
        sessions.push(
            Session::create(config, SESSION_TTL).map_err(context("lock-contended: session"))?,
        );
    }
    let start = Arc::new(std::sync::Barrier::new(LOCK_CONTENDERS + 1));
    let threads: Vec<_> = sessions
        .into_iter()
        .map(|session| {
            let start = start.clone();
            std::thread::spawn(move || -> Result<(Vec<f64>, Instant), String> {
                start.wait();
                let mut waits = Vec::with_capacity(per_thread as usize);
                let mut outcome = Ok(());
                for _ in 0..per_thread {
                    let one = Instant::now();
                    let lock = match session.lock(LOCK_NAME, WAIT_MAX) {
                        Ok(lock) => lock,
                        Err(e) => {
                            outcome = Err(format!("lock-contended: lock: {e}"));
                            break;
                        }
                    };
                    waits.push(one.elapsed().as_secs_f64());
                    if let Err(e) = lock.release() {
                        outcome = Err(format!("lock-contended: release: {e}"));
                        break;
                    }
                }
                let finished = Instant::now();
                // Closing also frees the mutex if this thread failed while holding it, so
                // the others are not left waiting.
                let closed = session
                    .close()
                    .map_err(context("lock-contended: closing a session"));
                outcome.and(closed).map(|()| (waits, finished))
            })
        })
        .collect();
    start.wait();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut last = started;
    let mut first_error = None;
    for thread in threads {
        match joined(thread) {
            Ok((waits, finished)) => {
                samples.extend(waits);
                last = last.max(finished);
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let elapsed = last.duration_since(started);
    let m = summarize(LOCK_CONTENDERS, samples.len(), elapsed, &mut samples);
    print("lock-contended", &m, floor_us, "");
    Ok(())
}

/// Reads `stream` until `session` is seen waiting in the election, up to `WAIT_MAX`.
fn wait_until_candidate(stream: &mut WatchStream, session: u64) -> Result<(), String> {
    let deadline = Instant::now() + WAIT_MAX;
    // Bounded by the deadline.
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match stream
            .next(left.min(Duration::from_millis(200)))
            .map_err(context("election-failover: watching the candidates"))?
        {
            Some((_, WatchItem::Events(events)))
                if events
                    .iter()
                    .any(|e| e.kind == EventKind::Waiting && e.session == session) =>
            {
                return Ok(());
            }
            Some((_, WatchItem::Events(_))) | None => {}
            Some((_, other)) => {
                return Err(format!(
                    "election-failover: the candidates' watch ended: {other:?}"
                ))
            }
        }
    }
    Err("election-failover: the second candidate never started waiting".into())
}

/// Reads `observer` until it reports `session` as the leader, up to `WAIT_MAX`.
fn observe_leader(observer: &mut accord::api::Observer, session: u64) -> Result<(), String> {
    let deadline = Instant::now() + WAIT_MAX;
    // Bounded by the deadline.
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let change = observer
            .next(left)
            .map_err(context("election-failover: observing"))?;
        if change.is_some_and(|c| c.leader.is_some_and(|l| l.session == session)) {
            return Ok(());
        }
    }
    Err(format!(
        "election-failover: the observer never saw session {session} lead"
    ))
}

/// `trials` times: session A leads the election, session B campaigns from another thread and
/// waits; A's session is closed (the leader's session killed), and the time from the close
/// call to an observer (one `Client::observe` stream for all trials) seeing B lead is one
/// sample. Reported like failover: p50 and maximum.
fn election_failover(endpoints: &[String], trials: u32, floor_us: f64) -> Result<(), String> {
    let config = client_config(endpoints.to_vec());
    let client = Client::connect(config.clone()).map_err(context("election-failover: client"))?;
    let mut observer = client
        .observe(ELECTION_NAME)
        .map_err(context("election-failover: observe"))?;
    let first = observer
        .next(WAIT_MAX)
        .map_err(context("election-failover: observing"))?
        .ok_or("election-failover: the observer reported nothing")?;
    // Candidacies do not change the leader, so the observer does not report them: a plain
    // watch on the election tells when B is queued.
    let (mut candidates, _) = client
        .watch(Space::Election, ELECTION_NAME, first.revision + 1)
        .map_err(context("election-failover: watching the candidates"))?;
    let mut samples = Vec::with_capacity(trials as usize);
    for _ in 0..trials {
        let a = Session::create(config.clone(), SESSION_TTL)
            .map_err(context("election-failover: session A"))?;
        let leadership = a
            .campaign(ELECTION_NAME, b"a", WAIT_MAX)
            .map_err(context("election-failover: A's campaign"))?;
        observe_leader(&mut observer, a.id())?;
        let b = Session::create(config.clone(), SESSION_TTL)
            .map_err(context("election-failover: session B"))?;
        let b_id = b.id();
        let candidate = std::thread::spawn(move || -> Result<Session, String> {
            let won = b.campaign(ELECTION_NAME, b"b", WAIT_MAX);
            match won {
                Ok(_) => Ok(b),
                Err(e) => {
                    let _ = b.close();
                    Err(format!("election-failover: B's campaign: {e}"))
                }
            }
        });
        if let Err(e) = wait_until_candidate(&mut candidates, b_id) {
            let _ = a.close();
            let _ = joined(candidate);
            return Err(e);
        }
        drop(leadership); // a handle only: the close below is what ends the leadership
        let closed = Instant::now();
        a.close()
            .map_err(context("election-failover: closing A's session"))?;
        observe_leader(&mut observer, b_id)?;
        samples.push(closed.elapsed().as_secs_f64());
        let b = joined(candidate)?;
        b.close()
            .map_err(context("election-failover: closing B's session"))?;
    }
    let p50 = percentile_us(&mut samples, 50.0);
    let max = percentile_us(&mut samples, 100.0);
    println!(
        "bench election-failover: clients=2 ops_per_s=0 p50_us={p50:.0} p99_us={max:.0} floor_us={floor_us:.0} trials={trials}"
    );
    Ok(())
}

/// One writer puts `count` keys under `wl/` (sequentially), one thread reads a watch stream
/// on that prefix; each value carries the nanoseconds since a shared start at which its put
/// call began, so a sample is put call start → event delivered to the watching thread.
fn watch_latency(endpoints: &[String], count: u64, floor_us: f64) -> Result<(), String> {
    let config = client_config(endpoints.to_vec());
    let writer = Client::connect(config).map_err(context("watch-latency: client"))?;
    let revision = writer
        .put(b"wl-start", b"")
        .map_err(context("watch-latency: first put"))?;
    let (mut stream, _) = writer
        .watch(Space::Kv, b"wl/", revision + 1)
        .map_err(context("watch-latency: watch"))?;
    let epoch = Instant::now();
    let watcher = std::thread::spawn(move || -> Result<(Vec<f64>, Duration), String> {
        let mut samples = Vec::with_capacity(count as usize);
        let deadline = Instant::now() + WAIT_MAX + Duration::from_millis(count);
        // Bounded by the deadline.
        while (samples.len() as u64) < count && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match stream.next(left).map_err(context("watch-latency: next"))? {
                Some((_, WatchItem::Events(events))) => {
                    let now = epoch.elapsed();
                    for event in events.iter().filter(|e| e.kind == EventKind::Put) {
                        let sent: [u8; 8] = event.value.as_slice().try_into().map_err(|_| {
                            "watch-latency: an event without a timestamp".to_string()
                        })?;
                        let sent = Duration::from_nanos(u64::from_be_bytes(sent));
                        samples.push(now.saturating_sub(sent).as_secs_f64());
                    }
                }
                Some((_, other)) => return Err(format!("watch-latency: watch ended: {other:?}")),
                None => {}
            }
        }
        if (samples.len() as u64) < count {
            return Err(format!(
                "watch-latency: {} of {count} events arrived in time",
                samples.len()
            ));
        }
        Ok((samples, epoch.elapsed()))
    });
    let write_start = epoch.elapsed();
    for n in 0..count {
        let sent = epoch.elapsed().as_nanos() as u64;
        if let Err(e) = writer.put(format!("wl/{n:07}").as_bytes(), &sent.to_be_bytes()) {
            let _ = joined(watcher); // ends at its deadline
            return Err(format!("watch-latency: put: {e}"));
        }
    }
    let (mut samples, last_event) = joined(watcher)?;
    let elapsed = last_event.saturating_sub(write_start);
    let m = summarize(1, samples.len(), elapsed, &mut samples);
    print("watch-latency", &m, floor_us, "");
    Ok(())
}

/// Runs `f(0..threads)` on `threads` threads and collects what each returns, in order.
fn parallel<T: Send + 'static>(
    threads: usize,
    f: impl Fn(usize) -> Result<T, String> + Send + Sync + 'static,
) -> Result<Vec<T>, String> {
    let f = Arc::new(f);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let f = f.clone();
            std::thread::spawn(move || f(i))
        })
        .collect();
    let mut results = Vec::with_capacity(threads);
    let mut first_error = None;
    for handle in handles {
        match joined(handle) {
            Ok(t) => results.push(t),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

/// Creates `count` sessions of `ttl` with `Client::create_session`, spread over `threads`
/// threads (each with its own connection); returns each thread's session ids.
fn create_sessions(
    endpoints: &[String],
    threads: usize,
    count: usize,
    ttl: Duration,
    what: &'static str,
) -> Result<Vec<Vec<u64>>, String> {
    let endpoints = endpoints.to_vec();
    parallel(threads, move |i| {
        let client = Client::connect(client_config(endpoints.clone())).map_err(context(what))?;
        let mine = count / threads + usize::from(i < count % threads);
        (0..mine)
            .map(|_| client.create_session(ttl).map_err(context(what)))
            .collect()
    })
}

/// Checks that a keepalive answer found every session alive.
fn all_alive(kept: &[(u64, Option<Duration>)], asked: usize) -> Result<(), String> {
    if kept.len() != asked || kept.iter().any(|(_, ttl)| ttl.is_none()) {
        return Err(format!(
            "session-keepalive: {} of {asked} sessions were not kept alive (expired?)",
            asked - kept.iter().filter(|(_, ttl)| ttl.is_some()).count()
        ));
    }
    Ok(())
}

/// `KEEPALIVE_SESSIONS` sessions (60 s TTL) created by `KEEPALIVE_THREADS` threads, then
/// `rounds` batch keepalives per thread, each covering that thread's 1,000 sessions
/// (`EXPIRE_BATCH_MAX`); ops_per_s is session keepalives per second, latencies are per batch
/// call. The sessions are closed afterwards.
fn session_keepalive(endpoints: &[String], rounds: u64, floor_us: f64) -> Result<(), String> {
    let ttl = Duration::from_secs(60);
    let ids = create_sessions(
        endpoints,
        KEEPALIVE_THREADS,
        KEEPALIVE_SESSIONS,
        ttl,
        "session-keepalive: create_session",
    )?;
    let start = Arc::new(std::sync::Barrier::new(KEEPALIVE_THREADS + 1));
    let done = Arc::new(std::sync::Barrier::new(KEEPALIVE_THREADS + 1));
    let mut threads = Vec::with_capacity(ids.len());
    for mine in ids {
        let (start, done) = (start.clone(), done.clone());
        let client = Client::connect(client_config(endpoints.to_vec()))
            .map_err(context("session-keepalive: client"))?;
        threads.push(std::thread::spawn(move || -> Result<Vec<f64>, String> {
            // Connect before the clock starts (the first call opens the connection).
            let mut outcome = client
                .status()
                .map(|_| ())
                .map_err(context("session-keepalive: connecting"));
            start.wait();
            let mut batches = Vec::with_capacity(rounds as usize);
            for _ in 0..rounds {
                if outcome.is_err() {
                    break;
                }
                let one = Instant::now();
                outcome = client
                    .keep_alive(&mine)
                    .map_err(context("session-keepalive: keep_alive"))
                    .and_then(|kept| all_alive(&kept, mine.len()));
                batches.push(one.elapsed().as_secs_f64());
            }
            done.wait(); // reached on failure too, so the main thread is never left waiting
            outcome?;
            for id in mine {
                client
                    .close_session(id)
                    .map_err(context("session-keepalive: close_session"))?;
            }
            Ok(batches)
        }));
    }
    start.wait();
    let started = Instant::now();
    done.wait();
    let elapsed = started.elapsed();
    let mut samples = Vec::new();
    let mut first_error = None;
    for thread in threads {
        match joined(thread) {
            Ok(batches) => samples.extend(batches),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let keepalives = KEEPALIVE_SESSIONS * rounds as usize;
    let m = summarize(KEEPALIVE_THREADS, keepalives, elapsed, &mut samples);
    print("session-keepalive", &m, floor_us, "");
    Ok(())
}

/// Each member's current resident memory, in member order.
fn members_rss(cluster: &LocalCluster) -> Result<Vec<u64>, String> {
    cluster
        .ids()
        .into_iter()
        .map(|id| {
            cluster
                .pid(id)
                .and_then(current_rss_bytes)
                .ok_or_else(|| format!("memory: cannot read member {id}'s resident memory"))
        })
        .collect()
}

/// The largest growth between two measurements of every member.
fn max_growth(before: &[u64], after: &[u64]) -> u64 {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b))
        .max()
        .unwrap_or(0)
}

/// On a fresh cluster: resident memory per session (100,000 sessions, 600 s TTL, each kept
/// alive once so that none expires while measured), then per idle watch (100,000 watches with
/// distinct prefixes over 4 watch streams, i.e. 4 connections, all to the first member).
/// Each figure is the largest growth among the members across its own step.
fn memory(binary: &std::path::Path) -> Result<(), String> {
    let cluster = LocalCluster::start_with(binary, 3, "bench-mem", &[], tls_wanted())
        .map_err(context("memory: cluster"))?;
    use_cluster(&cluster);
    cluster
        .wait_for_leader(None, Duration::from_secs(10))
        .map_err(context("memory: no leader"))?;
    let endpoints = cluster.endpoints();
    let client =
        Client::connect(client_config(endpoints.clone())).map_err(context("memory: client"))?;
    client
        .put(b"mem-start", b"")
        .map_err(context("memory: first put"))?;
    std::thread::sleep(Duration::from_millis(500)); // followers apply it
    let before = members_rss(&cluster)?;

    let ids = create_sessions(
        &endpoints,
        MEMORY_SESSION_THREADS,
        MEMORY_SESSIONS,
        Duration::from_secs(600),
        "memory: create_session",
    )?;
    let ids: Vec<u64> = ids.into_iter().flatten().collect();
    for batch in ids.chunks(EXPIRE_BATCH_MAX) {
        let kept = client
            .keep_alive(batch)
            .map_err(context("memory: keep_alive"))?;
        if kept.iter().any(|(_, ttl)| ttl.is_none()) || kept.len() != batch.len() {
            return Err("memory: a session expired before it was measured".into());
        }
    }
    std::thread::sleep(Duration::from_millis(500)); // followers apply the last creations
    let with_sessions = members_rss(&cluster)?;
    let per_session = max_growth(&before, &with_sessions) as f64 / MEMORY_SESSIONS as f64;

    let revision = client
        .put(b"mem-watches", b"")
        .map_err(context("memory: put before the watches"))?;
    let streams = MEMORY_WATCHES.div_ceil(WATCHES_PER_STREAM);
    let watch_endpoints = endpoints.clone();
    let held = parallel(streams, move |s| {
        let mut stream = WatchStream::open(client_config(watch_endpoints.clone()))
            .map_err(context("memory: watch stream"))?;
        let first = s * WATCHES_PER_STREAM;
        for w in first..(first + WATCHES_PER_STREAM).min(MEMORY_WATCHES) {
            let prefix = format!("w/{w:05}/");
            if let Err(now) = stream
                .add(Space::Kv, prefix.as_bytes(), revision + 1)
                .map_err(context("memory: adding a watch"))?
            {
                return Err(format!(
                    "memory: revision {revision} left the history already (now {now})"
                ));
            }
        }
        Ok(stream)
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let with_watches = members_rss(&cluster)?;
    let per_watch = max_growth(&with_sessions, &with_watches) as f64 / MEMORY_WATCHES as f64;
    drop(held);
    println!(
        "bench memory: sessions={MEMORY_SESSIONS} bytes_per_session={per_session:.0} watches={MEMORY_WATCHES} bytes_per_watch={per_watch:.0}"
    );
    Ok(())
}
