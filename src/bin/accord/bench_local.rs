//! `accord bench local`: a 3-process cluster on loopback with fsync on, the floor measured in
//! the same run (loopback round trip between our processes + fdatasync of the data disk), and
//! each workload against it.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::api::{Client, ClientConfig};
use accord::local_cluster::LocalCluster;

use crate::args::Args;
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
                    Client::connect(ClientConfig::new(endpoints)).map_err(|e| e.to_string())?;
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
    args.finish_keeping_words()?;
    if !(1..=1000).contains(&trials) || !(1..=100).contains(&scale) {
        return Err("--failover-trials must be 1..=1000 and --scale 1..=100".into());
    }
    let binary = std::env::current_exe().map_err(|e| e.to_string())?;
    let fail = |e: accord::Error| e.to_string();
    if !matches!(nodes, 1 | 3 | 5) {
        return Err("--nodes must be 1, 3 or 5".into());
    }
    let mut cluster = LocalCluster::start(&binary, nodes, "bench", &server_args).map_err(fail)?;
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
    let probe = Client::connect(ClientConfig::new(vec![leader_address.clone()])).map_err(fail)?;
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
        let value = value.clone();
        let m = run_workload(&endpoints, clients, ops * scale, move |c, n| {
            c.put(&key(n), &value).map(|_| ())
        })?;
        print("put", &m, floor_us, "");
    }
    let m = run_workload(&endpoints, 16, 20_000 * scale, |c, n| {
        c.get(&key(n % 1000)).map(|_| ())
    })?;
    print("get-linearizable", &m, floor_us, "");
    let m = run_workload(&endpoints, 16, 20_000 * scale, |c, n| {
        c.get_serializable(&key(n % 1000)).map(|_| ())
    })?;
    print("get-serializable", &m, floor_us, "");
    failover(&mut cluster, trials, floor_us, election_timeout_ms_max)?;
    drop(cluster);
    rss(&binary, &value)?;
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
    let client = Client::connect(ClientConfig::new(cluster.endpoints())).map_err(fail)?;
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
    let cluster = LocalCluster::start(binary, 3, "bench-rss", &[]).map_err(fail)?;
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
