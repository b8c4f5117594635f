//! Every bound in accord, in one place, with its unit in its name.
//!
//! Nothing in accord grows without limit: each queue, buffer, map and loop names the constant
//! here that bounds it. Compile-time assertions at the bottom relate the constants to each
//! other so that a change to one cannot silently break another.

/// Largest command payload a single log entry may carry.
pub const ENTRY_BYTES_MAX: usize = 1024 * 1024;

/// Fixed per-entry overhead counted in byte budgets (term, index, kind, framing).
pub const ENTRY_HEADER_BYTES: usize = 24;

/// Most entries one AppendEntries message may carry.
pub const APPEND_ENTRIES_COUNT_MAX: usize = 4096;

/// Byte budget of one AppendEntries message (the first entry is always sent, even if larger,
/// so that an entry at [`ENTRY_BYTES_MAX`] can still be replicated).
pub const APPEND_BYTES_MAX: usize = 1024 * 1024;

/// AppendEntries messages in flight to one follower before the leader waits for acks.
pub const INFLIGHT_MESSAGES_MAX: usize = 256;

/// Largest state-machine snapshot, in bytes.
pub const SNAPSHOT_BYTES_MAX: usize = 1024 * 1024 * 1024;

/// Snapshot chunks in flight to one follower before the leader waits for acknowledgements.
pub const SNAPSHOT_CHUNKS_IN_FLIGHT_MAX: u64 = 4;

/// Chunks a snapshot transfer is cut into at most (unless that would make chunks larger than
/// [`APPEND_BYTES_MAX`]): a transfer must finish before the next snapshot replaces it.
pub const SNAPSHOT_CHUNKS_PER_TRANSFER: u64 = 64;

/// Size a WAL segment is preallocated to; a new segment starts when the next batch would not
/// fit.
///
/// 8 MiB: recovery reads one segment at a time into memory, so this bounds its memory, and
/// zero-filling the next one ahead of time stays cheap.
pub const WAL_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// Largest WAL segment file recovery will read (a single batch larger than a segment makes its
/// segment grow past the preallocated size, up to this).
pub const WAL_SEGMENT_FILE_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// WAL segments a data directory may hold (compaction removes old ones).
pub const WAL_SEGMENTS_MAX: usize = 10_000;

/// Entries kept in the log behind the latest snapshot by default, so a follower that is only
/// a little behind catches up from the log instead of needing the whole snapshot.
pub const COMPACTION_MARGIN_ENTRIES_DEFAULT: u64 = 5_000;

/// Snapshot files kept in a data directory (older ones are deleted).
pub const SNAPSHOT_FILES_KEPT: usize = 2;

/// Proposals one `propose_batch` call may carry.
pub const PROPOSAL_BATCH_COUNT_MAX: usize = 4096;

/// Bytes of proposed but not yet committed entries a leader accepts before refusing new
/// proposals (back-pressure when followers cannot keep up).
pub const UNCOMMITTED_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Linearizable reads waiting for a ReadIndex round on one node.
pub const PENDING_READS_MAX: usize = 65_536;

/// Messages produced by one node between two `ready()` calls.
pub const OUTBOX_MESSAGES_MAX: usize = 65_536;

/// Voters (and, separately, learners) a configuration may hold.
pub const VOTERS_MAX: usize = 7;

/// Learners a configuration may hold.
pub const LEARNERS_MAX: usize = 16;

/// How often a warning that a peer repeats on every retry (a refused connection, a message
/// from a removed member) is logged per peer, at most.
pub const REPEATED_WARNING_INTERVAL_MS: u64 = 60_000;

/// Peers whose repeated warnings are tracked at once (the table starts over when full).
pub const WARNED_KEYS_MAX: usize = 256;

/// Log entries a leader sums to report a member's lag in bytes (beyond, a lower bound).
pub const LAG_BYTES_SCAN_ENTRIES_MAX: u64 = 100_000;

/// Bytes of a snapshot file one `accord snapshot save` reply carries.
pub const SNAPSHOT_CHUNK_BYTES: usize = 256 * 1024;

