//! One simulated run per seed, and many seeds in parallel.
//!
//! A run: a cluster with clients and the nemesis for `fault_ticks`; then every fault heals and
//! the run demands liveness (a leader, and a probe entry committed and applied on every node
//! within a bound); then the whole client history is checked for linearizability. Everything
//! derives from the seed, so `accord sim --seed S` replays a run exactly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::cluster::{Cluster, RaftSettings};
use super::linearizability::{self, Verdict};
use super::nemesis::FaultSet;
use super::network::TICK_US;
use crate::types::NodeId;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Cluster size (3, 5 or 7).
    pub nodes: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys (registers) the clients share.
    pub keys: u32,
    /// Faults injected during the fault phase.
    pub faults: FaultSet,
    /// Length of the fault phase, in ticks.
    pub fault_ticks: u64,
    /// Raft settings of every node.
    pub raft: RaftSettings,
    /// Coordination clients (sessions, mutex, election, queue).
    pub coord_clients: usize,
    /// Watchers of change events.
    pub watchers: usize,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            nodes: 5,
            clients: 5,
            keys: 3,
            faults: FaultSet::all(),
            fault_ticks: 3_000,
            raft: RaftSettings::default(),
            coord_clients: 3,
            watchers: 2,
        }
    }
}

/// Election timeouts allowed, after every fault heals, for a leader to emerge and a probe
/// entry to be applied on every node.
pub const HEAL_ELECTION_TIMEOUTS_MAX: u64 = 60;

/// The outcome of one seed.
#[derive(Clone, Debug, Default)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// The first property that failed, if any.
    pub failure: Option<String>,
    /// Client operations recorded.
    pub operations: u64,
    /// Whether the history was checked and found linearizable.
    pub linearizable: bool,
    /// Leaders elected.
    pub elections: u64,
    /// Ticks from healing to a leader.
    pub election_ticks_after_heal: u64,
    /// Malformed messages refused.
    pub bad_inputs_rejected: u64,
    /// Snapshot chunks sent to lagging followers.
    pub snapshot_chunks: u64,
    /// Starts refused on a corrupt disk (each followed by a repair).
    pub corruptions_detected: u64,
    /// Two holders of one mutex or queue item at once, a session expired inside its safe
    /// time, a token out of order at the fenced resource or in the grants.
    pub lock_violations: u64,
    /// Two leaders of one election at once.
    pub election_violations: u64,
    /// An item acknowledged twice, or lost.
    pub queue_violations: u64,
    /// A watcher that missed, repeated or reordered an event.
    pub watch_violations: u64,
    /// Grants (locks, leadership, claims) made.
    pub grants: u64,
    /// Sessions expired by the leader.
    pub expiries: u64,
    /// Events delivered to watchers.
    pub watch_events: u64,
    /// Membership changes accepted by leaders.
    pub conf_changes: u64,
}

/// Runs one seed.
pub fn run_seed(options: &SimOptions, seed: u64) -> SeedReport {
    // With membership faults, two spare nodes wait to be added.
    let spares = if options.faults.membership {
        crate::limits::SIM_SPARES_MAX
    } else {
        0
    };
    let settings = settings_for_seed(options, seed);
    let mut cluster = Cluster::with_spares(options.nodes, spares, seed, settings);
    let fault_end = options.fault_ticks * TICK_US;
    cluster.add_clients(options.clients, options.keys, fault_end);
    cluster.add_coord_clients(options.coord_clients, options.watchers, fault_end);
    cluster.start_nemesis(options.faults, fault_end);
    cluster.run_until(fault_end);
    let mut report = SeedReport {
        seed,
        ..SeedReport::default()
    };
    if cluster.violation.is_none() {
        report.election_ticks_after_heal = heal_and_check_liveness(&mut cluster);
    }
    if cluster.violation.is_none() {
        // Let every member apply what was committed last (expiries, closes), then check.
        let target = cluster.applied_anywhere();
        let budget = HEAL_ELECTION_TIMEOUTS_MAX * u64::from(cluster.settings.election_ticks);
        let members = cluster.members();
        cluster.run_until_true(budget, |c| {
            members
                .iter()
                .all(|&id| c.raft(id).is_some_and(|r| r.applied_index() >= target))
        });
        cluster.coord_finish();
    }
    let coord = cluster.coord_report();
    report.lock_violations = coord.lock_violations;
    report.election_violations = coord.election_violations;
    report.queue_violations = coord.queue_violations;
    report.watch_violations = coord.watch_violations;
    report.grants = coord.grants;
    report.expiries = coord.expiries;
    report.watch_events = coord.watch_events;
    if cluster.violation.is_none() {
        if let Some(violation) = coord.first_violation {
            cluster.violation = Some(violation);
        }
    }
    report.operations = cluster.history().len() as u64;
    report.elections = cluster.elections();
    report.conf_changes = cluster.conf_changes;
    report.bad_inputs_rejected = cluster.bad_inputs_rejected;
    report.corruptions_detected = cluster.corruptions_detected;
    report.snapshot_chunks = cluster
        .messages_by_kind
        .get("InstallSnapshot")
        .copied()
        .unwrap_or(0);
    if let Some(violation) = cluster.violation.take() {
        report.failure = Some(violation);
        return report;
    }
    match linearizability::check(cluster.history()) {
        Verdict::Linearizable => report.linearizable = true,
        verdict => report.failure = Some(format!("linearizability: {verdict:?}")),
    }
    report
}

