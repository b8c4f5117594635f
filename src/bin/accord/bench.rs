//! `accord bench core`: the consensus core alone — three in-memory nodes in one thread, no
//! network, no disk — to show what the core itself costs per committed proposal.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use accord::core::raft::{Config, MemStorage, Message, Raft, Role};
use accord::types::{EntryKind, Payload};

use crate::args::Args;
use crate::counting_alloc::allocations;

const HELP: &str = "\
usage: accord bench core [options]
       accord bench wal --dir D [--appends N]
       accord bench local [--failover-trials N] [--scale N] [--only W1,W2] [--tls]
       accord bench ffi
       accord bench hostile [--kinds K1,K2|all] [--connections 1,16,64] [--seconds S]
                            [--rss-mib-max N] [--check]

hostile: for each kind of `accord hostile` (default never-read) and each connection count, a
fresh 3-process cluster; the attack runs against the leader for S seconds (default 8) while a
well-behaved client of the same member puts and gets 64 B values and measures each call:
  hostile <kind>: connections=<n> ops=<n> errors=<n> p50_us=<n> p99_us=<n> max_us=<n> leader_rss_mib_max=<n> leader_changed=<yes|no> lost=<n> closed_by_member=<n>
--check exits 1 unless every call took less than an election timeout (500 ms) and
succeeded, no acknowledged write was lost, the leader kept its leadership and its resident
memory stayed under --rss-mib-max.

ffi: one member in this process, started through the C ABI; a local serializable get
through the Rust API and through accord_kv_get, alternating blocks of 20,000 calls:
  bench ffi: call=get-serializable-local rust_ns_per_call=<n> c_abi_ns_per_call=<n> extra_ns=<n> ...

local: starts a 3-process cluster on loopback (fsync on, data in a temporary directory),
measures the floor (loopback round trip to one of our processes + fdatasync), then prints
  bench <workload>: clients=<n> ops_per_s=<n> p50_us=<n> p99_us=<n> floor_us=<n>