/// Bytes of an HTTP request the metrics endpoint reads before refusing it.
pub const METRICS_REQUEST_BYTES_MAX: usize = 8 * 1024;

/// How long the metrics endpoint waits for a scraper to send its request or read the answer.
pub const METRICS_SCRAPE_TIMEOUT_MS: u64 = 2_000;

/// Bytes of context (the members' addresses) a membership entry may carry.
pub const MEMBERSHIP_CONTEXT_BYTES_MAX: usize = 8 * 1024;

/// How far (in entries) a learner's log may trail the leader's for it to be promoted to
/// voter: a voter that far behind would hold up commits while it catches up.
pub const PROMOTE_LAG_ENTRIES_MAX: u64 = 1000;

/// Smallest election timeout, in ticks.
pub const ELECTION_TICKS_MIN: u32 = 3;

/// Largest election timeout, in ticks.
pub const ELECTION_TICKS_MAX: u32 = 10_000;

/// Largest key, in bytes.
pub const KEY_BYTES_MAX: usize = 4 * 1024;

/// Largest value, in bytes (an entry also carries the key and the request header).
pub const VALUE_BYTES_MAX: usize = ENTRY_BYTES_MAX - KEY_BYTES_MAX - 256;

/// Compares plus operations in one transaction.
pub const TXN_OPERATIONS_MAX: usize = 128;

/// Keys one range read may return.
pub const RANGE_RESULTS_MAX: usize = 10_000;

/// Bytes of keys and values one range read returns at most (beyond the first key); the
/// reply says more keys matched, and the caller continues from the last key.
pub const RANGE_BYTES_MAX: usize = 512 * 1024;

/// Bytes a range reply spends per key besides the key and value (lengths and counters).
pub const RANGE_KEY_OVERHEAD_BYTES: usize = 40;

/// Clients whose last write result the state machine remembers (for exactly-once retries);
/// beyond this, the least recently active client is forgotten.
pub const CLIENT_RESULTS_MAX: usize = 100_000;

/// Sessions alive at once.
pub const SESSIONS_MAX: usize = 250_000;

/// Sessions one client (one client id) may have alive at once: one buggy or hostile client
/// cannot take the whole session table from the others.
pub const SESSIONS_PER_CLIENT_MAX: usize = 20_000;

/// Shortest session TTL, in milliseconds. A session must outlive an election (a new leader
/// restarts every deadline, but keepalives cannot get through while there is none).
pub const SESSION_TTL_MS_MIN: u64 = 1_000;

/// Longest session TTL, in milliseconds (a day).
pub const SESSION_TTL_MS_MAX: u64 = 86_400_000;

/// Session TTL when the caller gives none, in milliseconds.
pub const SESSION_TTL_MS_DEFAULT: u64 = 10_000;

/// Fraction of the TTL (in thousandths) a client assumes clocks may drift: its session is
/// `Lost` at `last acknowledged keepalive's send time + TTL * (1 - drift)`.
pub const SESSION_DRIFT_PER_MILLE: u64 = 100;

/// Names one session may hold or wait for at once (locks, elections, groups, queues,
/// barriers).
pub const SESSION_HOLDS_MAX: usize = 1_000;

/// Sessions one expiry command ends (more are expired by the next one).
pub const EXPIRE_BATCH_MAX: usize = 1_000;

/// Named primitives (locks, elections, groups, queues, barriers, counters) alive at once.
pub const PRIMITIVES_MAX: usize = 1_000_000;

/// Sessions waiting on one lock or election.
pub const LOCK_WAITERS_MAX: usize = 10_000;

/// Permits of one semaphore.
pub const SEMAPHORE_PERMITS_MAX: u32 = 10_000;

/// Members of one group.
pub const GROUP_MEMBERS_MAX: usize = 10_000;

/// Items in one work queue (claimed or not).
pub const QUEUE_ITEMS_MAX: usize = 100_000;

/// Participants of one barrier.
pub const BARRIER_PARTICIPANTS_MAX: u32 = 10_000;

