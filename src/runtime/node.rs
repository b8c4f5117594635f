//! A member's event loop: one thread on a mio `Poll` driving the consensus core, the WAL and
//! every socket.
//!
//! Each iteration: wait for sockets, the waker or the next tick; read every complete frame and
//! step it into Raft or handle it as a client request; tick if due; then handle the `Ready`
//! (send, persist with one WAL write and one fdatasync, advance, send answers, apply, serve
//! reads); flush every socket. The WAL sync is the only blocking call on this thread: at
//! ~80 µs on this class of disk it costs less than handing it to another thread would, and
//! group commit already amortizes it over everything that arrived in the iteration.
//!
//! Other threads talk to the loop through a bounded crossbeam channel paired with the
//! loop's `mio::Waker`.
//!
//! Snapshots are streamed from the live state into a temporary file on this thread (into the
//! page cache: no disk wait), and a helper thread makes the file durable and renames it into
//! place; the log is compacted once that is done. Encoding on another thread would need a
//! consistent copy of the state (twice the memory: 57 MiB would become ~85 MiB at 100,000
//! keys of 256 B); streaming costs a CPU pause of a few milliseconds per snapshot, taken at
//! most every `max(snapshot_every_entries, keys / 2)` applied entries.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::access::{AccessRules, Rights, Secret};
use super::connection::{Connection, Peer, ReadOutcome};
use super::members;
use super::metrics::{self, Metrics};
use super::storage::{StorageOptions, WalStorage};
use super::tls::{MemberTls, TlsFiles};
use super::wire::{
    self, Answer, Caller, ClientOp, ClientReply, Frame, MemberHealth, MembershipOp, MembershipView,
    Query, SnapshotOp, Status, REFUSED_UNAUTHENTICATED,
};
use crate::core::raft::{ConfChange, Config, Message, Raft, Ready, Role, Storage};
use crate::core::state::lease::SessionClock;
use crate::core::state::watch::{WatchHub, WatchKey, WatchRefused};
use crate::core::state::{Command, Event, EventKind, Request, StateMachine};
use crate::error::{Error, Result};
use crate::limits::{
    CLIENT_REQUESTS_PER_TURN_MAX, CONNECTIONS_MAX, CONNECTIONS_PER_SOURCE_MAX,
    CONNECTION_SEND_PAUSE_BYTES, CONNECTION_STALL_MS_MAX, EVENTS_PER_FRAME_MAX,
    LAG_BYTES_SCAN_ENTRIES_MAX, MEMBER_CLIENT_SEND_BYTES_MAX, NODE_COMMAND_QUEUE_MAX,
    PENDING_CLIENT_REQUESTS_MAX, PENDING_REQUESTS_PER_CONNECTION_MAX, POLL_EVENTS_MAX,
    RANGE_BYTES_MAX, RANGE_KEY_OVERHEAD_BYTES, READS_SERVED_PER_TURN_MAX,
    READY_ROUNDS_PER_TURN_MAX, REPEATED_WARNING_INTERVAL_MS, REPLY_BYTES_PER_TURN_MAX,
    REQUESTS_PER_CONNECTION_TURN_MAX, SNAPSHOT_CHUNK_BYTES, WARNED_KEYS_MAX,
    WATCH_CONNECTION_BACKLOG_BYTES_MAX,
};
use crate::types::{ConfState, EntryKind, NodeId, Payload};

const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// Longest a client request may wait for a quorum before it is failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Ticks the loop may miss (a slow disk, a paused process) before the leader shifts every
/// session deadline by the time lost instead of expiring sessions whose keepalives are still
/// waiting in its sockets.
const SESSION_STALL_TICKS: u32 = 4;

/// Bytes of events per `Events` frame (more go in further frames).
const EVENTS_FRAME_BYTES: usize = 1024 * 1024;

/// Longest a new connection may stay silent before saying `Hello` (half-open or idle
/// connections must not hold a slot forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A client connection that sends nothing for this long is closed (its client reconnects when
/// it next calls): dead clients must not hold slots forever.
const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Connection slots only this member's own links to other members may take, so that callers
/// filling the table cannot cut a member off from sending to the others.
const MEMBER_SLOTS_RESERVED: usize = 2 * crate::limits::VOTERS_MAX;

const _: () = assert!(MEMBER_SLOTS_RESERVED < CONNECTIONS_MAX / 2);

/// Longest data sent to a member may stay unacknowledged by its TCP stack before the link is
/// considered dead and reconnected.
const MEMBER_LINK_USER_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnect backoff to a member: starts here, doubles, is capped, and gets jitter.
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How long a client connection closed for not reading its replies keeps its slot to write
/// the reason it was closed for (it may still read it), before it is closed anyway.
const CLOSING_GRACE: Duration = Duration::from_secs(2);

/// Ticks run at once at most after a stall (a long pause must not fire a burst of timeouts
/// that a real clock would not have).
const TICKS_CATCH_UP_MAX: u32 = 3;

/// How a member is set up.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This member's id.
    pub id: NodeId,
    /// The cluster's id; connections from other clusters are refused.
    pub cluster: u64,
    /// Where this member listens for members and clients.
    pub listen: SocketAddr,
    /// Every member of the cluster (this one included), by id.
    pub members: BTreeMap<NodeId, SocketAddr>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Length of one Raft tick.
    pub tick: Duration,
    /// Election timeout, in ticks (the actual one is drawn from [n, 2n)).
    pub election_ticks: u32,
    /// Heartbeat interval, in ticks.
    pub heartbeat_ticks: u32,
    /// Applied entries between two snapshots (at least; see `maybe_snapshot`).
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind a snapshot, for followers that are a little behind.
    pub compaction_margin_entries: u64,
    /// This member's data directory was re-created empty: it replicates but neither votes nor
    /// counts toward quorums (it cannot remember whom it voted for).
    pub rejoin: bool,
    /// For a member joining a running cluster (its data directory new): the membership it
    /// was added to and the members' addresses (`members` then holds those addresses too).
    pub join: Option<(ConfState, Vec<u8>)>,
    /// Where to serve metrics in the Prometheus text format (`GET /metrics`), if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Bytes the data directory may use. Over it, the leader refuses writes that add data
    /// (a clear error, not a full disk) and takes a snapshot at once so that compaction frees
    /// the log; writes resume by themselves once usage is back under the quota.
    pub disk_quota_bytes: Option<u64>,
    /// TLS on every connection, member links mutual (`None`: plaintext, which the member
    /// warns about at start).
    pub tls: Option<TlsFiles>,
    /// Who may do what (`None`: every caller that passes TLS may do everything).
    pub access: Option<Arc<AccessRules>>,
    /// The token this member presents on its links to the others (needed with an access file
    /// and no TLS certificate naming it: its identity must have the `member` role).
    pub token: Secret,
}

impl NodeConfig {
    /// Defaults: 50 ms ticks, elections after 10-20 ticks, heartbeats every tick.
    pub fn new(
        id: NodeId,
        listen: SocketAddr,
        members: BTreeMap<NodeId, SocketAddr>,
        data_dir: PathBuf,
    ) -> NodeConfig {
        NodeConfig {
            id,
            cluster: 1,
            listen,
            members,
            data_dir,
            tick: Duration::from_millis(50),
            election_ticks: 10,
            heartbeat_ticks: 1,
            snapshot_every_entries: 10_000,
            compaction_margin_entries: crate::limits::COMPACTION_MARGIN_ENTRIES_DEFAULT,
            rejoin: false,
            join: None,
            metrics: None,
            disk_quota_bytes: None,
            tls: None,
            access: None,
            token: Secret::default(),
        }
    }

    /// Checks the configuration, saying what to fix.
    pub fn validate(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::InvalidConfig(why));
        if !self.members.contains_key(&self.id) {
            return invalid(format!(
                "the members list must include this node ({})",
                self.id
            ));
        }
        let members_max = if self.join.is_some() {
            2 * crate::limits::VOTERS_MAX + crate::limits::LEARNERS_MAX
        } else {
            crate::limits::VOTERS_MAX
        };
        if self.members.len() > members_max {
            return invalid(format!("at most {members_max} members"));
        }
        if self.tick < Duration::from_millis(1) || self.tick > Duration::from_secs(10) {
            return invalid("the tick must be between 1 ms and 10 s".into());
        }
        Ok(())
    }
}

/// Something another thread asks the loop to do.
pub enum NodeCommand {
    /// Stop the loop (the thread ends after flushing).
    Stop,
    /// A client request from this process; the answer goes into the slot.
    Request(ClientOp, Arc<ReplySlot>),
}

/// The sending side of the loop's command channel, with its waker.
#[derive(Clone)]
pub struct LoopHandle {
    commands: Sender<NodeCommand>,
    waker: Arc<Waker>,
}

impl LoopHandle {
    /// Asks the loop to serve `op` and waits for the answer until `deadline` — the path of a
    /// client embedded in the member's own process (no socket involved).
    pub fn request(&self, op: ClientOp, deadline: Instant) -> Result<ClientReply> {
        let slot = Arc::new(ReplySlot::default());
        self.send(NodeCommand::Request(op, slot.clone()))?;
        slot.wait(deadline).ok_or(Error::Busy(
            "the local member did not answer within the timeout",
        ))
    }

    /// Sends a command and wakes the loop. Fails when the loop has stopped or is overloaded.
    pub fn send(&self, command: NodeCommand) -> Result<()> {
        self.commands
            .try_send(command)
            .map_err(|_| Error::Busy("node command queue"))?;
        self.waker
            .wake()
            .map_err(|e| Error::io("waking the event loop", &e))
    }
}

/// A request waiting for the log or for a read confirmation.
struct Pending {
    to: ReplyTo,
    since: Instant,
}

/// Where an answer goes.
enum ReplyTo {
    /// A client connection: its slot, the connection's serial (the slot may have been reused
    /// by then), and the client's request id.
    Socket {
        slot: usize,
        serial: u64,
        request: u64,
    },
    /// A caller in this process, waiting on a one-shot slot.
    Local(Arc<ReplySlot>),
}

/// A one-shot slot through which the loop hands an answer to a thread of this process.
#[derive(Default)]
pub struct ReplySlot {
    reply: parking_lot::Mutex<Option<ClientReply>>,
    ready: parking_lot::Condvar,
}

impl ReplySlot {
    fn fill(&self, reply: ClientReply) {
        *self.reply.lock() = Some(reply);
        self.ready.notify_all();
    }

    /// Waits for the answer until `deadline`.
    pub fn wait(&self, deadline: Instant) -> Option<ClientReply> {
        let mut reply = self.reply.lock();
        // Bounded by the deadline.
        while reply.is_none() {
            if self.ready.wait_until(&mut reply, deadline).timed_out() {
                break;
            }
        }
        reply.take()
    }
}

/// A linearizable read waiting for its confirmation.
struct PendingRead {
    pending: Pending,
    op: ClientOp,
    /// Confirmed, and waiting for its connection to drain (not a request without a quorum:
    /// the request timeout does not fail it).
    parked: bool,
}