for put (8 B keys, 256 B values) at 1, 16 and 128 clients, get-linearizable,
get-serializable, failover (kill -9 the leader -> first successful write), lock-uncontended
(acquire + release, 1 client), lock-contended (10 sessions on one mutex: time spent waiting),
election-failover (the leader's session closed -> an observer sees the next leader),
watch-latency (put -> event delivered), session-keepalive (10,000 sessions kept alive in
batches of 1,000); then `bench rss` (each member's peak memory after loading 100,000 keys of
256 B) and `bench memory` (bytes per session and per idle watch at 100,000 of each).
--only W1,W2 runs just those workloads (names as printed; rss and memory included).
--tls runs the clusters with mutual TLS (a throwaway CA, as `accord certs` makes): compare
with a run without it to see what encryption costs.

wal: appends 128 B and 4 KiB records through the write-ahead log in D (created, then
removed) at batches of 1 and 64, each append made durable by one fdatasync, next to the
raw latency of writing a small block and calling fdatasync on the same disk, measured in
the same run. Ends with
  wal: fsync_p50_us=<n> batch1_p50_us=<n> batch1_to_fsync=<ratio> batch64_records_per_s=<n> batch64_speedup=<ratio>
(for 128 B records).

core:
Three Raft nodes in memory in one thread, messages passed directly, storage in memory.
For each proposal size and batch size, prints committed proposals per second and heap
allocations per committed proposal (counted by a global allocator).

options:
  --proposals N   committed proposals to measure per configuration (default 2000000)
  --sizes LIST    proposal sizes in bytes (default 16,256)
  --batches LIST  proposals per batch (default 1,64)
";

/// Bound on in-flight batches the benchmark keeps proposed but uncommitted.
const BATCHES_IN_FLIGHT_MAX: u64 = 8;

/// Compact the in-memory logs every this many applied entries (keeps memory flat).
const COMPACT_EVERY_ENTRIES: u64 = 65_536;

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help", "tls"])?;
    if args.words.first().map(String::as_str) == Some("wal") && !args.flag("help") {
        return crate::bench_wal::main(args);
    }
    if args.words.first().map(String::as_str) == Some("local") && !args.flag("help") {
        return crate::bench_local::main(args);
    }
    if args.words.first().map(String::as_str) == Some("hostile") && !args.flag("help") {
        return crate::bench_hostile::main(args);
    }
    if args.words.first().map(String::as_str) == Some("ffi") && !args.flag("help") {
        return crate::bench_ffi::main(args);
    }
    if args.flag("help") || args.words.first().map(String::as_str) != Some("core") {
        print!("{HELP}");
        return Ok(if args.words.is_empty() || args.flag("help") {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        });
    }
    let proposals: u64 = args.get("proposals", 2_000_000)?;
    let sizes = parse_list(&args.get("sizes", "16,256".to_string())?)?;
    let batches = parse_list(&args.get("batches", "1,64".to_string())?)?;
    args.finish()?;
    if proposals == 0 || proposals > 1_000_000_000 {
        return Err("--proposals must be between 1 and 1000000000".into());
    }
    if sizes
        .iter()
        .any(|&s| s > accord::limits::ENTRY_BYTES_MAX as u64)
        || batches
            .iter()
            .any(|&b| b == 0 || b > accord::limits::PROPOSAL_BATCH_COUNT_MAX as u64)
    {
        return Err("sizes must fit an entry and batches must be 1..=4096".into());
    }
    for &size in &sizes {
        for &batch in &batches {
            let result = run(size as usize, batch as usize, proposals)?;
            println!(
                "bench core: nodes=3 size={size}B batch={batch} committed={} proposals_per_sec={:.0} allocations_per_proposal={:.3}",
                result.committed, result.per_second, result.allocations_per_proposal
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_list(text: &str) -> Result<Vec<u64>, String> {
    text.split(',')
        .map(|part| {
            part.trim()
                .parse()
                .map_err(|_| format!("cannot parse '{part}' as a number"))
        })
        .collect()
}

struct BenchResult {
    committed: u64,
    per_second: f64,
    allocations_per_proposal: f64,
}

/// Three nodes and the messages between them.
struct Bench {
    nodes: Vec<Raft<MemStorage>>,
    wire: VecDeque<Message>,
    committed: u64,
    applied_since_compact: u64,
}

impl Bench {
    fn new() -> Result<Bench, String> {
        let voters = [1, 2, 3];
        let mut nodes = Vec::new();
        for id in voters {
            let config = Config::new(id);
            let raft = Raft::new(config, MemStorage::new_with_voters(&voters))
                .map_err(|e| e.to_string())?;
            nodes.push(raft);
        }
        let mut bench = Bench {
            nodes,
            wire: VecDeque::with_capacity(1024),
            committed: 0,
            applied_since_compact: 0,
        };
        // Elect node 1: tick it alone past its election timeout.
        for _ in 0..1_000 {
            if bench.nodes[0].role() == Role::Leader {
                break;
            }
            bench.nodes[0].tick();
            bench.pump();
        }
        if bench.nodes[0].role() != Role::Leader {
            return Err("benchmark cluster elected no leader".into());
        }
        bench.pump();
        bench.committed = 0;
        Ok(bench)
    }

    /// Handles every node's Ready once and delivers every message sent.
    fn pump(&mut self) {
        for position in 0..self.nodes.len() {
            let node = &mut self.nodes[position];
            if !node.has_ready() {
                continue;
            }
            let ready = node.ready();
            let marker = ready.persisted_marker();
            self.wire.extend(ready.messages);
            // Storage errors cannot happen here: the Ready contract appends consecutively.
            let _ = node.storage_mut().append(&ready.entries);
            if let Some(hard_state) = ready.hard_state {
                node.storage_mut().set_hard_state(hard_state);
            }
            node.advance(marker);
            self.wire.extend(ready.persisted_messages);
            if position == 0 {
                self.committed += ready
                    .committed_entries
                    .iter()
                    .filter(|e| e.kind == EntryKind::Normal)
                    .count() as u64;
                self.applied_since_compact += ready.committed_entries.len() as u64;
            }
        }
        while let Some(message) = self.wire.pop_front() {
            let to = (message.to - 1) as usize;
            let _ = self.nodes[to].step(message);
        }
        if self.applied_since_compact >= COMPACT_EVERY_ENTRIES {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let upto = self
            .nodes
            .iter()
            .map(|n| n.applied_index())
            .min()
            .unwrap_or(0)
            .saturating_sub(1_024);
        for node in &mut self.nodes {
            let _ = node.storage_mut().compact(upto);
        }
        self.applied_since_compact = 0;
    }
}

fn run(size: usize, batch: usize, proposals: u64) -> Result<BenchResult, String> {
    let mut bench = Bench::new()?;
    let buffer: Vec<u8> = (0..size * batch).map(|i| i as u8).collect();
    let propose = |bench: &mut Bench| -> Result<(), String> {
        // One allocation per batch: every proposal is a window into one shared buffer.
        let whole = Payload::from_shared(Arc::from(&buffer[..]));
        let parts = (0..batch).filter_map(|i| whole.slice(i * size, (i + 1) * size));
        bench.nodes[0]
            .propose_batch(parts)
            .map(|_| ())
            .map_err(|e| format!("proposal refused: {e}"))
    };
    let target = proposals;
    let allocations_before = allocations();
    let started = Instant::now();
    let mut proposed = 0u64;
    while bench.committed < target {
        let in_flight = proposed - bench.committed;
        if proposed < target && in_flight < BATCHES_IN_FLIGHT_MAX * batch as u64 {
            propose(&mut bench)?;
            proposed += batch as u64;
        }
        bench.pump();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allocated = allocations() - allocations_before;
    Ok(BenchResult {
        committed: bench.committed,
        per_second: bench.committed as f64 / elapsed,
        allocations_per_proposal: allocated as f64 / bench.committed as f64,
    })
}