/// The Raft settings of one seed: the options' settings, with the replication budgets drawn
/// from the seed so that runs cover one-entry messages and tiny windows as well as large ones.
fn settings_for_seed(options: &SimOptions, seed: u64) -> RaftSettings {
    let mut rng = crate::core::rng::Rng::new(seed ^ 0x5EED_5E77_1265_0000);
    let mut settings = options.raft.clone();
    if rng.chance(1, 2) {
        // 1 to 4 entries of the simulator's size per message.
        settings.append_bytes_max = rng.range(1, 4 * 64) as usize;
        settings.inflight_messages_max = rng.range(1, 9) as usize;
    }
    settings
}

/// Heals every fault and requires the cluster to elect a leader and apply a new entry on every
/// node within [`HEAL_ELECTION_TIMEOUTS_MAX`] election timeouts. Returns ticks to a leader.
fn heal_and_check_liveness(cluster: &mut Cluster) -> u64 {
    cluster.heal();
    let ids = cluster.ids();
    for &id in &ids {
        cluster.pause(id, 0);
        if !cluster.is_up(id) {
            cluster.restart(id); // a corrupt node is repaired instead, a little later
        }
    }
    let healed_at = cluster.now;
    let budget = HEAL_ELECTION_TIMEOUTS_MAX * u64::from(cluster.settings.election_ticks);
    if !cluster.run_until_true(budget, |c| c.leader().is_some()) {
        let states = cluster.describe_nodes();
        cluster.fail(format!(
            "liveness: no leader within {budget} ticks after healing; {states}"
        ));
        return budget;
    }
    let ticks_to_leader = (cluster.now - healed_at).div_ceil(TICK_US);
    let deadline_ticks = budget.saturating_sub(ticks_to_leader);
    let Some(probe) = commit_probe(cluster, deadline_ticks) else {
        let states = cluster.describe_nodes();
        cluster.fail(format!(
            "liveness: no entry applied on every node within {budget} ticks of healing; \
             {states}"
        ));
        return ticks_to_leader;
    };
    let target = cluster
        .acked_writes
        .iter()
        .map(|&(index, _)| index)
        .max()
        .unwrap_or(0)
        .max(probe);
    // Nodes removed from the cluster (or never added) are not held to its liveness.
    let all_applied = |c: &Cluster| {
        c.members()
            .iter()
            .all(|&id| c.raft(id).is_some_and(|r| r.applied_index() >= target))
    };
    if !cluster.run_until_true(deadline_ticks, all_applied) {
        let states = cluster.describe_nodes();
        cluster.fail(format!(
            "liveness: index {target} not applied on every node within {budget} ticks of \
             healing; {states}"
        ));
        return ticks_to_leader;
    }
    let members = cluster.members();
    check_acknowledged_writes(cluster, &members);
    ticks_to_leader
}