/// What client work one turn of the event loop has done so far (see the `*_PER_TURN_MAX`
/// limits): once spent, client requests and confirmed reads wait for the next turn, and
/// Raft's traffic and the ticks go on.
#[derive(Default)]
struct Turn {
    /// Client requests taken.
    client_requests: usize,
    /// Bytes of client replies and events queued.
    reply_bytes: usize,
    /// Confirmed reads were left for the next turn (which must then not wait in `poll`).
    reads_deferred: bool,
}

impl Turn {
    fn spent(&self) -> bool {
        self.client_requests >= CLIENT_REQUESTS_PER_TURN_MAX
            || self.reply_bytes >= REPLY_BYTES_PER_TURN_MAX
    }
}

/// Outbound link state to one member.
struct Link {
    address: SocketAddr,
    slot: Option<usize>,
    next_attempt: Instant,
    backoff: Duration,
}

/// The event loop's state.
pub struct EventLoop {
    config: NodeConfig,
    /// TLS for accepted connections and member links (`None`: plaintext).
    tls: Option<MemberTls>,
    poll: Poll,
    listener: TcpListener,
    commands: Receiver<NodeCommand>,
    connections: Vec<Option<Connection>>,
    free_slots: Vec<usize>,
    next_serial: u64,
    links: BTreeMap<NodeId, Link>,
    last_contact: BTreeMap<NodeId, Instant>,
    raft: Raft<WalStorage>,
    state: StateMachine,
    last_snapshot_index: u64,
    pending_writes: HashMap<(u64, u64), Pending>,
    pending_reads: HashMap<u64, PendingRead>,
    confirmed_reads: VecDeque<(u64, u64)>,
    next_read: u64,
    next_tick: Instant,
    role_seen: (Role, u64),
    /// Slots of connections with output queued (each listed once, see `mark_dirty`).
    dirty: Vec<usize>,
    /// Slots of connections to read again next turn: they spent a turn's budget with bytes
    /// possibly left, or drained after a send pause (each listed once, see `read_later`).
    read_backlog: Vec<usize>,
    /// Slots of connections the last turn's client budget left unread: read first next
    /// turn, before those it served (round robin: the first connections of a turn cannot
    /// take every turn's budget).
    read_first: Vec<usize>,
    /// The client work of the current turn.
    turn: Turn,
    /// Unsent bytes of all client connections, as of the last flush (bounded by
    /// `MEMBER_CLIENT_SEND_BYTES_MAX`).
    client_send_bytes: usize,
    /// Client connections not read from, waiting for their output to drain.
    connections_paused: usize,
    /// Connections open whose caller said `Hello` as a client.
    client_connections: usize,
    /// The longest turn of the loop since metrics were last published.
    turn_longest: Duration,
    /// When the connection limit was last logged.
    limit_logged: Option<Instant>,
    /// Accepted connections open per source address (bounded by `CONNECTIONS_MAX` entries:
    /// an address leaves the map with its last connection).
    sources: HashMap<std::net::IpAddr, usize>,
    /// Draws reconnection jitter (seeded per process; only timing depends on it).
    jitter: crate::core::rng::Rng,
    /// The event history and the client connections' watches.
    watches: WatchHub,
    /// Session deadlines (running while this member leads).
    session_clock: SessionClock,
    /// Origin of the millisecond clock the session deadlines use.
    started: Instant,
    /// Where the members listen (this member included), from the newest membership.
    addresses: BTreeMap<NodeId, SocketAddr>,
    /// The membership entry the addresses were last taken from.
    conf_seen: crate::types::Index,
    /// A membership change this leader proposed, answered once it completes.
    pending_conf: Option<Pending>,
    /// A leadership transfer this leader started, answered once the target leads.
    pending_transfer: Option<(Pending, NodeId)>,
    /// What the metrics endpoint serves, and its thread (when configured).
    metrics: Arc<Metrics>,
    metrics_thread: Option<std::thread::JoinHandle<()>>,
    /// The leader last seen (to count leader changes).
    leader_seen: Option<NodeId>,
    /// With `ACCORD_FAILPOINTS=1` in the environment (tests only): a file whose number, when
    /// present, delays every durable write by that many milliseconds (a slow or stalling
    /// disk).
    fsync_delay_file: Option<std::path::PathBuf>,
    /// Bytes the data directory used when last measured, and when that was.
    disk_used: u64,
    disk_measured: Option<Instant>,
    /// When each repeated warning was last logged (bounded by `WARNED_KEYS_MAX`).
    warned: BTreeMap<(Repeated, NodeId), Instant>,
}

/// Warnings that a misbehaving or removed peer repeats on every retry: logged at most once
/// per `REPEATED_WARNING_INTERVAL_MS` per peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Repeated {
    RefusedConnection,
    RefusedByMember,
    IgnoredMessage,
    Denied,
    Shed,
}

/// The file that, with `ACCORD_FAILPOINTS=1`, delays a member's durable writes.
pub const FSYNC_DELAY_FAILPOINT_FILE: &str = "failpoint-fsync-delay-ms";

/// The file that, with `ACCORD_FAILPOINTS=1`, makes a member's next durable write fail (the
/// file is removed as it fires): the member stops, as it does on a real write error.
pub const FSYNC_FAIL_FAILPOINT_FILE: &str = "failpoint-fsync-fail";

fn log(id: NodeId, text: impl std::fmt::Display) {
    super::log::log(super::log::Level::Info, id, text);
}

fn warn(id: NodeId, text: impl std::fmt::Display) {
    super::log::log(super::log::Level::Warn, id, text);
}