/// Events kept in a member's watch history (watches can resume from any revision in it).
pub const WATCH_HISTORY_EVENTS_MAX: usize = 100_000;

/// Bytes of events kept in a member's watch history (about 6,000 writes of 256 B values, or
/// 15,000 lock, session and group events). Each MiB here costs about 1.5 MiB of resident
/// memory; a watcher that falls further behind is told it was compacted and lists again.
pub const WATCH_HISTORY_BYTES_MAX: usize = 2 * 1024 * 1024;

/// Watches one member serves at once.
pub const WATCHES_MAX: usize = 250_000;

/// Watches one client connection may hold (an event matching all of them is encoded once per
/// watch: the per-connection backlog bound then cancels the excess).
pub const WATCHES_PER_CONNECTION_MAX: usize = 50_000;

/// Events in one `Events` frame.
pub const EVENTS_PER_FRAME_MAX: usize = 4096;

/// Bytes a connection may have queued for sending before its watches are cancelled as slow
/// consumers (below [`CONNECTION_SEND_BYTES_MAX`], so the cancellation itself still fits).
pub const WATCH_CONNECTION_BACKLOG_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Events a client-side watch buffers before the consumer reads them; past this the watch
/// is cancelled with a reason (a slow consumer must not grow memory without bound).
pub const WATCH_BUFFER_EVENTS_MAX: usize = 10_000;

/// Largest frame on the wire (payload plus header), in bytes.
pub const FRAME_BYTES_MAX: usize = APPEND_BYTES_MAX + ENTRY_BYTES_MAX + 4096;

/// Bytes queued for sending on one connection before the node stops queueing more for it
/// (a slow or dead peer is dropped from, not buffered for).
pub const CONNECTION_SEND_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Unsent bytes at which a member stops taking a client connection's requests and computing
/// its replies (its requests wait in the kernel, as TCP intends) until it drains below half
/// of this. One connection then holds at most this plus one reply, plus the answers to its
/// writes already in the log and its watches' events (see [`WATCH_CONNECTION_BACKLOG_BYTES_MAX`]).
pub const CONNECTION_SEND_PAUSE_BYTES: usize = 1024 * 1024;

/// Unsent bytes of all client connections of a member together (replies and watch events).
/// Past it, the connections holding the most are told why and closed until the total is
/// back under it: N connections cost at most this, however they behave.
pub const MEMBER_CLIENT_SEND_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Longest a client connection may keep its unsent output over [`CONNECTION_SEND_PAUSE_BYTES`]
/// (not reading its replies) before the member tells it why and closes it.
pub const CONNECTION_STALL_MS_MAX: u64 = 10_000;

/// Bytes read from one connection per turn of the event loop.
pub const CONNECTION_READ_BYTES_PER_TURN_MAX: usize = 1024 * 1024;

/// Requests taken from one client connection per turn of the event loop (the rest wait in
/// its receive buffer and the kernel until the next turn).
pub const REQUESTS_PER_CONNECTION_TURN_MAX: usize = 256;

/// Client requests taken from all connections together per turn of the event loop. Frames
/// from other members are never held back: heartbeats, appends and votes go first.
pub const CLIENT_REQUESTS_PER_TURN_MAX: usize = 4096;

/// Bytes of client replies and watch events queued per turn of the event loop while taking
/// requests, and again while serving confirmed reads (each its own budget, so that neither
/// starves the other); once spent, no more client requests are taken, or no more confirmed
/// reads served, until the next turn (copying large values must not hold up the ticks and
/// the heartbeats).
pub const REPLY_BYTES_PER_TURN_MAX: usize = 8 * 1024 * 1024;

/// Confirmed linearizable reads served per turn of the event loop (the rest next turn).
pub const READS_SERVED_PER_TURN_MAX: usize = 4096;

/// `Ready` batches a member handles per turn of the event loop; each applies at most
/// [`APPEND_BYTES_MAX`] of committed entries.
pub const READY_ROUNDS_PER_TURN_MAX: usize = 8;

/// Connections one node accepts at once (peers and clients together).
pub const CONNECTIONS_MAX: usize = 4096;