/// Proposes a probe entry on whichever node leads and waits until every node applied it,
/// proposing again whenever leadership changes and the probe is lost. Returns its index.
fn commit_probe(cluster: &mut Cluster, ticks: u64) -> Option<u64> {
    let mut probe: Option<(u64, u64)> = None;
    for _ in 0..ticks {
        if let Some(leader) = cluster.leader() {
            let lost = probe.is_none_or(|(index, term)| {
                cluster.raft(leader).and_then(|r| r.log_term(index)) != Some(term)
                    && cluster.raft(leader).is_some_and(|r| r.term() > term)
            });
            if lost {
                if let Ok(index) = cluster.propose(leader, b"liveness probe") {
                    let term = cluster.raft(leader).map_or(0, |r| r.term());
                    probe = Some((index, term));
                }
            }
        }
        if let Some((index, _)) = probe {
            let everywhere = cluster
                .members()
                .iter()
                .all(|&id| cluster.raft(id).is_some_and(|r| r.applied_index() >= index));
            if everywhere {
                return Some(index);
            }
        }
        cluster.run_ticks(1);
    }
    None
}

/// Every write a client saw succeed is in the log every node applied.
fn check_acknowledged_writes(cluster: &mut Cluster, ids: &[NodeId]) {
    for position in 0..cluster.acked_writes.len() {
        let (index, term) = cluster.acked_writes[position];
        if cluster.invariants.applied_term(index) != Some(term) {
            cluster.fail(format!(
                "acknowledged write at index {index} (term {term}) is not in the applied log"
            ));
            return;
        }
        for &id in ids {
            if cluster.raft(id).is_none_or(|r| r.applied_index() < index) {
                cluster.fail(format!(
                    "node {id} never applied acknowledged write {index}"
                ));
                return;
            }
        }
    }
}

/// Totals over many seeds.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Every seed's report, in seed order.
    pub reports: Vec<SeedReport>,
    /// Reports of the seeds that failed, in seed order.
    pub failures: Vec<SeedReport>,
    /// Client operations across all seeds.
    pub operations: u64,
    /// Histories found linearizable.
    pub linearizable: u64,
    /// Histories checked.
    pub histories: u64,
    /// Leaders elected across all seeds.
    pub elections: u64,
    /// The longest time to a leader after healing, in ticks.
    pub max_election_ticks: u64,
    /// Malformed messages refused across all seeds.
    pub bad_inputs_rejected: u64,
    /// Coordination violations across all seeds, by kind.
    pub lock_violations: u64,
    /// See [`SeedReport::election_violations`].
    pub election_violations: u64,
    /// See [`SeedReport::queue_violations`].
    pub queue_violations: u64,
    /// See [`SeedReport::watch_violations`].
    pub watch_violations: u64,
    /// Grants across all seeds.
    pub grants: u64,
    /// Session expiries across all seeds.
    pub expiries: u64,
    /// Watch events delivered across all seeds.
    pub watch_events: u64,
    /// Membership changes across all seeds.
    pub conf_changes: u64,
}

/// Runs `seeds` (in parallel on `threads` threads); `on_done` sees each report as it finishes.
pub fn run_seeds(
    options: &SimOptions,
    seeds: &[u64],
    threads: usize,
    on_done: &(dyn Fn(&SeedReport) + Sync),
) -> Summary {
    let next = AtomicU64::new(0);
    let reports = Mutex::new(Vec::with_capacity(seeds.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let position = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&seed) = seeds.get(position) else {
                    break;
                };
                let report = run_seed(options, seed);
                on_done(&report);
                reports
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(report);
            });
        }
    });
    let mut reports = reports
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    reports.sort_by_key(|r| r.seed);
    let mut summary = Summary {
        seeds: reports.len() as u64,
        ..Summary::default()
    };
    for report in &reports {
        summary.operations += report.operations;
        summary.elections += report.elections;
        summary.bad_inputs_rejected += report.bad_inputs_rejected;
        summary.lock_violations += report.lock_violations;
        summary.election_violations += report.election_violations;
        summary.queue_violations += report.queue_violations;
        summary.watch_violations += report.watch_violations;
        summary.grants += report.grants;
        summary.expiries += report.expiries;
        summary.watch_events += report.watch_events;
        summary.conf_changes += report.conf_changes;
        summary.max_election_ticks = summary
            .max_election_ticks
            .max(report.election_ticks_after_heal);
        summary.histories += 1;
        summary.linearizable += u64::from(report.linearizable);
        if report.failure.is_some() {
            summary.failures.push(report.clone());
        }
    }
    summary.reports = reports;
    summary
}
