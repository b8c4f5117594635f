//! `accord bench hostile`: each hostile client of `accord hostile` against the leader of a
//! fresh 3-process cluster, while a well-behaved client of the same member writes and reads
//! and measures how long it waits. Prints, per attack:
//!
//! `hostile <kind>: connections=<n> ops=<n> errors=<n> p50_us=<n> p99_us=<n> max_us=<n>
//!  leader_rss_mib_max=<n> leader_changed=<yes|no> lost=<n> closed_by_member=<n>`
//!
//! With `--check`, exits non-zero unless, for every attack, the well-behaved client never
//! waited as long as an election timeout, saw no error, lost no acknowledged write, the
//! leader kept its leadership and its resident memory stayed under `--rss-mib-max`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::api::{Client, ClientConfig};
use accord::local_cluster::LocalCluster;

use crate::args::Args;
use crate::bench_local::current_rss_bytes;
use crate::bench_wal::percentile_us;
use crate::hostile::{self, Attack, Kind};

/// Tick and election timeout of the cluster (the server defaults): the well-behaved client
/// must never wait as long as the shortest election timeout.
const TICK_MS: u64 = 50;
const ELECTION_TICKS: u64 = 10;

/// Value size of the well-behaved client's writes.
const WELL_BEHAVED_VALUE_BYTES: usize = 64;

/// What one attack did to the well-behaved client and the leader.
struct Outcome {
    ops: usize,
    errors: usize,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    rss_mib_max: f64,
    leader_changed: bool,
    lost: usize,
    closed_by_member: usize,
}