/// Client requests waiting for an answer on one node.
pub const PENDING_CLIENT_REQUESTS_MAX: usize = 65_536;

/// Connections one source address may hold open to a member at once (clients and members
/// alike): one misbehaving host cannot take every slot of [`CONNECTIONS_MAX`] from the
/// others. Past it, a new connection is answered with a refusal that names the limit.
pub const CONNECTIONS_PER_SOURCE_MAX: usize = 1024;

/// Requests one client connection may have waiting for their answers at once (a client
/// pipelining without bound would otherwise take the whole `PENDING_CLIENT_REQUESTS_MAX`).
pub const PENDING_REQUESTS_PER_CONNECTION_MAX: usize = 1024;

/// Commands queued from other threads to a node's event loop.
pub const NODE_COMMAND_QUEUE_MAX: usize = 4096;

/// Events handled per poll of the event loop.
pub const POLL_EVENTS_MAX: usize = 1024;

/// Nodes one simulated cluster may have.
pub const SIM_NODES_MAX: usize = 7;

/// Spare nodes (not members until a membership change adds them) a simulated cluster may
/// have besides its nodes.
pub const SIM_SPARES_MAX: usize = 2;

/// Clients one simulated cluster runs.
pub const SIM_CLIENTS_MAX: usize = 16;

/// Messages held in the simulated network at once; beyond this, new messages are dropped
/// (as a congested real network would).
pub const SIM_NETWORK_MESSAGES_MAX: usize = 200_000;

/// Steps of one simulated run (events processed), fault phase and healing phase together.
pub const SIM_STEPS_MAX: u64 = 20_000_000;

/// Operations recorded in one simulated history.
pub const SIM_HISTORY_OPERATIONS_MAX: usize = 100_000;

/// Search steps the linearizability checker may take on one key before it gives up (giving up
/// counts as a failure, never a pass).
pub const LINEARIZABILITY_STEPS_MAX: u64 = 50_000_000;

/// Seeds one `accord sim` invocation may run.
pub const SIM_SEEDS_MAX: u64 = 10_000_000;

const _: () = assert!(APPEND_BYTES_MAX >= ENTRY_BYTES_MAX);
const _: () = assert!(KEY_BYTES_MAX + VALUE_BYTES_MAX < ENTRY_BYTES_MAX);
const _: () = assert!(FRAME_BYTES_MAX < u32::MAX as usize);
// A range reply (the budget plus one key over it, plus framing) must fit in a frame.
const _: () = assert!(RANGE_BYTES_MAX + ENTRY_BYTES_MAX + 1024 < FRAME_BYTES_MAX);
const _: () = assert!(CONNECTION_SEND_BYTES_MAX >= 2 * FRAME_BYTES_MAX);
const _: () = assert!(CONNECTIONS_PER_SOURCE_MAX < CONNECTIONS_MAX);
const _: () = assert!(UNCOMMITTED_BYTES_MAX >= 2 * APPEND_BYTES_MAX);
const _: () = assert!(ELECTION_TICKS_MIN >= 3);
const _: () = assert!(ELECTION_TICKS_MIN < ELECTION_TICKS_MAX);
const _: () = assert!(SIM_NODES_MAX <= VOTERS_MAX);
const _: () = assert!(INFLIGHT_MESSAGES_MAX > 0 && APPEND_ENTRIES_COUNT_MAX > 0);
// Payload windows are u32 offsets; an entry and a snapshot must fit.
const _: () = assert!(ENTRY_BYTES_MAX < u32::MAX as usize);
const _: () = assert!(SNAPSHOT_BYTES_MAX < u32::MAX as usize);
const _: () = assert!(SNAPSHOT_CHUNKS_IN_FLIGHT_MAX > 0);
const _: () = assert!(SESSION_TTL_MS_MIN <= SESSION_TTL_MS_DEFAULT);
const _: () = assert!(SESSION_TTL_MS_DEFAULT <= SESSION_TTL_MS_MAX);
const _: () = assert!(SESSION_DRIFT_PER_MILLE < 500);
const _: () = assert!(WATCHES_PER_CONNECTION_MAX <= WATCHES_MAX);
const _: () =
    assert!(WATCH_CONNECTION_BACKLOG_BYTES_MAX + FRAME_BYTES_MAX < CONNECTION_SEND_BYTES_MAX);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES + 1024 < FRAME_BYTES_MAX);
