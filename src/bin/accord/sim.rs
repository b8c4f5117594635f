//! `accord sim`: many seeded simulations in parallel, one line per failing seed with the
//! command that replays it, and one summary line.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use accord::limits::{SIM_CLIENTS_MAX, SIM_NODES_MAX, SIM_SEEDS_MAX};
use accord::sim::{run_seeds, FaultSet, SeedReport, SimOptions};

use crate::args::Args;

const HELP: &str = "\
usage: accord sim [options]

Runs the deterministic simulator: a Raft cluster with clients doing put, get and
compare-and-swap, under faults, with safety checked after every step, liveness checked
after the faults heal, and every history checked for linearizability.

options:
  --nodes N        cluster size: 3, 5 or 7 (default 5)
  --seeds N        run N seeds, starting at --first-seed (default 100)
  --first-seed S   first seed of the range (default 1)
  --seed S         run exactly one seed (replays it byte for byte)
  --faults LIST    all, none, or a comma list of: drop, duplicate, reorder, delay,
                   partition, crash, pause, bad-input, clock, disk, membership
                   (default all: every fault but membership changes; all,membership
                   adds them: learners added, promoted and removed, voters removed,
                   the leader among them, with two spare nodes to add)
  --ticks N        length of the fault phase in ticks (default 3000)
  --clients N      concurrent clients (default 5)
  --keys N         keys the clients share (default 3)
  --threads N      worker threads (default: one per core)
  --verbose        print one line per seed, not only per failing seed

Output: one line per failing seed with the command that replays it, then
  sim: seeds=<n> failed=<n> ops=<n> linearizable=<n>/<n> elections=<n> max_election_ticks=<n>
The exit status is 1 if any seed failed.
";

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["verbose", "help"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let defaults = SimOptions::default();
    let nodes: usize = args.get("nodes", defaults.nodes)?;
    if !matches!(nodes, 3 | 5 | 7) || nodes > SIM_NODES_MAX {
        return Err(format!("--nodes must be 3, 5 or 7, not {nodes}"));
    }
    let faults_text: String = args.get("faults", "all".to_string())?;
    let faults = FaultSet::parse(&faults_text)?;
    let clients: usize = args.get("clients", defaults.clients)?;
    if clients > SIM_CLIENTS_MAX {
        return Err(format!("--clients must be at most {SIM_CLIENTS_MAX}"));
    }
    let keys: u32 = args.get("keys", defaults.keys)?;
    if !(1..=1000).contains(&keys) {
        return Err("--keys must be between 1 and 1000".into());
    }
    let ticks: u64 = args.get("ticks", defaults.fault_ticks)?;
    if !(1..=1_000_000).contains(&ticks) {
        return Err("--ticks must be between 1 and 1000000".into());
    }
    let single: Option<u64> = args.get_opt("seed")?;
    let count: u64 = args.get("seeds", 100)?;
    let first: u64 = args.get("first-seed", 1)?;
    if count == 0 || count > SIM_SEEDS_MAX {
        return Err(format!("--seeds must be between 1 and {SIM_SEEDS_MAX}"));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: usize = args.get("threads", cores)?;
    let verbose = args.flag("verbose") || single.is_some();
    args.finish()?;
    let seeds: Vec<u64> = match single {
        Some(seed) => vec![seed],
        None => (first..first.saturating_add(count)).collect(),
    };
    let options = SimOptions {
        nodes,
        clients,
        keys,
        faults,
        fault_ticks: ticks,
        ..defaults
    };
    let replay = |seed: u64| {
        let mut command = format!(
            "accord sim --nodes {nodes} --faults {} --seed {seed}",
            faults.name()
        );
        if ticks != defaults.fault_ticks {
            command += &format!(" --ticks {ticks}");
        }
        if clients != defaults.clients {
            command += &format!(" --clients {clients}");
        }
        if keys != defaults.keys {
            command += &format!(" --keys {keys}");
        }
        command
    };
    let done = AtomicU64::new(0);
    let total = seeds.len() as u64;
    let progress_every = (total / 10).max(1);
    let on_done = |_report: &SeedReport| {
        let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
        if total >= 20 && finished.is_multiple_of(progress_every) {
            eprintln!("sim: {finished}/{total} seeds done");
        }
    };
    let summary = run_seeds(&options, &seeds, threads, &on_done);
    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock, line: String| {
        let _ = writeln!(out, "{line}");
    };
    if verbose {
        // Reports are in seed order, so this output is the same on every replay.
        for report in &summary.reports {
            write(&mut out, describe(report));
        }
    }
    for report in &summary.failures {
        write(
            &mut out,
            format!(
                "seed={} FAILED: {} | replay: {}",
                report.seed,
                report.failure.as_deref().unwrap_or("unknown"),
                replay(report.seed)
            ),
        );
    }
    write(
        &mut out,
        format!(
            "sim: seeds={} failed={} ops={} linearizable={}/{} elections={} max_election_ticks={} lock_violations={} election_violations={} queue_violations={} watch_violations={} grants={} expiries={} watch_events={} conf_changes={}",
            summary.seeds,
            summary.failures.len(),
            summary.operations,
            summary.linearizable,
            summary.histories,
            summary.elections,
            summary.max_election_ticks,
            summary.lock_violations,
            summary.election_violations,
            summary.queue_violations,
            summary.watch_violations,
            summary.grants,
            summary.expiries,
            summary.watch_events,
            summary.conf_changes
        ),
    );
    Ok(if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn describe(report: &SeedReport) -> String {
    format!(
        "seed={} ops={} elections={} election_ticks_after_heal={} bad_inputs_rejected={} \
         snapshot_chunks={} corruptions_detected={}",
        report.seed,
        report.operations,
        report.elections,
        report.election_ticks_after_heal,
        report.bad_inputs_rejected,
        report.snapshot_chunks,
        report.corruptions_detected
    )
}