/// Runs `kind` with `connections` connections for `seconds` against a fresh cluster's leader.
fn measure(kind: Kind, connections: usize, seconds: u64) -> Result<Outcome, String> {
    let binary = std::env::current_exe().map_err(|e| e.to_string())?;
    let fail = |e: accord::Error| e.to_string();
    let tick = TICK_MS.to_string();
    let election = ELECTION_TICKS.to_string();
    let server_args = ["--tick-ms", &tick, "--election-ticks", &election];
    let cluster = LocalCluster::start(&binary, 3, "bench-hostile", &server_args).map_err(fail)?;
    let (leader, term) = cluster
        .wait_for_leader(None, Duration::from_secs(10))
        .map_err(fail)?;
    let target = cluster.address(leader).ok_or("the leader has no address")?;
    let pid = cluster.pid(leader).ok_or("the leader has no process")?;
    let attack = Attack {
        kind,
        target,
        endpoints: cluster.endpoints(),
        connections,
        value_bytes: 1_000_000,
        cluster: 1,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + Duration::from_secs(seconds);
    let attacker = {
        let (attack, stop) = (attack.clone(), stop.clone());
        std::thread::spawn(move || hostile::run(&attack, until, &stop))
    };
    let rss_max = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (rss_max, stop) = (rss_max.clone(), stop.clone());
        std::thread::spawn(move || {
            // Bounded by `stop`, set once the attack ends.
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = current_rss_bytes(pid) {
                    rss_max.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // The attack sets itself up (its large value) first; the well-behaved client starts a
    // moment later so that it measures the attack, not the set-up.
    std::thread::sleep(Duration::from_millis(500));
    let well_behaved = Client::connect(ClientConfig {
        timeout: Duration::from_secs(10),
        ..cluster.client_config(
            std::iter::once(target.to_string())
                .chain(
                    cluster
                        .endpoints()
                        .into_iter()
                        .filter(|e| *e != target.to_string()),
                )
                .collect(),
        )
    })
    .map_err(fail)?;
    let value = vec![b'w'; WELL_BEHAVED_VALUE_BYTES];
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut acknowledged = Vec::new();
    // Bounded by the attack's end.
    while Instant::now() < until {
        let key = format!("well-behaved/{:06}", acknowledged.len() + errors).into_bytes();
        let started = Instant::now();
        match well_behaved.put(&key, &value) {
            Ok(_) => acknowledged.push(key.clone()),
            Err(_) => errors += 1,
        }
        latencies.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        if well_behaved.get(&key).is_err() {
            errors += 1;
        }
        latencies.push(started.elapsed().as_secs_f64());
    }
    stop.store(true, Ordering::Relaxed);
    let summary = attacker.join().map_err(|_| "the attack panicked")??;
    let _ = sampler.join();
    let statuses = cluster.statuses(Duration::from_secs(2));
    let leader_changed = statuses
        .values()
        .any(|s| s.term != term || (s.leader != leader && s.leader != 0))
        || statuses.get(&leader).is_none_or(|s| s.role != "leader");
    let mut lost = 0;
    for key in &acknowledged {
        match well_behaved.get(key) {
            Ok((Some(found), _)) if found.value == value => {}
            _ => lost += 1,
        }
    }
    let max_us = latencies.iter().fold(0.0f64, |a, &b| a.max(b)) * 1e6;
    if leader_changed || errors > 0 || max_us >= (TICK_MS * ELECTION_TICKS * 1000) as f64 {
        // What the members said, before the cluster's directory goes with it.
        for id in cluster.ids() {
            let log = cluster.dir().join(format!("node{id}.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- the last lines of member {id}'s log:");
            for line in &lines[lines.len().saturating_sub(15)..] {
                eprintln!("{line}");
            }
        }
    }
    Ok(Outcome {
        ops: latencies.len(),
        errors,
        p50_us: percentile_us(&mut latencies, 50.0),
        p99_us: percentile_us(&mut latencies, 99.0),
        max_us,
        rss_mib_max: rss_max.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0),
        leader_changed,
        lost,
        closed_by_member: summary.closed_by_member,
    })
}

/// `accord bench hostile`.
pub fn main(mut args: Args) -> Result<ExitCode, String> {
    let kinds: String = args.get("kinds", "never-read".to_string())?;
    let counts: String = args.get("connections", "1,16,64".to_string())?;
    let seconds: u64 = args.get("seconds", 8)?;
    let rss_mib_max: f64 = args.get("rss-mib-max", f64::INFINITY)?;
    let check = args.flag("check");
    args.finish_keeping_words()?;
    let kinds: Vec<Kind> = if kinds == "all" {
        Kind::ALL.to_vec()
    } else {
        kinds
            .split(',')
            .map(Kind::parse)
            .collect::<Result<_, _>>()?
    };
    let counts: Vec<usize> = counts
        .split(',')
        .map(|c| {
            c.parse()
                .map_err(|_| format!("--connections: '{c}' is not a number"))
        })
        .collect::<Result<_, _>>()?;
    if !(1..=600).contains(&seconds) {
        return Err("--seconds must be 1..=600".into());
    }
    let election_timeout_us = (TICK_MS * ELECTION_TICKS * 1000) as f64;
    let mut failures = Vec::new();
    for kind in kinds {
        for &connections in &counts {
            let o = measure(kind, connections, seconds)?;
            println!(
                "hostile {}: connections={connections} ops={} errors={} p50_us={:.0} p99_us={:.0} max_us={:.0} leader_rss_mib_max={:.0} leader_changed={} lost={} closed_by_member={}",
                kind.name(),
                o.ops,
                o.errors,
                o.p50_us,
                o.p99_us,
                o.max_us,
                o.rss_mib_max,
                if o.leader_changed { "yes" } else { "no" },
                o.lost,
                o.closed_by_member,
            );
            let mut wrong = Vec::new();
            if o.max_us >= election_timeout_us {
                wrong.push(format!(
                    "waited {:.0} ms (the election timeout is {:.0} ms)",
                    o.max_us / 1000.0,
                    election_timeout_us / 1000.0
                ));
            }
            if o.errors > 0 {
                wrong.push(format!("{} calls failed", o.errors));
            }
            if o.leader_changed {
                wrong.push("the leader lost its leadership".into());
            }
            if o.lost > 0 {
                wrong.push(format!("{} acknowledged writes lost", o.lost));
            }
            if o.rss_mib_max > rss_mib_max {
                wrong.push(format!(
                    "the leader's memory reached {:.0} MiB (bound {rss_mib_max:.0} MiB)",
                    o.rss_mib_max
                ));
            }
            if !wrong.is_empty() {
                failures.push(format!(
                    "{} x{connections}: {}",
                    kind.name(),
                    wrong.join("; ")
                ));
            }
        }
    }
    if check && !failures.is_empty() {
        for failure in &failures {
            eprintln!("hostile check failed: {failure}");
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