impl EventLoop {
    /// Opens the data directory, binds the listener and prepares the loop (nothing runs yet).
    /// Errors here are the ones a user must see at start-up: a locked or damaged data
    /// directory, an address in use, a bad configuration.
    pub fn open(mut config: NodeConfig) -> Result<(EventLoop, LoopHandle)> {
        config.validate()?;
        let voters: Vec<NodeId> = config.members.keys().copied().collect();
        let options = StorageOptions {
            compaction_margin_entries: config.compaction_margin_entries,
            join_conf: config.join.clone(),
            ..StorageOptions::new(&voters)
        };
        let (storage, report) = WalStorage::open(&config.data_dir, &options)?;
        if report.torn_tails_repaired > 0 {
            warn(config.id, "cut off a torn last write left by a crash");
        }
        let snapshot = storage.snapshot()?;
        let state = if snapshot.meta.index > 0 {
            StateMachine::decode(snapshot.data.as_slice()).map_err(|why| Error::Corruption {
                file: config.data_dir.join("snap").display().to_string(),
                offset: 0,
                detail: format!("the newest snapshot's state does not decode: {why}"),
            })?
        } else {
            StateMachine::new()
        };
        let mut raft_config = Config::new(config.id);
        raft_config.election_ticks = config.election_ticks;
        raft_config.heartbeat_ticks = config.heartbeat_ticks;
        raft_config.may_vote = !config.rejoin;
        // Timing jitter only: a per-process random seed (the simulator seeds its own).
        let mut seeds = crate::core::rng::Rng::new(process_seed(config.id));
        raft_config.seed = seeds.next_u64();
        let jitter = seeds.fork();
        let raft = Raft::new(raft_config, storage)?;
        let tls = match &config.tls {
            Some(files) => {
                if config.access.is_none() {
                    warn(
                        config.id,
                        "TLS without an access file: every certificate the cluster CA signed \
                         may do everything, joining as a member included",
                    );
                }
                Some(MemberTls::load(files)?)
            }
            None => {
                warn(
                    config.id,
                    "serving without TLS: members' and clients' traffic, tokens included, is \
                     readable and forgeable by anyone on the network",
                );
                None
            }
        };
        let poll = Poll::new().map_err(|e| Error::io("creating the event loop", &e))?;
        let mut listener = TcpListener::bind(config.listen)
            .map_err(|e| Error::io(format!("listening on {}", config.listen), &e))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| Error::io("registering the listener", &e))?;
        if config.listen.port() == 0 {
            // Port 0: the system chose a free port; this member's address is that one (a
            // one-member cluster in a test or an example needs no fixed port).
            let bound = listener
                .local_addr()
                .map_err(|e| Error::io("reading the listening address", &e))?;
            config.members.insert(config.id, bound);
            config.listen = bound;
        }
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER).map_err(|e| Error::io("creating a waker", &e))?,
        );
        let (sender, commands) = crossbeam_channel::bounded(NODE_COMMAND_QUEUE_MAX);
        let now = Instant::now();
        let links = config
            .members
            .iter()
            .filter(|(&id, _)| id != config.id)
            .map(|(&id, &address)| {
                let link = Link {
                    address,
                    slot: None,
                    next_attempt: now,
                    backoff: RECONNECT_BACKOFF_MIN,
                };
                (id, link)
            })
            .collect();
        let state_revision = state.revision();
        let metrics = Arc::new(Metrics::new(config.id, &config.data_dir));
        let metrics_thread = match config.metrics {
            Some(address) => Some(metrics.serve(address)?),
            None => None,
        };
        let event_loop = EventLoop {
            last_snapshot_index: snapshot.meta.index,
            tls,
            role_seen: (raft.role(), raft.term()),
            jitter,
            config,
            poll,
            listener,
            commands,
            connections: Vec::new(),
            free_slots: Vec::new(),
            next_serial: 1,
            links,
            last_contact: BTreeMap::new(),
            raft,
            state,
            pending_writes: HashMap::new(),
            pending_reads: HashMap::new(),
            confirmed_reads: VecDeque::new(),
            next_read: 1,
            next_tick: now,
            dirty: Vec::new(),
            read_backlog: Vec::new(),
            read_first: Vec::new(),
            turn: Turn::default(),
            client_send_bytes: 0,
            connections_paused: 0,
            client_connections: 0,
            turn_longest: Duration::ZERO,
            limit_logged: None,
            sources: HashMap::new(),
            watches: WatchHub::new(state_revision),
            session_clock: SessionClock::new(),
            started: now,
            addresses: BTreeMap::new(),
            conf_seen: u64::MAX,
            pending_conf: None,
            pending_transfer: None,
            metrics,
            metrics_thread,
            leader_seen: None,
            fsync_delay_file: None,
            disk_used: 0,
            disk_measured: None,
            warned: BTreeMap::new(),
        };
        let mut event_loop = event_loop;
        if std::env::var_os("ACCORD_FAILPOINTS").is_some_and(|v| v == "1") {
            let file = event_loop.config.data_dir.join(FSYNC_DELAY_FAILPOINT_FILE);
            warn(
                event_loop.config.id,
                format!(
                    "failpoints on (testing only): {} delays durable writes, {} fails one",
                    file.display(),
                    FSYNC_FAIL_FAILPOINT_FILE
                ),
            );
            event_loop.fsync_delay_file = Some(file);
        }
        event_loop.sync_membership();
        let handle = LoopHandle {
            commands: sender,
            waker,
        };
        Ok((event_loop, handle))
    }

    /// The configuration the loop runs with (`listen` is the bound address, also when the
    /// configuration asked for port 0).
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Runs until stopped. A storage failure ends the loop with an error: the node must not
    /// acknowledge anything more.
    pub fn run(mut self) -> Result<()> {
        let result = self.run_loop();
        self.metrics.stop();
        if let Some(thread) = self.metrics_thread.take() {
            let _ = thread.join();
        }
        result
    }

    fn run_loop(&mut self) -> Result<()> {
        let mut events = Events::with_capacity(POLL_EVENTS_MAX);
        log(
            self.config.id,
            format!("listening on {}", self.config.listen),
        );
        loop {
            let idle = self.read_backlog.is_empty() && self.read_first.is_empty();
            let timeout = if idle && !self.turn.reads_deferred {
                self.next_tick.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO // work left from the last turn
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(Error::io("polling", &error)),
            }
            let turn_started = Instant::now();
            self.turn = Turn::default();
            let mut backlog = std::mem::take(&mut self.read_first);
            backlog.append(&mut self.read_backlog);
            for slot in backlog {
                if let Some(Some(connection)) = self.connections.get_mut(slot) {
                    connection.listed_backlog = false;
                }
                self.on_socket(slot);
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    LISTENER => self.accept(),
                    Token(token) => self.on_socket(token - FIRST_CONNECTION),
                }
            }
            if self.drain_commands() {
                self.flush_all();
                return Ok(());
            }
            let ticked = self.tick_if_due();
            if ticked {
                self.publish_metrics();
                self.check_disk_quota()?;
            }
            if ticked {
                // Once per tick is often enough for the sweeps over all connections.
                self.expire_silent_connections();
                self.expire_sessions();
            }
            self.connect_links();
            self.handle_ready()?;
            self.raft.storage_mut().poll_snapshot()?;
            let lost_leadership = self.note_role_change();
            if ticked || lost_leadership {
                self.expire_requests(lost_leadership);
            }
            self.flush_all();
            self.turn_longest = self.turn_longest.max(turn_started.elapsed());
        }
    }

    /// Handles every queued command; returns whether the loop was asked to stop (or every
    /// handle is gone).
    fn drain_commands(&mut self) -> bool {
        // Bounded by the channel's capacity per iteration.
        for _ in 0..NODE_COMMAND_QUEUE_MAX {
            match self.commands.try_recv() {
                Ok(NodeCommand::Stop) | Err(TryRecvError::Disconnected) => return true,
                Ok(NodeCommand::Request(op, slot)) => self.on_request(ReplyTo::Local(slot), op),
                Err(TryRecvError::Empty) => return false,
            }
        }
        false
    }

    /// Runs the ticks that are due; returns whether any was.
    fn tick_if_due(&mut self) -> bool {
        let now = Instant::now();
        if now > self.next_tick + self.config.tick {
            // A whole tick late: the loop was held up (a slow disk, a paused process, or
            // work that a bound failed to cut short).
            self.metrics.tick_late();
        }
        let mut ticks = 0;
        while self.next_tick <= now {
            self.next_tick += self.config.tick;
            if ticks < TICKS_CATCH_UP_MAX {
                self.raft.tick();
                ticks += 1;
            }
        }
        if self.next_tick < now {
            self.next_tick = now + self.config.tick;
        }
        ticks > 0
    }

    // ----- connections -----

    /// A TLS session for a new connection: accepted (`to` is `None`), or this member's link
    /// to the member at `to`. `Ok(None)` without TLS; `Err` (logged) when rustls cannot
    /// start one.
    fn tls_session(
        &self,
        to: Option<SocketAddr>,
    ) -> std::result::Result<Option<rustls::Connection>, ()> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let session = match to {
            None => {
                rustls::ServerConnection::new(tls.server.clone()).map(rustls::Connection::Server)
            }
            // The member's certificate must name the address it is reached at.
            Some(address) => {
                let name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
                rustls::ClientConnection::new(tls.client.clone(), name)
                    .map(rustls::Connection::Client)
            }
        };
        session
            .map(Some)
            .map_err(|error| warn(self.config.id, format!("cannot start TLS: {error}")))
    }

    fn add_connection(
        &mut self,
        mut stream: TcpStream,
        peer: Peer,
        tls: Option<rustls::Connection>,
    ) -> Option<usize> {
        let open = self.connections.len() - self.free_slots.len();
        let limit = match peer {
            Peer::OutboundMember(_) => CONNECTIONS_MAX,
            _ => CONNECTIONS_MAX - MEMBER_SLOTS_RESERVED,
        };
        if open >= limit {
            // Logged at most once a second: a flood must not flood the log too.
            let now = Instant::now();
            if self
                .limit_logged
                .is_none_or(|t| now.duration_since(t) > Duration::from_secs(1))
            {
                warn(
                    self.config.id,
                    format!("{open} connections open: refusing new callers"),
                );
                self.limit_logged = Some(now);
            }
            return None;
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                self.connections.push(None);
                self.connections.len() - 1
            }
        };
        let token = Token(slot + FIRST_CONNECTION);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(error) = self.poll.registry().register(&mut stream, token, interest) {
            warn(
                self.config.id,
                format!("cannot register a connection: {error}"),
            );
            self.free_slots.push(slot);
            return None;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut connection = Connection::new(stream, peer, serial);
        if let Some(tls) = tls {
            connection.encrypt(tls);
        }
        self.connections[slot] = Some(connection);
        Some(slot)
    }

    fn close(&mut self, slot: usize, why: &str) {
        let Some(Some(mut connection)) = self.connections.get_mut(slot).map(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut connection.stream);
        self.free_slots.push(slot);
        if let Some(source) = connection.source {
            if let Some(open) = self.sources.get_mut(&source) {
                *open -= 1;
                if *open == 0 {
                    self.sources.remove(&source);
                }
            }
        }
        self.watches.remove_connection(slot);
        if matches!(connection.peer, Peer::Client(_)) {
            self.client_connections -= 1;
        }
        for read in &connection.parked_reads {
            self.pending_reads.remove(read);
        }
        let mut repeated_failure = false;
        if let Peer::InboundMember(id) = connection.peer {
            self.raft.leader_connection_lost(id);
        }
        if let Peer::OutboundMember(id) = connection.peer {
            if let Some(link) = self.links.get_mut(&id) {
                // Log a member going away once, not on every reconnection attempt.
                repeated_failure = link.backoff > RECONNECT_BACKOFF_MIN;
                link.slot = None;
                link.backoff = (link.backoff * 2).min(RECONNECT_BACKOFF_MAX);
                // Up to half the backoff again, so members do not reconnect in lockstep.
                let spread = link.backoff.as_millis() as u64 / 2 + 1;
                let jitter = Duration::from_millis(self.jitter.range(0, spread));
                link.next_attempt = Instant::now() + link.backoff + jitter;
            }
        }
        if !matches!(connection.peer, Peer::Client(_))
            && why != "closed by the other end"
            && !repeated_failure
        {
            log(
                self.config.id,
                format!("closed connection ({:?}): {why}", connection.peer),
            );
        }
    }

    fn accept(&mut self) {
        // Bounded by the listener's backlog and CONNECTIONS_MAX.
        loop {
            match self.listener.accept() {
                Ok((stream, from)) => {
                    let _ = stream.set_nodelay(true);
                    let source = from.ip();
                    let open = self.sources.get(&source).copied().unwrap_or(0);
                    if open >= CONNECTIONS_PER_SOURCE_MAX {
                        self.refuse_at_once(
                            stream,
                            format!(
                                "too many connections from {source} ({open} open; the limit \
                                 is {CONNECTIONS_PER_SOURCE_MAX} per source address)"
                            ),
                        );
                        continue;
                    }
                    let Ok(tls) = self.tls_session(None) else {
                        continue;
                    };
                    // Over the connection limit the stream is dropped (closed) at once.
                    if let Some(slot) = self.add_connection(stream, Peer::Unknown, tls) {
                        if let Some(Some(connection)) = self.connections.get_mut(slot) {
                            connection.source = Some(source);
                            *self.sources.entry(source).or_insert(0) += 1;
                        }
                    }
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => {
                    warn(self.config.id, format!("accept failed: {error}"));
                    return;
                }
            }
        }
    }

    /// Answers a caller refused before it had a slot with a `Refused` frame (best effort:
    /// the frame is small and the fresh socket's buffer empty) and closes it.
    fn refuse_at_once(&mut self, stream: TcpStream, why: String) {
        let mut bytes = Vec::new();
        wire::encode(&Frame::Refused(why.clone()), &mut bytes);
        let _ = (&stream).write(&bytes);
        self.warn_now_and_then(
            (Repeated::RefusedConnection, 0),
            format!("refused a connection: {why}"),
        );
    }

    fn connect_links(&mut self) {
        let now = Instant::now();
        let due: Vec<(NodeId, SocketAddr)> = self
            .links
            .iter()
            .filter(|(_, link)| link.slot.is_none() && link.next_attempt <= now)
            .map(|(&id, link)| (id, link.address))
            .collect();
        for (id, address) in due {
            let slot = match (self.tls_session(Some(address)), TcpStream::connect(address)) {
                (Ok(tls), Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    limit_unacknowledged_time(&stream);
                    self.add_connection(stream, Peer::OutboundMember(id), tls)
                }
                _ => None,
            };
            let hello = Frame::Hello {
                cluster: self.config.cluster,
                caller: Caller::Member(self.config.id),
                token: self.config.token.0.clone(),
            };
            let link = self.links.get_mut(&id).expect("link exists");
            link.slot = slot;
            link.next_attempt = now + link.backoff;
            if let Some(slot) = slot {
                if let Some(Some(connection)) = self.connections.get_mut(slot) {
                    connection.queue(&hello);
                }
                self.mark_dirty(slot);
            }
        }
    }

    /// Reads from a connection and handles what it sent, within the turn's bounds: a member's
    /// frames always, a client's requests only while its output is under the send pause and
    /// the turn's client budget lasts (the rest waits in the buffer and the kernel).
    fn on_socket(&mut self, slot: usize) {
        let Some(Some(connection)) = self.connections.get_mut(slot) else {
            return;
        };
        let serial = connection.serial;
        let client = !matches!(
            connection.peer,
            Peer::InboundMember(_) | Peer::OutboundMember(_)
        );
        if client && connection.over_send_pause() {
            connection.paused = true; // read again once it drains (see `flush_all`)
            return;
        }
        if client && self.turn.spent() {
            self.read_later(slot, true);
            return;
        }
        let outcome = connection.fill();
        // A TLS handshake answers what it read.
        if connection.has_pending_output() {
            self.mark_dirty(slot);
        }
        let mut more = matches!(outcome, ReadOutcome::MoreAvailable);
        let mut taken = 0;
        // Bounded by the receive buffer, and for a client by REQUESTS_PER_CONNECTION_TURN_MAX.
        loop {
            let Some(Some(connection)) = self.connections.get_mut(slot) else {
                return; // a frame closed it
            };
            if connection.serial != serial {
                return;
            }
            if client && connection.over_send_pause() {
                connection.paused = true;
                more = false;
                break;
            }
            if client && (taken >= REQUESTS_PER_CONNECTION_TURN_MAX || self.turn.spent()) {
                more |= connection.has_undecoded_input();
                break;
            }
            match connection.next_frame() {
                Ok(Some(frame)) => {
                    if client {
                        taken += 1;
                        self.turn.client_requests += 1;
                    }
                    self.on_frame(slot, frame);
                }
                Ok(None) => break,
                Err(why) => {
                    self.close(slot, &why);
                    return;
                }
            }
        }
        match outcome {
            ReadOutcome::Closed(why) => self.close(slot, &why),
            _ if more => self.read_later(slot, false),
            _ => {}
        }
    }

    /// Lists `slot` to be read again next turn (the readiness event will not be repeated),
    /// among the first if this turn's budget left it unread.
    fn read_later(&mut self, slot: usize, unread: bool) {
        if let Some(Some(connection)) = self.connections.get_mut(slot) {
            if !connection.listed_backlog {
                connection.listed_backlog = true;
                // Bounded by CONNECTIONS_MAX: each connection is listed once.
                if unread {
                    self.read_first.push(slot);
                } else {
                    self.read_backlog.push(slot);
                }
            }
        }
    }

    fn on_frame(&mut self, slot: usize, frame: Frame) {
        let Some(Some(connection)) = self.connections.get(slot) else {
            return;
        };
        let peer = connection.peer;
        match (peer, frame) {
            (
                Peer::Unknown,
                Frame::Hello {
                    cluster,
                    caller,
                    token,
                },
            ) => self.on_hello(slot, cluster, caller, &token),
            (Peer::OutboundMember(id), Frame::Welcome { .. }) => {
                if let Some(link) = self.links.get_mut(&id) {
                    link.backoff = RECONNECT_BACKOFF_MIN;
                }
                if let Some(Some(connection)) = self.connections.get_mut(slot) {
                    connection.welcomed = true;
                }
            }
            (Peer::OutboundMember(id), Frame::Refused(why)) => {
                self.warn_now_and_then(
                    (Repeated::RefusedByMember, id),
                    format!("member {id} refused our connection: {why}"),
                );
                self.close(slot, "refused");
            }
            (Peer::InboundMember(id), Frame::Raft(message)) if message.from == id => {
                self.last_contact.insert(id, Instant::now());
                if let Err(error) = self.raft.step(message) {
                    self.warn_now_and_then(
                        (Repeated::IgnoredMessage, id),
                        format!("ignored a message from {id}: {error}"),
                    );
                }
            }
            (Peer::Client(client), Frame::Request { id, op }) => {
                let serial = self.connections[slot].as_ref().map_or(0, |c| c.serial);
                let to = ReplyTo::Socket {
                    slot,
                    serial,
                    request: id,
                };
                let connection = self.connections[slot].as_mut().expect("checked above");
                // Counted before any answer: every answer, a refusal included, uncounts one.
                connection.in_flight += 1;
                if connection.in_flight > PENDING_REQUESTS_PER_CONNECTION_MAX {
                    let why = format!(
                        "{PENDING_REQUESTS_PER_CONNECTION_MAX} requests of this connection wait \
                         for their answers already (the limit per connection); wait for some"
                    );
                    self.reply(&to, ClientReply::Failed(why));
                    return;
                }
                if let Some(rights) = &connection.rights {
                    if let Err(why) = rights.authorize(&op) {
                        // Logged without the key or name asked for (the client's error has it):
                        // logs hold no application data.
                        let text = format!("denied a request of {} (client {client})", rights.name);
                        self.warn_now_and_then((Repeated::Denied, client), text);
                        self.reply(&to, ClientReply::Denied(why));
                        return;
                    }
                }
                // A write speaks for the client that said Hello on this connection: a caller
                // cannot use another client's identity (its sessions, its exactly-once
                // record).
                if let ClientOp::Write(request) = &op {
                    if request.client != client {
                        let why = "a request must carry its connection's client id".to_string();
                        self.reply(&to, ClientReply::Failed(why));
                        return;
                    }
                }
                self.on_request(to, op)
            }
            (peer, frame) => {
                let why = format!("unexpected {} from {peer:?}", frame_name(&frame));
                self.close(slot, &why);
            }
        }
    }

    fn on_hello(&mut self, slot: usize, cluster: u64, caller: Caller, token: &[u8]) {
        let (rights, unauthenticated) = self.authenticate(slot, caller, token);
        let refusal = if let Some(why) = unauthenticated {
            Some(format!("{REFUSED_UNAUTHENTICATED}: {why}"))
        } else if cluster != self.config.cluster {
            Some(format!(
                "cluster id {cluster} does not match this member's cluster {}",
                self.config.cluster
            ))
        } else if let Caller::Member(id) = caller {
            let known = self.addresses.contains_key(&id) || self.raft.conf().is_member(id);
            (!known || id == self.config.id)
                .then(|| format!("node {id} is not a member of this cluster"))
        } else if caller == Caller::Client(0) {
            Some("client id 0 is reserved for the cluster itself".to_string())
        } else {
            None
        };
        if let Some(why) = &refusal {
            let caller_id = match caller {
                Caller::Member(id) => id,
                Caller::Client(_) => 0,
            };
            self.warn_now_and_then(
                (Repeated::RefusedConnection, caller_id),
                format!("refused a connection: {why}"),
            );
        }
        let Some(Some(connection)) = self.connections.get_mut(slot) else {
            return;
        };
        match refusal {
            Some(why) => {
                connection.queue(&Frame::Refused(why));
                connection.close_after_flush = true;
                self.mark_dirty(slot);
            }
            None => {
                connection.peer = match caller {
                    Caller::Member(id) => Peer::InboundMember(id),
                    Caller::Client(id) => {
                        self.client_connections += 1;
                        Peer::Client(id)
                    }
                };
                connection.rights = rights;
                connection.queue(&Frame::Welcome {
                    node: self.config.id,
                });
                self.mark_dirty(slot);
            }
        }
    }

    /// Who the caller on `slot` is, from its certificate and token: its rights (with an
    /// access file), or why it may not connect as it asked.
    fn authenticate(
        &self,
        slot: usize,
        caller: Caller,
        token: &[u8],
    ) -> (Option<Arc<Rights>>, Option<String>) {
        let Some(Some(connection)) = self.connections.get(slot) else {
            return (None, Some("the connection is gone".into()));
        };
        let Some(access) = &self.config.access else {
            // Without an access file, TLS alone decides: every caller shows a certificate the
            // cluster CA signed (mutual TLS), so strangers cannot even say Hello.
            if self.tls.is_some() && !connection.has_peer_certificate() {
                let why = "present a certificate signed by the cluster CA";
                return (None, Some(why.into()));
            }
            return (None, None);
        };
        let member = matches!(caller, Caller::Member(_));
        match access.identify(token, connection.certificate_name().as_deref()) {
            None => (
                None,
                Some("no known token or client certificate identifies the caller".into()),
            ),
            Some(rights) if member && !rights.is_member() => (
                None,
                Some(format!("{} is not granted the member role", rights.name)),
            ),
            Some(rights) => (Some(rights), None),
        }
    }

    fn expire_silent_connections(&mut self) {
        let now = Instant::now();
        let silent: Vec<usize> = self
            .connections
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| c.as_ref().map(|c| (slot, c)))
            .filter(|(_, c)| {
                // A caller that never said Hello, or a member that never welcomed our link
                // (still connecting, or half-open after a partition): try again.
                let waiting = c.peer == Peer::Unknown
                    || (matches!(c.peer, Peer::OutboundMember(_)) && !c.welcomed);
                let idle_client = matches!(c.peer, Peer::Client(_))
                    && now.duration_since(c.last_received) > CLIENT_IDLE_TIMEOUT;
                (waiting && now.duration_since(c.opened) > HANDSHAKE_TIMEOUT) || idle_client
            })
            .map(|(slot, _)| slot)
            .collect();
        for slot in silent {
            self.close(slot, "no handshake within the handshake timeout");
        }
        let stall = Duration::from_millis(CONNECTION_STALL_MS_MAX);
        let mut stalled = Vec::new();
        let mut overdue = Vec::new();
        for &slot in &self.dirty {
            let Some(Some(connection)) = self.connections.get(slot) else {
                continue;
            };
            match (connection.closing_since, connection.backlogged_since) {
                (Some(since), _) if now.duration_since(since) > CLOSING_GRACE => overdue.push(slot),
                (None, Some(since)) if now.duration_since(since) > stall => {
                    stalled.push((slot, connection.pending_output_bytes()))
                }
                _ => {}
            }
        }
        for (slot, bytes) in stalled {
            let why = format!(
                "closed by the member: this connection left {bytes} bytes of replies unread \
                 for over {} s (CONNECTION_STALL_MS_MAX); read your replies",
                CONNECTION_STALL_MS_MAX / 1000
            );
            self.shed(slot, why);
        }
        for slot in overdue {
            self.close(slot, "closed for not reading its replies");
        }
    }

    /// Remembers that `slot` has output to write (each connection is listed once).
    fn mark_dirty(&mut self, slot: usize) {
        if let Some(Some(connection)) = self.connections.get_mut(slot) {
            if !connection.listed_dirty {
                connection.listed_dirty = true;
                self.dirty.push(slot);
            }
        }
    }

    /// Writes what is queued on every connection that has output (not on every connection:
    /// idle ones cost nothing per iteration); resumes client connections that drained after
    /// a send pause; and keeps all client connections' unsent output under
    /// `MEMBER_CLIENT_SEND_BYTES_MAX`.
    fn flush_all(&mut self) {
        let mut failed = Vec::new();
        let mut still_dirty = Vec::new();
        let mut drained = Vec::new();
        let now = Instant::now();
        for slot in std::mem::take(&mut self.dirty) {
            let Some(Some(connection)) = self.connections.get_mut(slot) else {
                continue;
            };
            let result = connection.flush();
            if connection.paused
                && connection.pending_output_bytes() < CONNECTION_SEND_PAUSE_BYTES / 2
            {
                connection.paused = false;
                drained.push(slot);
            }
            if connection.over_send_pause() {
                connection.backlogged_since.get_or_insert(now);
            } else {
                connection.backlogged_since = None;
            }
            match result {
                Err(why) => failed.push((slot, why)),
                Ok(()) if connection.has_pending_output() => still_dirty.push(slot),
                Ok(()) if connection.close_after_flush => {
                    failed.push((slot, "refused".to_string()))
                }
                Ok(()) => connection.listed_dirty = false,
            }
        }
        self.dirty = still_dirty;
        for (slot, why) in failed {
            self.close(slot, &why);
        }
        for slot in drained {
            self.resume(slot);
        }
        self.bound_client_send_bytes();
    }

    /// A client connection drained after a send pause: its parked reads are served (until it
    /// is over the pause again) and it is read again next turn.
    fn resume(&mut self, slot: usize) {
        let Some(Some(connection)) = self.connections.get_mut(slot) else {
            return;
        };
        let parked = std::mem::take(&mut connection.parked_reads);
        for read in parked {
            if let Some(pending) = self.pending_reads.get_mut(&read) {
                pending.parked = false;
            }
            self.serve_read(read); // parks it again if the connection is over the pause
        }
        self.read_later(slot, true);
    }

    /// Sums the client connections' unsent output and, while it is over the member's
    /// budget, closes the connections holding the most (each told why).
    fn bound_client_send_bytes(&mut self) {
        let mut total = 0;
        let mut paused = 0;
        let mut holders = Vec::new();
        for &slot in &self.dirty {
            let Some(Some(connection)) = self.connections.get(slot) else {
                continue;
            };
            if !matches!(connection.peer, Peer::Client(_) | Peer::Unknown) {
                continue;
            }
            let bytes = connection.pending_output_bytes();
            total += bytes;
            paused += connection.paused as usize;
            if !connection.close_after_flush {
                holders.push((bytes, slot));
            }
        }
        self.connections_paused = paused;
        if total > MEMBER_CLIENT_SEND_BYTES_MAX {
            holders.sort_unstable_by(|a, b| b.cmp(a));
            for (bytes, slot) in holders {
                if total <= MEMBER_CLIENT_SEND_BYTES_MAX {
                    break;
                }
                let why = format!(
                    "closed by the member: its clients' unsent replies reached \
                     {total} bytes (the limit is {MEMBER_CLIENT_SEND_BYTES_MAX}), and this \
                     connection held the most ({bytes} bytes unread); read your replies"
                );
                total -= self.shed(slot, why);
            }
        }
        self.client_send_bytes = total;
    }

    /// Closes a client connection that does not read its replies: drops what it has not
    /// started to receive, queues the reason, and closes it once that is written or after
    /// `CLOSING_GRACE`. Returns the bytes freed.
    fn shed(&mut self, slot: usize, why: String) -> usize {
        let Some(Some(connection)) = self.connections.get_mut(slot) else {
            return 0;
        };
        let freed = connection.discard_unsent_then(&Frame::Refused(why.clone()));
        connection.closing_since = Some(Instant::now());
        for read in std::mem::take(&mut connection.parked_reads) {
            self.pending_reads.remove(&read);
        }
        self.metrics.connection_shed();
        self.warn_now_and_then(
            (Repeated::Shed, 0),
            format!("closing a client connection: {why}"),
        );
        self.mark_dirty(slot);
        freed
    }

    fn reply(&mut self, to: &ReplyTo, reply: ClientReply) {
        match to {
            ReplyTo::Socket {
                slot,
                serial,
                request,
            } => {
                let slot = *slot;
                if let Some(Some(connection)) = self.connections.get_mut(slot) {
                    if connection.serial == *serial {
                        connection.in_flight = connection.in_flight.saturating_sub(1);
                        let before = connection.pending_output_bytes();
                        connection.queue(&Frame::Reply {
                            id: *request,
                            reply,
                        });
                        self.turn.reply_bytes += connection.pending_output_bytes() - before;
                        self.mark_dirty(slot);
                    }
                }
            }
            ReplyTo::Local(slot) => slot.fill(reply),
        }
    }

    fn send_raft(&mut self, message: Message) {
        let Some(slot) = self.links.get(&message.to).and_then(|link| link.slot) else {
            return; // not connected: Raft retransmits once the link is back
        };
        if let Some(Some(connection)) = self.connections.get_mut(slot) {
            // A full send buffer drops the message: back-pressure instead of growth.
            connection.queue(&Frame::Raft(message));
            self.mark_dirty(slot);
        }
    }

    // ----- client requests -----

    fn on_request(&mut self, to: ReplyTo, op: ClientOp) {
        let since = Instant::now();
        let pending = self.pending_writes.len() + self.pending_reads.len();
        if pending >= PENDING_CLIENT_REQUESTS_MAX
            || (pending >= PENDING_CLIENT_REQUESTS_MAX / 2 && self.over_fair_share(&to))
        {
            let reply = ClientReply::Unavailable("this member is overloaded; retry later".into());
            self.reply(&to, reply);
            return;
        }
        match op {
            ClientOp::Write(write) => {
                if let Err(why) = write.command.validate() {
                    self.reply(&to, ClientReply::Failed(why));
                    return;
                }
                if let Some(quota) = self.over_quota() {
                    if write.command.adds_data() && self.raft.role() == Role::Leader {
                        let why = format!(
                            "the data directory is over its disk quota ({} of {quota} bytes): \
                             writes that add data are refused until compaction frees space \
                             (deleting keys helps); reads, deletes and releases still work",
                            self.disk_used
                        );
                        self.reply(&to, ClientReply::Failed(why));
                        return;
                    }
                }
                let key = (write.client, write.sequence);
                match self.raft.propose(Payload::from(write.encode())) {
                    Ok(_) => {
                        self.pending_writes.insert(key, Pending { to, since });
                    }
                    Err(error) => {
                        let reply = self.refusal(error);
                        self.reply(&to, reply);
                    }
                }
            }
            ClientOp::Get {
                serializable: true, ..
            }
            | ClientOp::Range {
                serializable: true, ..
            }
            | ClientOp::Query {
                serializable: true, ..
            } => {
                let reply = self.read(&op);
                self.reply(&to, reply);
            }
            ClientOp::Status => {
                let reply = ClientReply::Status(self.status());
                self.reply(&to, reply);
            }
            ClientOp::KeepAlive { .. } if self.raft.role() != Role::Leader => {
                let leader = self.raft.leader();
                let reply = self.refusal(Error::NotLeader { leader });
                self.reply(&to, reply);
            }
            // Keepalives too wait for a quorum's confirmation: a deposed leader must not
            // extend a session the new leader may already have expired.
            ClientOp::Get { .. }
            | ClientOp::Range { .. }
            | ClientOp::Query { .. }
            | ClientOp::KeepAlive { .. } => {
                let read = self.next_read;
                self.next_read += 1;
                match self.raft.read_index(read) {
                    Ok(()) => {
                        let pending = Pending { to, since };
                        let read_state = PendingRead {
                            pending,
                            op,
                            parked: false,
                        };
                        self.pending_reads.insert(read, read_state);
                    }
                    Err(error) => {
                        let reply = self.refusal(error);
                        self.reply(&to, reply);
                    }
                }
            }
            ClientOp::Watch {
                watch,
                space,
                prefix,
                from,
            } => self.start_watch(to, watch, space, prefix, from),
            ClientOp::Membership(op) => self.on_membership(to, op, since),
            ClientOp::Snapshot(op) => {
                let reply = self.on_snapshot(op);
                self.reply(&to, reply);
            }
            ClientOp::Unwatch { watch } => {
                if let ReplyTo::Socket { slot, serial, .. } = to {
                    self.watches.remove(&WatchKey {
                        slot,
                        serial,
                        watch,
                    });
                }
                let revision = self.state.revision();
                self.reply(&to, ClientReply::Watching { revision });
            }
        }
    }

    /// Whether the connection `to` answers to has more requests waiting than its fair share
    /// of half the member's `PENDING_CLIENT_REQUESTS_MAX`: past half of it, a connection
    /// holding more is refused, so that a few connections piling up requests (a pipeliner
    /// that never reads its replies) leave room for every other one. The connections at or
    /// under their share hold at most the other half together.
    fn over_fair_share(&self, to: &ReplyTo) -> bool {
        let ReplyTo::Socket { slot, .. } = to else {
            return false;
        };
        let share = PENDING_CLIENT_REQUESTS_MAX / (2 * self.client_connections.max(1));
        self.connections
            .get(*slot)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.in_flight > share.max(1))
    }

    fn start_watch(
        &mut self,
        to: ReplyTo,
        watch: u64,
        space: crate::core::state::Space,
        prefix: Vec<u8>,
        from: u64,
    ) {
        let ReplyTo::Socket { slot, serial, .. } = to else {
            let reply = ClientReply::Failed("watches are served over a connection".into());
            self.reply(&to, reply);
            return;
        };
        let key = WatchKey {
            slot,
            serial,
            watch,
        };
        self.watches.note_revision(self.state.revision());
        match self.watches.add(key, space, prefix, from) {
            Ok(past) => {
                let revision = self.state.revision();
                self.reply(&to, ClientReply::Watching { revision });
                let past: Vec<&Event> = past.iter().collect();
                self.deliver(key, &past);
            }
            Err(WatchRefused::Compacted(revision)) => {
                self.reply(&to, ClientReply::Compacted { revision })
            }
            Err(WatchRefused::Limit(why)) => self.reply(&to, ClientReply::Failed(why)),
        }
    }

    /// Queues a watch's events on its connection, or ends the watch if the connection is
    /// too far behind (a slow consumer must not grow this member's memory).
    fn deliver(&mut self, key: WatchKey, events: &[&Event]) {
        if events.is_empty() {
            return;
        }
        let Some(Some(connection)) = self.connections.get_mut(key.slot) else {
            self.watches.remove(&key);
            return;
        };
        if connection.serial != key.serial {
            self.watches.remove(&key);
            return;
        }
        if connection.pending_output_bytes() > WATCH_CONNECTION_BACKLOG_BYTES_MAX {
            let next = events[0].revision;
            self.watches.remove(&key);
            connection.queue(&Frame::WatchEnded {
                watch: key.watch,
                reason: format!(
                    "the watcher reads too slowly ({} bytes waiting to be sent); resume from \
                     revision {next}",
                    connection.pending_output_bytes()
                ),
                resume: false,
            });
            self.mark_dirty(key.slot);
            return;
        }
        let before = connection.pending_output_bytes();
        let mut first = 0;
        let mut bytes = 0;
        for (position, event) in events.iter().enumerate() {
            let cost = event.cost_bytes();
            let count = position - first;
            if count > 0 && (count >= EVENTS_PER_FRAME_MAX || bytes + cost > EVENTS_FRAME_BYTES) {
                connection.queue_events(key.watch, &events[first..position]);
                first = position;
                bytes = 0;
            }
            bytes += cost;
        }
        connection.queue_events(key.watch, &events[first..]);
        self.turn.reply_bytes += connection.pending_output_bytes().saturating_sub(before);
        self.mark_dirty(key.slot);
    }

    /// Milliseconds on this process's monotonic clock (for session deadlines).
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// On the leader, proposes the expiry of sessions whose keepalives stopped.
    fn expire_sessions(&mut self) {
        if self.raft.role() != Role::Leader {
            return;
        }
        let stall_ms = (self.config.tick * SESSION_STALL_TICKS).as_millis() as u64;
        let retry_ms = (self.config.tick * self.config.election_ticks * 2).as_millis() as u64;
        let now_ms = self.now_ms();
        let due = self.session_clock.due(now_ms, stall_ms, retry_ms);
        if due.is_empty() {
            return;
        }
        let expire = Request {
            client: 0,
            sequence: 0,
            command: Command::ExpireSessions { sessions: due },
        };
        // A refused proposal (leadership moving) is retried after `retry_ms`, or by the
        // next leader.
        let _ = self.raft.propose(Payload::from(expire.encode()));
    }

    /// Keeps the leader's session clock in step with applied events, and routes the events to
    /// the watches.
    fn publish_events(&mut self) {
        let events = self.state.take_events();
        if events.is_empty() {
            return;
        }
        if self.session_clock.is_running() {
            let now_ms = self.now_ms();
            for event in &events {
                match event.kind {
                    EventKind::SessionCreated => {
                        let session =
                            u64::from_be_bytes(event.key[..8].try_into().unwrap_or([0; 8]));
                        self.session_clock.created(session, event.item, now_ms);
                    }
                    EventKind::SessionEnded(_) => self.session_clock.ended(event.session),
                    _ => {}
                }
            }
        }
        for (key, positions) in self.watches.route(&events) {
            let routed: Vec<&Event> = positions.iter().map(|&p| &events[p]).collect();
            self.deliver(key, &routed);
        }
        self.watches.record(events);
    }

    fn refusal(&self, error: Error) -> ClientReply {
        match error {
            Error::NotLeader { leader } => {
                let leader = leader.unwrap_or(0);
                let address = self
                    .addresses
                    .get(&leader)
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                ClientReply::NotLeader { leader, address }
            }
            error @ (Error::TransferInProgress | Error::Busy(_)) => {
                ClientReply::Unavailable(error.to_string())
            }
            other => ClientReply::Failed(other.to_string()),
        }
    }

    fn read(&self, op: &ClientOp) -> ClientReply {
        let revision = self.state.revision();
        match op {
            ClientOp::Get { key, .. } => ClientReply::Values {
                revision,
                found: self.state.get(key).into_iter().collect(),
                more: false,
            },
            ClientOp::Range { prefix, limit, .. } => {
                let (found, more) = self.state.range(prefix, *limit as usize);
                ClientReply::Values {
                    revision,
                    found,
                    more,
                }
            }
            ClientOp::Query { query, .. } => ClientReply::Answer {
                revision,
                answer: self.answer(query),
            },
            _ => ClientReply::Failed("not a read".into()),
        }
    }

    fn answer(&self, query: &Query) -> Answer {
        let state = &self.state;
        match query {
            Query::Holders { space, name } => Answer::Holders {
                holders: state.holders(*space, name).to_vec(),
                waiters: state.waiters(*space, name),
            },
            Query::Members { group } => {
                // Bounded like a range: a reply must fit in a frame.
                let mut members = state.members(group);
                let mut bytes = 0;
                let fits = members
                    .iter()
                    .take_while(|m| {
                        bytes += m.id.len() + m.metadata.len() + RANGE_KEY_OVERHEAD_BYTES;
                        bytes <= RANGE_BYTES_MAX
                    })
                    .count()
                    .max(1);
                let more = members.len() > fits;
                members.truncate(fits);
                Answer::Members { members, more }
            }
            Query::Queue { queue } => {
                let (items, ready, waiters) = state.queue_counts(queue);
                Answer::Queue {
                    items: items as u64,
                    ready: ready as u64,
                    waiters: waiters as u64,
                }
            }
            Query::Barrier { name } => {
                let (arrived, participants) = state.barrier(name).unwrap_or((0, 0));
                Answer::Barrier {
                    arrived,
                    participants,
                }
            }
            Query::Counter { name } => Answer::Counter(state.counter(name)),
            Query::Session { session } => {
                Answer::Session(state.session_ttl_ms(*session).unwrap_or(0))
            }
        }
    }

    fn status(&self) -> Status {
        let role = match self.raft.role() {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::PreCandidate => "pre-candidate",
        };
        let now = Instant::now();
        // Twice the longest election timeout without a word: suspected down.
        let suspect_after_ms =
            (4 * u64::from(self.config.election_ticks) * self.config.tick.as_millis() as u64)
                .max(1);
        let last_index = self.raft.last_index();
        let members = if self.raft.role() == Role::Leader {
            self.raft
                .tracker()
                .iter()
                .map(|p| {
                    let contact_ms = if p.id == self.config.id {
                        0
                    } else {
                        self.last_contact
                            .get(&p.id)
                            .map_or(u64::MAX, |t| now.duration_since(*t).as_millis() as u64)
                    };
                    MemberHealth {
                        id: p.id,
                        voter: self.raft.conf().is_voter(p.id),
                        matched: p.match_index,
                        lag_entries: last_index.saturating_sub(p.match_index),
                        lag_bytes: self.lag_bytes(p.match_index),
                        contact_ms,
                        suspect: contact_ms > suspect_after_ms,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Status {
            id: self.config.id,
            role: role.into(),
            term: self.raft.term(),
            leader: self.raft.leader().unwrap_or(0),
            commit: self.raft.commit_index(),
            applied: self.raft.applied_index(),
            last_index: self.raft.last_index(),
            revision: self.state.revision(),
            members,
            load: wire::ClientLoad {
                connections: self.client_connections as u64,
                paused: self.connections_paused as u64,
                send_bytes: self.client_send_bytes as u64,
                send_bytes_max: MEMBER_CLIENT_SEND_BYTES_MAX as u64,
                pending_requests: (self.pending_writes.len() + self.pending_reads.len()) as u64,
            },
        }
    }

    /// Bytes of the log entries after `matched` (`u64::MAX` when they are compacted: the
    /// member needs a snapshot). Bounded: at most `LAG_BYTES_SCAN_ENTRIES_MAX` entries are
    /// summed; beyond that the figure is a lower bound.
    fn lag_bytes(&self, matched: u64) -> u64 {
        let log = self.raft.log();
        let last = self.raft.last_index();
        if matched >= last {
            return 0;
        }
        if matched + 1 < log.first_index() {
            return u64::MAX;
        }
        let high = last.min(matched + LAG_BYTES_SCAN_ENTRIES_MAX) + 1;
        let mut entries = Vec::new();
        let mut bytes = 0u64;
        let mut next = matched + 1;
        // Bounded by `high`: each batch holds at least one entry.
        while next < high {
            entries.clear();
            if log.entries(next, high, 1 << 20, &mut entries).is_err() || entries.is_empty() {
                break;
            }
            bytes += entries.iter().map(|e| e.data.len() as u64).sum::<u64>();
            next = entries.last().map_or(high, |e| e.index + 1);
        }
        bytes
    }

    /// Logs a new leadership; returns whether this member just stopped leading.
    fn note_role_change(&mut self) -> bool {
        let role = (self.raft.role(), self.raft.term());
        if role == self.role_seen {
            return false;
        }
        let lost_leadership = self.role_seen.0 == Role::Leader;
        if role.0 == Role::Leader {
            log(self.config.id, format!("became leader in term {}", role.1));
            // Every session gets a full TTL from now: keepalives had nowhere to go while
            // there was no leader.
            let now_ms = self.now_ms();
            self.session_clock.restart(now_ms, self.state.sessions());
        } else if lost_leadership {
            self.session_clock.clear();
        }
        self.role_seen = role;
        lost_leadership
    }

    /// Fails requests that waited too long (no quorum), or all of them when this member lost
    /// its leadership (clients retry; writes keep their sequence, so none applies twice).
    fn expire_requests(&mut self, lost_leadership: bool) {
        let now = Instant::now();
        let expired =
            |p: &Pending| lost_leadership || now.duration_since(p.since) > REQUEST_TIMEOUT;
        let writes: Vec<(u64, u64)> = self
            .pending_writes
            .iter()
            .filter(|(_, p)| expired(p))
            .map(|(k, _)| *k)
            .collect();
        let reads: Vec<u64> = self
            .pending_reads
            .iter()
            .filter(|(_, r)| !r.parked && expired(&r.pending))
            .map(|(k, _)| *k)
            .collect();
        let failed = || {
            ClientReply::Unavailable(
                "no quorum confirmed the request in time (leadership changed or members are \
                 unreachable); retry"
                    .into(),
            )
        };
        for key in writes {
            if let Some(p) = self.pending_writes.remove(&key) {
                self.reply(&p.to, failed());
            }
        }
        for key in reads {
            if let Some(r) = self.pending_reads.remove(&key) {
                self.reply(&r.pending.to, failed());
            }
        }
    }

    // ----- the Ready -----

    fn handle_ready(&mut self) -> Result<()> {
        // Bounded: each round consumes the pending work; new work only comes from sockets.
        for _ in 0..READY_ROUNDS_PER_TURN_MAX {
            if !self.raft.has_ready() {
                break;
            }
            let ready = self.raft.ready();
            self.process_ready(ready)?;
        }
        self.serve_confirmed_reads();
        if self.raft.conf_index() != self.conf_seen {
            self.sync_membership();
        }
        self.answer_membership_change();
        self.answer_transfer();
        Ok(())
    }

    /// Logs a warning a peer may repeat on every retry, at most once a minute per peer.
    fn warn_now_and_then(&mut self, key: (Repeated, NodeId), text: String) {
        let now = Instant::now();
        let interval = Duration::from_millis(REPEATED_WARNING_INTERVAL_MS);
        if self
            .warned
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < interval)
        {
            return;
        }
        if self.warned.len() >= WARNED_KEYS_MAX {
            self.warned.clear();
        }
        self.warned.insert(key, now);
        warn(self.config.id, text);
    }

    // ----- the disk quota -----

    /// The quota, when the data directory is over it.
    fn over_quota(&self) -> Option<u64> {
        self.config
            .disk_quota_bytes
            .filter(|&quota| self.disk_used >= quota)
    }

    /// Measures the data directory (every quarter second at most) and, while it is over its
    /// quota, takes a snapshot so that compaction can free the log.
    fn check_disk_quota(&mut self) -> Result<()> {
        let Some(quota) = self.config.disk_quota_bytes else {
            return Ok(());
        };
        let now = Instant::now();
        if self
            .disk_measured
            .is_some_and(|t| now.duration_since(t) < Duration::from_millis(250))
        {
            return Ok(());
        }
        self.disk_measured = Some(now);
        let was_over = self.disk_used >= quota;
        let dir = &self.config.data_dir;
        self.disk_used =
            metrics::dir_bytes(&dir.join("wal")) + metrics::dir_bytes(&dir.join("snap"));
        let over = self.disk_used >= quota;
        if over != was_over {
            // Over the quota, compaction keeps no margin of entries behind the snapshot (a
            // follower that far behind catches up by snapshot instead).
            let margin = if over {
                0
            } else {
                self.config.compaction_margin_entries
            };
            self.raft.storage_mut().set_compaction_margin(margin);
            let state = if over { "over" } else { "back under" };
            let level = if over { warn } else { log };
            level(
                self.config.id,
                format!(
                    "the data directory is {state} its disk quota ({} of {quota} bytes)",
                    self.disk_used
                ),
            );
        }
        if over && self.state.applied_index() > self.last_snapshot_index {
            self.snapshot_now()?;
        }
        Ok(())
    }

    // ----- a slow disk -----

    /// A leader whose durable write took longer than an election timeout hands leadership to
    /// the most up-to-date voter: every write waits for the leader's disk, so a stalling disk
    /// must not stay in the leader's seat (followers would not notice: its heartbeats keep
    /// coming between the writes).
    fn step_down_if_disk_stalls(&mut self, elapsed: Duration) {
        let bound = self.config.tick * self.config.election_ticks;
        if self.raft.role() != Role::Leader || elapsed <= bound {
            return;
        }
        let successor = self
            .raft
            .tracker()
            .iter()
            .filter(|p| p.id != self.config.id && self.raft.conf().voters.contains(&p.id))
            .max_by_key(|p| p.match_index)
            .map(|p| p.id);
        if let Some(successor) = successor {
            warn(
                self.config.id,
                format!(
                    "a durable write took {} ms (over the election timeout of {} ms): the disk \
                     stalls; handing leadership to {successor}",
                    elapsed.as_millis(),
                    bound.as_millis()
                ),
            );
            let _ = self.raft.transfer_leader(successor);
        }
    }

    /// The slow-disk failpoint (see `fsync_delay_file`).
    fn delay_by_failpoint(&self) {
        let Some(file) = &self.fsync_delay_file else {
            return;
        };
        let delay_ms = std::fs::read_to_string(file)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(0)
            .min(60_000);
        if delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
    }

    /// The failing-disk failpoint: one write fails when its file exists.
    fn fail_by_failpoint(&mut self) {
        let Some(file) = self
            .fsync_delay_file
            .as_ref()
            .and_then(|delay| delay.parent())
            .map(|dir| dir.join(FSYNC_FAIL_FAILPOINT_FILE))
        else {
            return;
        };
        if std::fs::remove_file(&file).is_ok() {
            self.raft
                .storage_mut()
                .inject_write_failure(std::io::ErrorKind::Other);
        }
    }

    // ----- saving a snapshot -----

    /// Serves `accord snapshot save`, on the leader: a snapshot covering the requested index
    /// (taken now if the newest does not), then its file in chunks.
    fn on_snapshot(&mut self, op: SnapshotOp) -> ClientReply {
        if self.raft.role() != Role::Leader {
            return self.refusal(Error::NotLeader {
                leader: self.raft.leader(),
            });
        }
        let storage = self.raft.storage();
        let newest = match storage.newest_snapshot_file() {
            Ok(newest) => newest,
            Err(error) => return ClientReply::Failed(error.to_string()),
        };
        match op {
            SnapshotOp::Prepare { after } => match newest {
                Some((meta, total)) if meta.index >= after => ClientReply::SnapshotChunk {
                    index: meta.index,
                    term: meta.term,
                    total,
                    offset: 0,
                    data: Vec::new(),
                },
                _ => {
                    let applied = self.state.applied_index();
                    if applied < after {
                        return ClientReply::Unavailable("catching up; retry".into());
                    }
                    if !storage.snapshot_in_flight() {
                        if let Err(error) = self.snapshot_now() {
                            return ClientReply::Failed(error.to_string());
                        }
                    }
                    ClientReply::Unavailable("taking a snapshot; retry".into())
                }
            },
            SnapshotOp::Read {
                index,
                term,
                offset,
            } => {
                let replaced = || {
                    ClientReply::Failed(format!(
                        "snapshot {index} was replaced by a newer one; save again"
                    ))
                };
                let total = match newest {
                    Some((meta, total)) if meta.index == index && meta.term == term => total,
                    _ => return replaced(),
                };
                match storage.read_snapshot_file(index, term, offset, SNAPSHOT_CHUNK_BYTES) {
                    Ok(Some(data)) => ClientReply::SnapshotChunk {
                        index,
                        term,
                        total,
                        offset,
                        data,
                    },
                    Ok(None) => replaced(),
                    Err(error) => ClientReply::Failed(error.to_string()),
                }
            }
        }
    }

    // ----- metrics -----

    /// Reports the gauges (once per tick).
    fn publish_metrics(&mut self) {
        let leader = self.raft.leader();
        if leader.is_some() && leader != self.leader_seen {
            self.metrics.leader_changed();
        }
        self.leader_seen = leader;
        let conf = self.raft.conf();
        let last_index = self.raft.last_index();
        let now = Instant::now();
        let peers = if self.raft.role() == Role::Leader {
            self.raft
                .tracker()
                .iter()
                .filter(|p| p.id != self.config.id)
                .map(|p| {
                    let peer = metrics::Peer {
                        lag_entries: last_index.saturating_sub(p.match_index),
                        last_contact_seconds: self
                            .last_contact
                            .get(&p.id)
                            .map(|t| now.duration_since(*t).as_secs_f64()),
                        voter: conf.is_voter(p.id),
                    };
                    (p.id, peer)
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        self.metrics.set_gauges(metrics::Gauges {
            term: self.raft.term(),
            commit: self.raft.commit_index(),
            applied: self.raft.applied_index(),
            last_index,
            leader: self.raft.role() == Role::Leader,
            voters: conf.voters.len() as u64,
            learners: conf.learners.len() as u64,
            sessions: self.state.sessions().count() as u64,
            locks_held: self.state.locks_held() as u64,
            watches: self.watches.len() as u64,
            fencing_rejections: self.state.fencing_rejections(),
            client_send_bytes: self.client_send_bytes as u64,
            connections_paused: self.connections_paused as u64,
            loop_turn_us_max: std::mem::take(&mut self.turn_longest).as_micros() as u64,
            peers,
        });
    }

    // ----- membership -----

    /// Takes the members' addresses from the newest membership (its entry's context, or the
    /// applied one kept in the state, or the configured members), and opens or closes links
    /// to match.
    fn sync_membership(&mut self) {
        self.conf_seen = self.raft.conf_index();
        let sources = [
            self.raft.conf_context(),
            self.state.membership_context(),
            self.raft.storage().bootstrap_context(),
        ];
        let mut addresses = sources
            .iter()
            .filter_map(|context| members::decode_addresses(context).ok())
            .find(|book| !book.is_empty())
            .unwrap_or_else(|| self.config.members.clone());
        addresses.insert(self.config.id, self.config.listen);
        let conf = self.raft.conf().clone();
        let mut peers: Vec<NodeId> = addresses.keys().copied().collect();
        peers.extend(conf.members());
        peers.retain(|&id| id != self.config.id);
        self.raft.set_peers(peers);
        // A member the membership names keeps its address even if a context omitted it.
        for id in conf.members() {
            if let (false, Some(address)) = (addresses.contains_key(&id), self.addresses.get(&id)) {
                addresses.insert(id, *address);
            }
        }
        addresses.retain(|id, _| conf.is_member(*id) || *id == self.config.id);
        let now = Instant::now();
        let gone: Vec<NodeId> = self
            .links
            .keys()
            .copied()
            .filter(|id| !addresses.contains_key(id))
            .collect();
        for id in gone {
            if let Some(slot) = self.links.remove(&id).and_then(|link| link.slot) {
                self.close(slot, "the member left the cluster");
            }
        }
        for (&id, &address) in &addresses {
            if id == self.config.id {
                continue;
            }
            let link = self.links.entry(id).or_insert(Link {
                address,
                slot: None,
                next_attempt: now,
                backoff: RECONNECT_BACKOFF_MIN,
            });
            link.address = address;
        }
        if self.addresses != addresses && !self.addresses.is_empty() {
            log(self.config.id, format!("membership: {conf}"));
        }
        if !conf.is_member(self.config.id) && self.raft.conf_index() > 0 {
            warn(
                self.config.id,
                "this member is no longer in the cluster's membership; stop it",
            );
        }
        self.addresses = addresses;
    }

    /// Serves a membership request: a listing anywhere, a change on the leader.
    fn on_membership(&mut self, to: ReplyTo, op: MembershipOp, since: Instant) {
        let mut addresses = self.addresses.clone();
        let change = match op {
            // The leader's view: a member that was removed, or is cut off, may not know the
            // membership has changed.
            MembershipOp::List if self.raft.role() != Role::Leader => {
                let reply = self.refusal(Error::NotLeader {
                    leader: self.raft.leader(),
                });
                self.reply(&to, reply);
                return;
            }
            MembershipOp::List => {
                let reply = ClientReply::Membership(self.membership_view());
                self.reply(&to, reply);
                return;
            }
            MembershipOp::AddLearner { id, address } => {
                let Ok(address) = address.parse::<SocketAddr>() else {
                    let why = format!("member address {address:?} is not host:port");
                    self.reply(&to, ClientReply::Failed(why));
                    return;
                };
                addresses.insert(id, address);
                ConfChange::AddLearner(id)
            }
            MembershipOp::Promote { id } => ConfChange::Promote(id),
            MembershipOp::TransferLeader { to: target } => {
                self.transfer_leadership(to, target, since);
                return;
            }
            MembershipOp::Remove { id } => {
                addresses.remove(&id);
                ConfChange::Remove(id)
            }
        };
        // A change already in force succeeds again: a client may retry one whose answer it
        // lost (a leader change in the middle).
        let conf = self.raft.conf();
        let done = !conf.is_joint()
            && match change {
                ConfChange::AddLearner(id) => {
                    conf.is_member(id) && addresses.get(&id) == self.addresses.get(&id)
                }
                ConfChange::Promote(id) => conf.voters.contains(&id),
                ConfChange::Remove(id) => !conf.is_member(id),
            };
        if done && self.raft.role() == Role::Leader {
            let reply = ClientReply::Membership(self.membership_view());
            self.reply(&to, reply);
            return;
        }
        if self.pending_conf.is_some() {
            let busy = "another membership change is in progress; retry".to_string();
            self.reply(&to, ClientReply::Unavailable(busy));
            return;
        }
        let context = members::encode_addresses(&addresses);
        match self.raft.propose_conf_change(change, &context) {
            Ok(index) => {
                log(
                    self.config.id,
                    format!("proposed {change} at index {index}"),
                );
                self.pending_conf = Some(Pending { to, since });
            }
            Err(error) => {
                let reply = self.refusal(error);
                self.reply(&to, reply);
            }
        }
    }

    /// Hands leadership to `target` (on the leader); answered once `target` leads.
    fn transfer_leadership(&mut self, to: ReplyTo, target: NodeId, since: Instant) {
        if self.raft.role() == Role::Leader && target == self.config.id {
            let reply = ClientReply::Membership(self.membership_view());
            self.reply(&to, reply);
            return;
        }
        if self.pending_transfer.is_some() {
            let busy = "a leadership transfer is in progress; retry".to_string();
            self.reply(&to, ClientReply::Unavailable(busy));
            return;
        }
        match self.raft.transfer_leader(target) {
            Ok(()) => {
                log(self.config.id, format!("handing leadership to {target}"));
                self.pending_transfer = Some((Pending { to, since }, target));
            }
            Err(Error::UnknownNode(_)) => {
                let why = format!("node {target} is not a voter of this cluster");
                self.reply(&to, ClientReply::Failed(why));
            }
            Err(error) => {
                let reply = self.refusal(error);
                self.reply(&to, reply);
            }
        }
    }

    /// Answers the pending transfer once its target leads, or fails it when another member
    /// leads instead or it took too long.
    fn answer_transfer(&mut self) {
        let Some((pending, target)) = &self.pending_transfer else {
            return;
        };
        let leader = self.raft.leader();
        let reply = if leader == Some(*target) {
            ClientReply::Membership(self.membership_view())
        } else if pending.since.elapsed() > REQUEST_TIMEOUT
            || leader.is_some_and(|l| l != self.config.id)
        {
            ClientReply::Unavailable(format!(
                "leadership did not move to {target} (it may be behind or unreachable); retry"
            ))
        } else {
            return;
        };
        if let Some((pending, _)) = self.pending_transfer.take() {
            self.reply(&pending.to, reply);
        }
    }

    /// Answers the pending membership change once it completed (committed, joint membership
    /// left), or fails it when this member stopped leading or it took too long.
    fn answer_membership_change(&mut self) {
        let Some(pending) = &self.pending_conf else {
            return;
        };
        let reply = if self.raft.role() != Role::Leader {
            ClientReply::Unavailable(
                "leadership changed during the membership change; check `accord member list`                  and retry if it did not take effect"
                    .into(),
            )
        } else if !self.raft.conf_change_pending() {
            ClientReply::Membership(self.membership_view())
        } else if pending.since.elapsed() > REQUEST_TIMEOUT {
            ClientReply::Unavailable(
                "the membership change did not complete in time (members unreachable?);                  check `accord member list`"
                    .into(),
            )
        } else {
            return;
        };
        if let Some(pending) = self.pending_conf.take() {
            self.reply(&pending.to, reply);
        }
    }

    fn membership_view(&self) -> MembershipView {
        MembershipView {
            id: self.config.id,
            leader: self.raft.leader().unwrap_or(0),
            conf: self.raft.conf().clone(),
            pending: self.raft.conf_change_pending(),
            addresses: self
                .addresses
                .iter()
                .map(|(id, address)| (*id, address.to_string()))
                .collect(),
        }
    }

    fn process_ready(&mut self, mut ready: Ready) -> Result<()> {
        let sends = !ready.messages.is_empty();
        for message in std::mem::take(&mut ready.messages) {
            self.send_raft(message);
        }
        if sends && !ready.entries.is_empty() {
            // Put the appends on the wire before our own fdatasync, so the followers' syncs
            // run while ours does (the leader counts itself only after its sync anyway).
            // Without entries there is no sync worth overlapping: the messages go out with
            // the answers at the end of the iteration.
            self.flush_all();
        }
        let marker = ready.persisted_marker();
        if let Some(snapshot) = ready.snapshot.take() {
            let restored = StateMachine::decode(snapshot.data.as_slice()).map_err(|why| {
                Error::Corrupt(format!("the leader's snapshot does not decode: {why}"))
            })?;
            self.raft.storage_mut().apply_snapshot(snapshot.clone())?;
            self.state = restored;
            self.last_snapshot_index = snapshot.meta.index;
            // The history no longer connects to the new state: watchers resume (and learn
            // whether they were compacted).
            for key in self.watches.reset(self.state.revision()) {
                if let Some(Some(connection)) = self.connections.get_mut(key.slot) {
                    if connection.serial == key.serial {
                        connection.queue(&Frame::WatchEnded {
                            watch: key.watch,
                            reason: "this member installed a snapshot from the leader".into(),
                            resume: true,
                        });
                        self.mark_dirty(key.slot);
                    }
                }
            }
        }
        if !ready.entries.is_empty() || ready.hard_state.is_some() {
            self.fail_by_failpoint();
            let started = Instant::now();
            self.raft
                .storage_mut()
                .append(&ready.entries, ready.hard_state)?;
            self.delay_by_failpoint();
            if !ready.entries.is_empty() {
                let elapsed = started.elapsed();
                self.metrics.fsync(elapsed);
                self.step_down_if_disk_stalls(elapsed);
            }
        }
        self.raft.advance(marker);
        for message in std::mem::take(&mut ready.persisted_messages) {
            self.send_raft(message);
        }
        for entry in &ready.committed_entries {
            if entry.kind == EntryKind::NoOp {
                self.state.apply_noop(entry.index);
                continue;
            }
            if entry.kind == EntryKind::ConfChange {
                match ConfState::decode_entry(entry.data.as_slice()) {
                    Ok((conf, context)) => {
                        self.state.apply_membership(entry.index, context);
                        self.raft.storage_mut().set_applied_conf(conf);
                    }
                    Err(_) => self.state.apply_noop(entry.index),
                }
                continue;
            }
            if let Some(applied) = self.state.apply(entry.index, entry.data.as_slice()) {
                if let Some(p) = self
                    .pending_writes
                    .remove(&(applied.client, applied.sequence))
                {
                    self.metrics.proposal(p.since.elapsed());
                    let reply = match applied.payload {
                        Some(payload) => ClientReply::Claimed {
                            outcome: applied.outcome,
                            payload,
                        },
                        None => ClientReply::Written(applied.outcome),
                    };
                    self.reply(&p.to, reply);
                }
            }
        }
        self.publish_events();
        self.confirmed_reads
            .extend(ready.read_states.iter().map(|r| (r.request, r.index)));
        self.maybe_snapshot()
    }

    /// Restarts the deadlines of sessions whose keepalive a quorum confirmed this member
    /// leads for.
    fn keep_alive(&mut self, sessions: &[u64]) -> ClientReply {
        if self.raft.role() != Role::Leader || !self.session_clock.is_running() {
            let leader = self.raft.leader();
            return self.refusal(Error::NotLeader { leader });
        }
        let now_ms = self.now_ms();
        let ttls = sessions
            .iter()
            .map(|s| (*s, self.session_clock.keepalive(*s, now_ms).unwrap_or(0)))
            .collect();
        ClientReply::KeptAlive(ttls)
    }

    /// Serves the reads a quorum confirmed and this member has applied far enough for, within
    /// the turn's bounds (the rest next turn).
    fn serve_confirmed_reads(&mut self) {
        let applied = self.state.applied_index();
        let mut waiting = VecDeque::new();
        let mut served = 0;
        // A budget of its own: the requests taken earlier in the turn must not starve the
        // answers to reads confirmed already.
        let bytes_before = self.turn.reply_bytes;
        // Bounded by the queue, itself bounded by PENDING_CLIENT_REQUESTS_MAX.
        while let Some((read, index)) = self.confirmed_reads.pop_front() {
            if index > applied {
                waiting.push_back((read, index));
                continue;
            }
            if served >= READS_SERVED_PER_TURN_MAX
                || self.turn.reply_bytes - bytes_before >= REPLY_BYTES_PER_TURN_MAX
            {
                waiting.push_back((read, index));
                waiting.extend(self.confirmed_reads.drain(..));
                self.turn.reads_deferred = true;
                break;
            }
            served += 1;
            self.serve_read(read);
        }
        self.confirmed_reads = waiting;
    }

    /// Answers a confirmed read, or parks it on its connection while that connection's
    /// unsent output is over the send pause: a reply is never computed only to wait behind
    /// a megabyte of others (or to be dropped).
    fn serve_read(&mut self, read: u64) {
        let Some(pending) = self.pending_reads.get_mut(&read) else {
            return;
        };
        if let ReplyTo::Socket { slot, serial, .. } = pending.pending.to {
            if let Some(Some(connection)) = self.connections.get_mut(slot) {
                if connection.serial == serial && connection.over_send_pause() {
                    pending.parked = true;
                    connection.parked_reads.push(read); // bounded by its requests in flight
                    connection.paused = true;
                    return;
                }
            }
        }
        if let Some(r) = self.pending_reads.remove(&read) {
            let reply = match &r.op {
                ClientOp::KeepAlive { sessions } => self.keep_alive(sessions),
                op => self.read(op),
            };
            self.reply(&r.pending.to, reply);
        }
    }

    /// Takes a snapshot once enough entries were applied since the last one: at least
    /// `snapshot_every_entries`, and at least half as many as the state holds keys, so that
    /// writing snapshots costs at most about two bytes per byte written by clients however
    /// large the state grows, while the log kept in memory stays below half the state.
    fn maybe_snapshot(&mut self) -> Result<()> {
        let applied = self.state.applied_index();
        let every = self
            .config
            .snapshot_every_entries
            .max(self.state.len() as u64 / 2);
        if applied < self.last_snapshot_index + every {
            return Ok(());
        }
        self.snapshot_now().map(|_| ())
    }

    /// Starts a snapshot of the state as of the applied index (made durable on a helper
    /// thread); false when one is in flight already.
    fn snapshot_now(&mut self) -> Result<bool> {
        let applied = self.state.applied_index();
        let state = &self.state;
        let started = self.raft.storage_mut().start_snapshot_streamed(
            applied,
            state.encoded_len(),
            |writer| state.encode_into(&mut WriteRef(writer)),
        )?;
        if started {
            self.last_snapshot_index = applied;
        }
        Ok(started)
    }
}

/// Makes the kernel fail a member link whose sent data stays unacknowledged for longer than
/// [`MEMBER_LINK_USER_TIMEOUT`] (a half-open connection after a partition would otherwise
/// retransmit for many minutes before the link is retried).
fn limit_unacknowledged_time(stream: &TcpStream) {
    use std::os::unix::io::AsRawFd;
    let millis = MEMBER_LINK_USER_TIMEOUT.as_millis() as libc::c_uint;
    // SAFETY: setsockopt on a socket we own, with a pointer to a live c_uint and its size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&millis as *const libc::c_uint).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        );
    }
}

/// Adapts a `&mut dyn Write` to the `impl Write` the state machine's encoder takes.
struct WriteRef<'a>(&'a mut dyn std::io::Write);

impl std::io::Write for WriteRef<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A seed that differs between processes (and between members of one process).
fn process_seed(id: NodeId) -> u64 {
    std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), id)
}

fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::Events { .. } => "events",
        Frame::WatchEnded { .. } => "watch-ended",
        Frame::Hello { .. } => "Hello",
        Frame::Welcome { .. } => "Welcome",
        Frame::Refused(_) => "Refused",
        Frame::Raft(_) => "Raft message",
        Frame::Request { .. } => "client request",
        Frame::Reply { .. } => "reply",
    }
}