// A connection over its pause still fits its watch backlog and a closing frame.
const _: () = assert!(CONNECTION_SEND_PAUSE_BYTES < WATCH_CONNECTION_BACKLOG_BYTES_MAX);
const _: () = assert!(CONNECTION_SEND_PAUSE_BYTES >= RANGE_BYTES_MAX);
const _: () = assert!(
    MEMBER_CLIENT_SEND_BYTES_MAX >= 4 * (WATCH_CONNECTION_BACKLOG_BYTES_MAX + FRAME_BYTES_MAX)
);
const _: () = assert!(REQUESTS_PER_CONNECTION_TURN_MAX <= CLIENT_REQUESTS_PER_TURN_MAX);
const _: () = assert!(REPLY_BYTES_PER_TURN_MAX >= 2 * FRAME_BYTES_MAX);

/// Bytes of a shared-secret token a client may present in its `Hello`.
pub const TOKEN_BYTES_MAX: usize = 256;

/// Bytes of an access file (roles and users).
pub const ACCESS_FILE_BYTES_MAX: usize = 1024 * 1024;

/// Grants over all roles of an access file.
pub const ACCESS_GRANTS_MAX: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every limit with its value, as SECURITY.md must list it.
    #[allow(clippy::unnecessary_cast)] // some limits are u64 already; the list casts all alike
    fn every_limit() -> Vec<(&'static str, u64)> {
        vec![
            ("ENTRY_BYTES_MAX", ENTRY_BYTES_MAX as u64),
            ("ENTRY_HEADER_BYTES", ENTRY_HEADER_BYTES as u64),
            ("APPEND_ENTRIES_COUNT_MAX", APPEND_ENTRIES_COUNT_MAX as u64),
            ("APPEND_BYTES_MAX", APPEND_BYTES_MAX as u64),
            ("INFLIGHT_MESSAGES_MAX", INFLIGHT_MESSAGES_MAX as u64),
            ("SNAPSHOT_BYTES_MAX", SNAPSHOT_BYTES_MAX as u64),
            (
                "SNAPSHOT_CHUNKS_IN_FLIGHT_MAX",
                SNAPSHOT_CHUNKS_IN_FLIGHT_MAX as u64,
            ),
            (
                "SNAPSHOT_CHUNKS_PER_TRANSFER",
                SNAPSHOT_CHUNKS_PER_TRANSFER as u64,
            ),
            ("WAL_SEGMENT_BYTES", WAL_SEGMENT_BYTES as u64),
            (
                "WAL_SEGMENT_FILE_BYTES_MAX",
                WAL_SEGMENT_FILE_BYTES_MAX as u64,
            ),
            ("WAL_SEGMENTS_MAX", WAL_SEGMENTS_MAX as u64),
            (
                "COMPACTION_MARGIN_ENTRIES_DEFAULT",
                COMPACTION_MARGIN_ENTRIES_DEFAULT as u64,
            ),
            ("SNAPSHOT_FILES_KEPT", SNAPSHOT_FILES_KEPT as u64),
            ("PROPOSAL_BATCH_COUNT_MAX", PROPOSAL_BATCH_COUNT_MAX as u64),
            ("UNCOMMITTED_BYTES_MAX", UNCOMMITTED_BYTES_MAX as u64),
            ("PENDING_READS_MAX", PENDING_READS_MAX as u64),
            ("OUTBOX_MESSAGES_MAX", OUTBOX_MESSAGES_MAX as u64),
            ("VOTERS_MAX", VOTERS_MAX as u64),
            ("LEARNERS_MAX", LEARNERS_MAX as u64),
            (
                "REPEATED_WARNING_INTERVAL_MS",
                REPEATED_WARNING_INTERVAL_MS as u64,
            ),
            ("WARNED_KEYS_MAX", WARNED_KEYS_MAX as u64),
            (
                "LAG_BYTES_SCAN_ENTRIES_MAX",
                LAG_BYTES_SCAN_ENTRIES_MAX as u64,
            ),
            ("SNAPSHOT_CHUNK_BYTES", SNAPSHOT_CHUNK_BYTES as u64),
            (
                "METRICS_REQUEST_BYTES_MAX",
                METRICS_REQUEST_BYTES_MAX as u64,
            ),
            (
                "METRICS_SCRAPE_TIMEOUT_MS",
                METRICS_SCRAPE_TIMEOUT_MS as u64,
            ),
            (
                "MEMBERSHIP_CONTEXT_BYTES_MAX",
                MEMBERSHIP_CONTEXT_BYTES_MAX as u64,
            ),
            ("PROMOTE_LAG_ENTRIES_MAX", PROMOTE_LAG_ENTRIES_MAX as u64),
            ("ELECTION_TICKS_MIN", ELECTION_TICKS_MIN as u64),
            ("ELECTION_TICKS_MAX", ELECTION_TICKS_MAX as u64),
            ("KEY_BYTES_MAX", KEY_BYTES_MAX as u64),
            ("VALUE_BYTES_MAX", VALUE_BYTES_MAX as u64),
            ("TXN_OPERATIONS_MAX", TXN_OPERATIONS_MAX as u64),
            ("RANGE_RESULTS_MAX", RANGE_RESULTS_MAX as u64),
            ("RANGE_BYTES_MAX", RANGE_BYTES_MAX as u64),
            ("RANGE_KEY_OVERHEAD_BYTES", RANGE_KEY_OVERHEAD_BYTES as u64),
            ("CLIENT_RESULTS_MAX", CLIENT_RESULTS_MAX as u64),
            ("SESSIONS_MAX", SESSIONS_MAX as u64),
            ("SESSIONS_PER_CLIENT_MAX", SESSIONS_PER_CLIENT_MAX as u64),
            ("SESSION_TTL_MS_MIN", SESSION_TTL_MS_MIN as u64),
            ("SESSION_TTL_MS_MAX", SESSION_TTL_MS_MAX as u64),
            ("SESSION_TTL_MS_DEFAULT", SESSION_TTL_MS_DEFAULT as u64),
            ("SESSION_DRIFT_PER_MILLE", SESSION_DRIFT_PER_MILLE as u64),
            ("SESSION_HOLDS_MAX", SESSION_HOLDS_MAX as u64),
            ("EXPIRE_BATCH_MAX", EXPIRE_BATCH_MAX as u64),
            ("PRIMITIVES_MAX", PRIMITIVES_MAX as u64),
            ("LOCK_WAITERS_MAX", LOCK_WAITERS_MAX as u64),
            ("SEMAPHORE_PERMITS_MAX", SEMAPHORE_PERMITS_MAX as u64),
            ("GROUP_MEMBERS_MAX", GROUP_MEMBERS_MAX as u64),
            ("QUEUE_ITEMS_MAX", QUEUE_ITEMS_MAX as u64),
            ("BARRIER_PARTICIPANTS_MAX", BARRIER_PARTICIPANTS_MAX as u64),
            ("WATCH_HISTORY_EVENTS_MAX", WATCH_HISTORY_EVENTS_MAX as u64),
            ("WATCH_HISTORY_BYTES_MAX", WATCH_HISTORY_BYTES_MAX as u64),
            ("WATCHES_MAX", WATCHES_MAX as u64),
            (
                "WATCHES_PER_CONNECTION_MAX",
                WATCHES_PER_CONNECTION_MAX as u64,
            ),
            ("EVENTS_PER_FRAME_MAX", EVENTS_PER_FRAME_MAX as u64),
            (
                "WATCH_CONNECTION_BACKLOG_BYTES_MAX",
                WATCH_CONNECTION_BACKLOG_BYTES_MAX as u64,
            ),
            ("WATCH_BUFFER_EVENTS_MAX", WATCH_BUFFER_EVENTS_MAX as u64),
            ("FRAME_BYTES_MAX", FRAME_BYTES_MAX as u64),
            (
                "CONNECTION_SEND_BYTES_MAX",
                CONNECTION_SEND_BYTES_MAX as u64,
            ),
            (
                "CONNECTION_SEND_PAUSE_BYTES",
                CONNECTION_SEND_PAUSE_BYTES as u64,
            ),
            (
                "MEMBER_CLIENT_SEND_BYTES_MAX",
                MEMBER_CLIENT_SEND_BYTES_MAX as u64,
            ),
            ("CONNECTION_STALL_MS_MAX", CONNECTION_STALL_MS_MAX as u64),
            (
                "CONNECTION_READ_BYTES_PER_TURN_MAX",
                CONNECTION_READ_BYTES_PER_TURN_MAX as u64,
            ),
            (
                "REQUESTS_PER_CONNECTION_TURN_MAX",
                REQUESTS_PER_CONNECTION_TURN_MAX as u64,
            ),
            (
                "CLIENT_REQUESTS_PER_TURN_MAX",
                CLIENT_REQUESTS_PER_TURN_MAX as u64,
            ),
            ("REPLY_BYTES_PER_TURN_MAX", REPLY_BYTES_PER_TURN_MAX as u64),
            (
                "READS_SERVED_PER_TURN_MAX",
                READS_SERVED_PER_TURN_MAX as u64,
            ),
            (
                "READY_ROUNDS_PER_TURN_MAX",
                READY_ROUNDS_PER_TURN_MAX as u64,
            ),
            ("CONNECTIONS_MAX", CONNECTIONS_MAX as u64),
            (
                "PENDING_CLIENT_REQUESTS_MAX",
                PENDING_CLIENT_REQUESTS_MAX as u64,
            ),
            (
                "CONNECTIONS_PER_SOURCE_MAX",
                CONNECTIONS_PER_SOURCE_MAX as u64,
            ),
            (
                "PENDING_REQUESTS_PER_CONNECTION_MAX",
                PENDING_REQUESTS_PER_CONNECTION_MAX as u64,
            ),
            ("NODE_COMMAND_QUEUE_MAX", NODE_COMMAND_QUEUE_MAX as u64),
            ("POLL_EVENTS_MAX", POLL_EVENTS_MAX as u64),
            ("SIM_NODES_MAX", SIM_NODES_MAX as u64),
            ("SIM_SPARES_MAX", SIM_SPARES_MAX as u64),
            ("SIM_CLIENTS_MAX", SIM_CLIENTS_MAX as u64),
            ("SIM_NETWORK_MESSAGES_MAX", SIM_NETWORK_MESSAGES_MAX as u64),
            ("SIM_STEPS_MAX", SIM_STEPS_MAX as u64),
            (
                "SIM_HISTORY_OPERATIONS_MAX",
                SIM_HISTORY_OPERATIONS_MAX as u64,
            ),
            (
                "LINEARIZABILITY_STEPS_MAX",
                LINEARIZABILITY_STEPS_MAX as u64,
            ),
            ("SIM_SEEDS_MAX", SIM_SEEDS_MAX as u64),
            ("TOKEN_BYTES_MAX", TOKEN_BYTES_MAX as u64),
            ("ACCESS_FILE_BYTES_MAX", ACCESS_FILE_BYTES_MAX as u64),
            ("ACCESS_GRANTS_MAX", ACCESS_GRANTS_MAX as u64),
        ]
    }

    #[test]
    fn security_md_lists_every_limit_with_its_value() {
        let source = include_str!("limits.rs");
        let declared = source
            .lines()
            .filter(|line| line.starts_with("pub const "))
            .count();
        let listed = every_limit();
        assert_eq!(
            declared,
            listed.len(),
            "a limit is missing from every_limit()"
        );
        let doc = include_str!("../SECURITY.md");
        for (name, value) in listed {
            let row = format!("| `{name}` | {value} |");
            assert!(doc.contains(&row), "SECURITY.md has no row starting {row}");
        }
    }
}
