//! A client of the cluster: connects to any member, follows the leader, retries writes with
//! the same (client, sequence) so that each is applied exactly once.
//!
//! Calls block up to the configured timeout. The client is usable from any thread (calls are
//! serialized over one connection).

use std::hash::BuildHasher;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::core::state::{Command, Condition, KeyValue, Op, Outcome, Request};
use crate::error::{Error, Result};
use crate::limits::WATCH_BUFFER_EVENTS_MAX;
use crate::runtime::access::Secret;
use crate::runtime::node::LoopHandle;
use crate::runtime::tls::{self, TlsFiles};
use crate::runtime::wire::{
    self, Caller, ClientOp, ClientReply, Decoded, Frame, MembershipOp, MembershipView, SnapshotOp,
    Status,
};
use crate::types::NodeId;

/// Longest one attempt waits for a member's answer before the client tries another member
/// (a paused or partitioned member must not hold a call for its whole timeout). A write
/// retried elsewhere keeps its sequence number, so it is still applied once.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest pause between two attempts while no leader is known: short, because an election
/// takes a few hundred milliseconds and the first write after it should not wait much longer.
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(50);

/// How a client connects.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Member addresses (`host:port`); any one is enough to find the others' leader.
    pub endpoints: Vec<String>,
    /// The cluster's id (must match the members').
    pub cluster: u64,
    /// How long one call may take, retries included.
    pub timeout: Duration,
    /// TLS: the cluster CA, and this client's certificate and key when it authenticates
    /// with one (`None`: plaintext).
    pub tls: Option<TlsFiles>,
    /// A shared-secret token naming this client in the members' access file (empty: none).
    pub token: Secret,
}

impl ClientConfig {
    /// Defaults: cluster 1, 10 s per call.
    pub fn new(endpoints: Vec<String>) -> ClientConfig {
        ClientConfig {
            endpoints,
            cluster: 1,
            timeout: Duration::from_secs(10),
            tls: None,
            token: Secret::default(),
        }
    }
}

/// A connection to the cluster.
pub struct Client {
    config: ClientConfig,
    /// The TLS set-up loaded from `config.tls`.
    tls: Option<Arc<rustls::ClientConfig>>,
    id: u64,
    inner: Mutex<Inner>,
    cancel: Arc<CancelState>,
    /// The member in this process, reached through its event loop's channel (no socket).
    local: Option<LoopHandle>,
}

/// What a [`CancelHandle`] shares with its client.
#[derive(Default)]
struct CancelState {
    /// Incremented by every `cancel()`; a call in progress that sees it move stops.
    generation: AtomicU64,
    /// A clone of the socket the current call waits on, to wake a blocked read.
    socket: Mutex<Option<TcpStream>>,
}

/// Cancels the call a [`Client`] is making, from any thread: the call returns
/// [`Error::Cancelled`] at once (a write it had sent may still be applied, exactly once).
#[derive(Clone)]
pub struct CancelHandle {
    state: Arc<CancelState>,
}

impl CancelHandle {
    /// Cancels the call in progress, if any. Later calls are not affected.
    pub fn cancel(&self) {
        self.state.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(socket) = self.state.socket.lock().as_ref() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

struct Inner {
    connection: Option<(Stream, String)>,
    /// The endpoint to try next.
    preferred: Option<String>,
    next_endpoint: usize,
    next_sequence: u64,
    next_request: u64,
    received: Vec<u8>,
    /// The read timeout currently set on the socket.
    read_timeout: Option<Duration>,
    /// The local member redirected us to the leader: use the network until that fails.
    local_redirected: bool,
    /// Scratch space for socket reads (allocated once, never zeroed again).
    chunk: Vec<u8>,
    /// Watch frames that arrived while a reply was awaited (bounded: see `attempt`).
    pushed: VecDeque<Frame>,
}

impl Client {
    /// Prepares a client; the first call connects. Fails only on an invalid configuration.
    pub fn connect(config: ClientConfig) -> Result<Client> {
        if config.endpoints.is_empty() {
            return Err(Error::InvalidConfig("give at least one endpoint".into()));
        }
        if config.token.0.len() > crate::limits::TOKEN_BYTES_MAX {
            return Err(Error::InvalidConfig(format!(
                "a token has at most {} bytes",
                crate::limits::TOKEN_BYTES_MAX
            )));
        }
        let tls = match &config.tls {
            Some(files) => Some(tls::client_config(files)?),
            None => None,
        };
        let mut client = Client::prepared(config);
        client.tls = tls;
        Ok(client)
    }

    /// A client of a configuration already checked (plaintext until `tls` is set).
    fn prepared(config: ClientConfig) -> Client {
        // Random per client; 0 is reserved for the cluster's own commands.
        let id = std::collections::hash_map::RandomState::new()
            .hash_one(std::process::id())
            .max(1);
        Client {
            config,
            tls: None,
            id,
            inner: Mutex::new(Inner {
                connection: None,
                preferred: None,
                next_endpoint: 0,
                next_sequence: 1,
                next_request: 1,
                received: Vec::new(),
                read_timeout: None,
                local_redirected: false,
                chunk: vec![0; 16 * 1024],
                pushed: VecDeque::new(),
            }),
            cancel: Arc::new(CancelState::default()),
            local: None,
        }
    }

    /// A client with this one's configuration and its TLS set-up already loaded (no file is
    /// read again), on a connection of its own: for watch streams and session keepalives.
    pub(crate) fn sibling(&self) -> Client {
        let mut client = Client::prepared(self.config.clone());
        client.tls = self.tls.clone();
        client
    }

    /// A client of the member running in this process: requests go straight to its event
    /// loop; when it is not the leader, the client follows the leader over the network.
    pub fn connect_local(config: ClientConfig, local: LoopHandle) -> Result<Client> {
        let mut client = Client::connect(config)?;
        client.local = Some(local);
        Ok(client)
    }

    /// The address this client last reached the cluster through (usually the leader's).
    pub(crate) fn last_endpoint(&self) -> Option<String> {
        let inner = self.inner.lock();
        match &inner.connection {
            Some((_, address)) => Some(address.clone()),
            None => inner.preferred.clone(),
        }
    }

    /// Makes `endpoint` the first one the next call tries.
    pub(crate) fn prefer(&self, endpoint: String) {
        self.inner.lock().preferred = Some(endpoint);
    }

    /// A handle that cancels this client's call in progress from another thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            state: self.cancel.clone(),
        }
    }

    /// Sets `key` to `value`; returns the revision of the write.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<u64> {
        let command = Command::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        Ok(self.write(command)?.revision())
    }

    /// Removes `key`; returns whether it existed and the revision.
    pub fn delete(&self, key: &[u8]) -> Result<(bool, u64)> {
        match self.write(Command::Delete { key: key.to_vec() })? {
            Outcome::Delete { deleted, revision } => Ok((deleted, revision)),
            other => Err(unexpected(other)),
        }
    }

    /// Sets `key` to `value` if it holds `expected` (`None`: if absent); returns whether it
    /// did and the revision.
    pub fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(bool, u64)> {
        let command = Command::CompareAndSwap {
            key: key.to_vec(),
            expected: expected.map(<[u8]>::to_vec),
            value: value.to_vec(),
        };
        match self.write(command)? {
            Outcome::CompareAndSwap { swapped, revision } => Ok((swapped, revision)),
            other => Err(unexpected(other)),
        }
    }

    /// Runs a transaction: `success` if every condition holds, else `failure`; returns which
    /// branch ran and the revision.
    pub fn txn(
        &self,
        conditions: Vec<Condition>,
        success: Vec<Op>,
        failure: Vec<Op>,
    ) -> Result<(bool, u64)> {
        let command = Command::Txn {
            conditions,
            success,
            failure,
        };
        match self.write(command)? {
            Outcome::Txn {
                succeeded,
                revision,
            } => Ok((succeeded, revision)),
            other => Err(unexpected(other)),
        }
    }

    /// Reads `key` (linearizable); returns it and the revision served at.
    pub fn get(&self, key: &[u8]) -> Result<(Option<KeyValue>, u64)> {
        self.get_with(key, false)
    }

    /// Reads `key` from the member connected to, without confirming with the leader (may be
    /// stale, never torn).
    pub fn get_serializable(&self, key: &[u8]) -> Result<(Option<KeyValue>, u64)> {
        self.get_with(key, true)
    }

    fn get_with(&self, key: &[u8], serializable: bool) -> Result<(Option<KeyValue>, u64)> {
        // A key that no write could create is a mistake, refused as writes refuse it.
        if key.is_empty() || key.len() > crate::limits::KEY_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "keys must be 1..={} bytes, not {}",
                crate::limits::KEY_BYTES_MAX,
                key.len()
            )));
        }
        let op = ClientOp::Get {
            key: key.to_vec(),
            serializable,
        };
        match self.call(op)? {
            ClientReply::Values {
                revision, found, ..
            } => Ok((found.into_iter().next(), revision)),
            other => Err(unexpected(other)),
        }
    }

    /// Keys starting with `prefix` (linearizable), at most `limit` (0: as many as one reply
    /// holds); the flag says whether more matched.
    pub fn range(&self, prefix: &[u8], limit: u32) -> Result<(Vec<KeyValue>, bool, u64)> {
        let op = ClientOp::Range {
            prefix: prefix.to_vec(),
            limit,
            serializable: false,
        };
        match self.call(op)? {
            ClientReply::Values {
                revision,
                found,
                more,
            } => Ok((found, more, revision)),
            other => Err(unexpected(other)),
        }
    }

    /// The status of the member this client talks to.
    pub fn status(&self) -> Result<Status> {
        match self.call(ClientOp::Status)? {
            ClientReply::Status(status) => Ok(status),
            other => Err(unexpected(other)),
        }
    }

    /// The cluster's membership as its leader sees it: voters, learners, the members'
    /// addresses, and whether a change is in progress.
    pub fn member_list(&self) -> Result<MembershipView> {
        self.membership(MembershipOp::List)
    }

    /// Adds member `id`, listening at `address`, as a learner: it receives the log but does
    /// not vote until promoted. Returns once the change is committed. Retrying a change that
    /// already took effect succeeds.
    pub fn member_add_learner(&self, id: NodeId, address: &str) -> Result<MembershipView> {
        self.membership(MembershipOp::AddLearner {
            id,
            address: address.to_string(),
        })
    }

    /// Makes learner `id` a voter, through a joint membership; returns once the change is
    /// complete. Refused while the learner has not caught up with the leader's log.
    pub fn member_promote(&self, id: NodeId) -> Result<MembershipView> {
        self.membership(MembershipOp::Promote { id })
    }

    /// Removes member `id` (a voter, the leader included, or a learner); returns once the
    /// change is complete. A removed leader hands its leadership over first.
    pub fn member_remove(&self, id: NodeId) -> Result<MembershipView> {
        self.membership(MembershipOp::Remove { id })
    }

    /// Saves a snapshot of the replicated state, consistent as of the commit index when the
    /// call began, into `out` (the snapshot file format, checksummed); the leader takes a
    /// fresh snapshot when its newest one is older. Returns the snapshot's index and size.
    pub fn save_snapshot(&self, out: &mut impl std::io::Write) -> Result<(u64, u64)> {
        let after = self.status()?.commit;
        let prepared = self.call(ClientOp::Snapshot(SnapshotOp::Prepare { after }))?;
        let ClientReply::SnapshotChunk {
            index, term, total, ..
        } = prepared
        else {
            return Err(unexpected(prepared));
        };
        let mut offset = 0u64;
        // Bounded by the file's size: every chunk is non-empty or the save fails.
        while offset < total {
            let op = ClientOp::Snapshot(SnapshotOp::Read {
                index,
                term,
                offset,
            });
            match self.call(op)? {
                ClientReply::SnapshotChunk { data, .. } if !data.is_empty() => {
                    out.write_all(&data)
                        .map_err(|e| Error::io("writing the snapshot", &e))?;
                    offset += data.len() as u64;
                }
                other => return Err(unexpected(other)),
            }
        }
        Ok((index, total))
    }

    /// Hands leadership to voter `to`; returns once it leads.
    pub fn transfer_leader(&self, to: NodeId) -> Result<MembershipView> {
        self.membership(MembershipOp::TransferLeader { to })
    }

    fn membership(&self, op: MembershipOp) -> Result<MembershipView> {
        match self.call(ClientOp::Membership(op))? {
            ClientReply::Membership(view) => Ok(view),
            other => Err(unexpected(other)),
        }
    }

    /// The status of the member at `endpoint` (not following the leader).
    pub fn status_of(&self, endpoint: &str) -> Result<Status> {
        let mut inner = self.inner.lock();
        inner.connection = None;
        inner.preferred = Some(endpoint.to_string());
        let deadline = deadline_after(self.config.timeout.min(Duration::from_secs(2)));
        let reply = self.attempt(&mut inner, &ClientOp::Status, deadline)?;
        match reply {
            ClientReply::Status(status) => Ok(status),
            other => Err(unexpected(other)),
        }
    }

    fn write(&self, command: Command) -> Result<Outcome> {
        match self.write_until(command, deadline_after(self.config.timeout))? {
            ClientReply::Written(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    /// The configuration this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Applies `command` through the log (once, however often it is retried) and returns the
    /// member's reply (`Written`, or `Claimed` for a claim), trying until `deadline`.
    pub(crate) fn write_until(&self, command: Command, deadline: Instant) -> Result<ClientReply> {
        command.validate().map_err(Error::InvalidArgument)?;
        // The sequence is taken and used under one lock: writes of several threads reach the
        // cluster in sequence order, so none is mistaken for a stale retry.
        let mut inner = self.inner.lock();
        let sequence = inner.next_sequence;
        inner.next_sequence += 1;
        let request = Request {
            client: self.id,
            sequence,
            command,
        };
        // Every retry carries the same sequence: the cluster applies the write once.
        match self.call_locked(&mut inner, ClientOp::Write(request), deadline)? {
            ClientReply::Written(Outcome::Stale { .. }) => Err(Error::InvalidMessage(
                "the cluster had already applied a newer request of this client",
            )),
            reply @ (ClientReply::Written(_) | ClientReply::Claimed { .. }) => Ok(reply),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `op` until a member answers it, following the leader and retrying across
    /// failures until the timeout.
    fn call(&self, op: ClientOp) -> Result<ClientReply> {
        self.call_until(op, deadline_after(self.config.timeout))
    }

    /// As [`Client::call`], until `deadline`.
    pub(crate) fn call_until(&self, op: ClientOp, deadline: Instant) -> Result<ClientReply> {
        let mut inner = self.inner.lock();
        self.call_locked(&mut inner, op, deadline)
    }

    /// The body of [`Client::call_until`], with the connection already locked.
    fn call_locked(
        &self,
        inner: &mut Inner,
        op: ClientOp,
        deadline: Instant,
    ) -> Result<ClientReply> {
        refuse_what_members_refuse(&op)?;
        let generation = self.cancel.generation.load(Ordering::SeqCst);
        let cancelled = || self.cancel.generation.load(Ordering::SeqCst) != generation;
        let mut last_error = Error::NotLeader { leader: None };
        let mut pause = Duration::from_millis(20);
        // Bounded by the deadline.
        while Instant::now() < deadline {
            if cancelled() {
                inner.connection = None; // its state is unknown after a shutdown
                return Err(Error::Cancelled);
            }
            let attempt_deadline = deadline.min(Instant::now() + ATTEMPT_TIMEOUT);
            let result = self.attempt(inner, &op, attempt_deadline);
            if cancelled() {
                inner.connection = None;
                return Err(Error::Cancelled);
            }
            match result {
                Ok(ClientReply::NotLeader { address, leader }) => {
                    inner.connection = None;
                    inner.preferred = (!address.is_empty()).then_some(address);
                    last_error = Error::NotLeader {
                        leader: (leader != 0).then_some(leader),
                    };
                    if leader == 0 {
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(RETRY_PAUSE_MAX);
                    }
                }
                Ok(ClientReply::Unavailable(_)) => {
                    last_error = Error::Busy("cluster");
                    inner.connection = None;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(RETRY_PAUSE_MAX);
                }
                Ok(ClientReply::Failed(why)) => return Err(Error::Rejected(why)),
                Ok(ClientReply::Denied(why)) => return Err(Error::PermissionDenied(why)),
                Ok(reply) => return Ok(reply),
                // A bad endpoint or a refused handshake (wrong cluster id, no credentials, a
                // certificate the CA did not sign) will not get better.
                Err(error @ (Error::InvalidConfig(_) | Error::PermissionDenied(_))) => {
                    return Err(error)
                }
                Err(error) => {
                    inner.connection = None;
                    inner.local_redirected = false; // the leader may be us again
                    last_error = error;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(RETRY_PAUSE_MAX);
                }
            }
        }
        Err(match last_error {
            Error::NotLeader { .. } | Error::Busy(_) => Error::Busy(
                "no leader answered within the timeout; the cluster may have lost quorum",
            ),
            other => other,
        })
    }

    fn attempt(&self, inner: &mut Inner, op: &ClientOp, deadline: Instant) -> Result<ClientReply> {
        if let Some(local) = &self.local {
            // Serializable reads and status are the local member's to answer, always.
            let local_only = matches!(
                op,
                ClientOp::Get {
                    serializable: true,
                    ..
                } | ClientOp::Range {
                    serializable: true,
                    ..
                } | ClientOp::Query {
                    serializable: true,
                    ..
                } | ClientOp::Status
            );
            if local_only || (!inner.local_redirected && inner.preferred.is_none()) {
                let reply = local.request(op.clone(), deadline)?;
                // Only a leader elsewhere sends us to the network; while no leader is known
                // (an election), the next attempt asks the local member again.
                if let ClientReply::NotLeader { leader, .. } = &reply {
                    inner.local_redirected = *leader != 0;
                }
                return Ok(reply);
            }
        }
        if inner.connection.is_none() {
            self.open_connection(inner, deadline)?;
        }
        let request = inner.next_request;
        inner.next_request += 1;
        let mut bytes = Vec::with_capacity(64);
        wire::encode_request(request, op, &mut bytes);
        let (stream, address) = inner.connection.as_mut().expect("connected above");
        let address = address.clone();
        // A member that stopped reading (paused, partitioned) must not hold the call past its
        // deadline in a blocked write either.
        stream
            .tcp()
            .set_write_timeout(Some(remaining(deadline)))
            .and_then(|()| stream.write_all(&bytes))
            .and_then(|()| stream.flush())
            .map_err(|e| Error::io(format!("sending to {address}"), &e))?;
        // Bounded by the deadline (read timeouts) and by the frame size limit.
        loop {
            match read_frame(inner, deadline)? {
                Frame::Reply { id, reply } if id == request => return Ok(reply),
                Frame::Reply { .. } => continue, // an answer to an earlier, abandoned attempt
                frame @ (Frame::Events { .. } | Frame::WatchEnded { .. }) => {
                    // Kept for the watch stream that owns this connection.
                    if inner.pushed.len() >= WATCH_BUFFER_EVENTS_MAX {
                        return Err(Error::Busy("watch events piled up unread"));
                    }
                    inner.pushed.push_back(frame);
                }
                // The member closes this connection and says why (it did not read its
                // replies in time, say): retried on a new connection, and reported if the
                // call runs out of time.
                Frame::Refused(why) => {
                    return Err(Error::Io {
                        operation: format!("calling {address}"),
                        reason: why,
                    })
                }
                other => {
                    return Err(Error::InvalidMessage(frame_kind(&other)));
                }
            }
        }
    }

    fn open_connection(&self, inner: &mut Inner, deadline: Instant) -> Result<()> {
        let address = match inner.preferred.take() {
            Some(address) => address,
            None => {
                let endpoints = &self.config.endpoints;
                let address = endpoints[inner.next_endpoint % endpoints.len()].clone();
                inner.next_endpoint += 1;
                address
            }
        };
        let socket = address
            .to_socket_addrs()
            .map_err(|e| Error::InvalidConfig(format!("endpoint {address}: {e}")))?
            .next()
            .ok_or_else(|| Error::InvalidConfig(format!("{address} resolves to nothing")))?;
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(10), Duration::from_secs(2));
        let tcp = TcpStream::connect_timeout(&socket, wait)
            .map_err(|e| Error::io(format!("connecting to {address}"), &e))?;
        let _ = tcp.set_nodelay(true);
        *self.cancel.socket.lock() = tcp.try_clone().ok();
        let mut stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let name = tls::server_name(tls::host_of(&address))?;
                let session = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| Error::InvalidConfig(format!("TLS with {address}: {e}")))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(session, tcp)))
            }
        };
        let mut hello = Vec::new();
        let frame = Frame::Hello {
            cluster: self.config.cluster,
            caller: Caller::Client(self.id),
            token: self.config.token.0.clone(),
        };
        wire::encode(&frame, &mut hello);
        stream
            .tcp()
            .set_write_timeout(Some(remaining(deadline)))
            .and_then(|()| stream.write_all(&hello))
            .and_then(|()| stream.flush())
            .map_err(|e| tls_or_io(format!("greeting {address}"), e))?;
        inner.received.clear();
        inner.pushed.clear();
        inner.read_timeout = None;
        inner.connection = Some((stream, address.clone()));
        match read_frame(inner, deadline)? {
            Frame::Welcome { .. } => Ok(()),
            Frame::Refused(why) if why.starts_with(wire::REFUSED_UNAUTHENTICATED) => {
                inner.connection = None;
                Err(Error::PermissionDenied(format!(
                    "{address} refused the connection: {why}"
                )))
            }
            // A member at its limit for our address: another member may take us.
            Frame::Refused(why) if why.starts_with("too many connections") => {
                inner.connection = None;
                Err(Error::Rejected(format!(
                    "{address} refused the connection: {why}"
                )))
            }
            Frame::Refused(why) => {
                inner.connection = None;
                Err(Error::InvalidConfig(format!(
                    "{address} refused the connection: {why}"
                )))
            }
            other => Err(Error::InvalidMessage(frame_kind(&other))),
        }
    }
}

impl Client {
    /// Opens a connection to some member (rotating through the endpoints) for a watch
    /// stream; returns its address.
    pub(crate) fn open_stream(&self, deadline: Instant) -> Result<String> {
        let mut inner = self.inner.lock();
        inner.connection = None;
        self.open_connection(&mut inner, deadline)?;
        Ok(inner
            .connection
            .as_ref()
            .map(|(_, a)| a.clone())
            .unwrap_or_default())
    }

    /// Sends one request on the open stream connection and waits for its reply (watch frames
    /// arriving meanwhile are kept for [`Client::next_pushed`]).
    pub(crate) fn stream_request(&self, op: &ClientOp, deadline: Instant) -> Result<ClientReply> {
        refuse_what_members_refuse(op)?;
        let mut inner = self.inner.lock();
        if inner.connection.is_none() {
            return Err(Error::io("watching", &closed()));
        }
        let result = self.attempt(&mut inner, op, deadline);
        if result.is_err() {
            inner.connection = None;
        }
        result
    }

    /// The next watch frame on the stream connection, waiting until `deadline`; `Ok(None)`
    /// when none came in time.
    pub(crate) fn next_pushed(&self, deadline: Instant) -> Result<Option<Frame>> {
        let mut inner = self.inner.lock();
        if let Some(frame) = inner.pushed.pop_front() {
            return Ok(Some(frame));
        }
        if inner.connection.is_none() {
            return Err(Error::io("watching", &closed()));
        }
        match read_frame(&mut inner, deadline) {
            Ok(frame @ (Frame::Events { .. } | Frame::WatchEnded { .. })) => Ok(Some(frame)),
            Ok(Frame::Reply { .. }) => Ok(None), // an abandoned request's answer
            Ok(other) => {
                inner.connection = None;
                Err(Error::InvalidMessage(frame_kind(&other)))
            }
            Err(Error::Busy(_)) => Ok(None), // the deadline passed
            Err(error) => {
                inner.connection = None;
                Err(error)
            }
        }
    }
}

fn read_frame(inner: &mut Inner, deadline: Instant) -> Result<Frame> {
    let (stream, address) = inner
        .connection
        .as_mut()
        .ok_or(Error::NotLeader { leader: None })?;
    // Bounded by the deadline (read timeouts) and by the frame size limit.
    loop {
        match wire::decode(&inner.received) {
            Decoded::Frame(frame, used) => {
                inner.received.drain(..used);
                return Ok(frame);
            }
            Decoded::Invalid(why) => {
                return Err(Error::Protocol(format!(
                    "{address} sent a bad frame: {why}"
                )))
            }
            Decoded::NeedMore => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Busy("the member did not answer within the timeout"));
        }
        // One system call per change of timeout, not per read.
        let timeout = left.max(Duration::from_millis(1)).min(ATTEMPT_TIMEOUT);
        if inner.read_timeout.is_none_or(|t| {
            t > timeout + Duration::from_millis(100)
                || t < timeout.saturating_sub(Duration::from_millis(500))
        }) {
            stream
                .tcp()
                .set_read_timeout(Some(timeout))
                .map_err(|e| Error::io("setting a read timeout", &e))?;
            inner.read_timeout = Some(timeout);
        }
        match stream.read(&mut inner.chunk) {
            Ok(0) => return Err(Error::io(format!("reading from {address}"), &closed())),
            Ok(count) => inner.received.extend_from_slice(&inner.chunk[..count]),
            // A read timeout means the member had nothing to say yet (a watch stream waits
            // this way); the connection is fine.
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Error::Busy("the member did not answer within the timeout"))
            }
            Err(error) => return Err(tls_or_io(format!("reading from {address}"), error)),
        }
    }
}

/// A connection to a member: TCP, or TLS over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The socket (for timeouts).
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// A TLS failure (rustls reports them as invalid data: a certificate the CA did not sign, a
/// name that does not match) will not get better by retrying; other I/O errors may.
fn tls_or_io(operation: String, error: std::io::Error) -> Error {
    if error.kind() == std::io::ErrorKind::InvalidData {
        Error::InvalidConfig(format!("{operation}: TLS: {error}"))
    } else {
        Error::io(operation, &error)
    }
}

/// `now + timeout`, or a day from now for a timeout too large to add.
/// Refuses, with the member's own reason, a request the member's decoder would refuse (a
/// prefix or name over `KEY_BYTES_MAX`, say): sent, it would only get the connection closed,
/// and the call would retry until its timeout. Writes are checked by `Command::validate`
/// (and may be large); every other request is small, so encoding and decoding it here
/// costs next to nothing.
pub(crate) fn refuse_what_members_refuse(op: &ClientOp) -> Result<()> {
    // The common reads pass without the round trip through the encoder: the member's decoder
    // reads their one field with `KEY_BYTES_MAX` and has nothing else to refuse.
    let within_key_limit = |field: &[u8]| field.len() <= crate::limits::KEY_BYTES_MAX;
    match op {
        ClientOp::Write(_) | ClientOp::Status | ClientOp::Unwatch { .. } => return Ok(()),
        ClientOp::Get { key, .. } if within_key_limit(key) => return Ok(()),
        ClientOp::Range { prefix, .. } | ClientOp::Watch { prefix, .. }
            if within_key_limit(prefix) =>
        {
            return Ok(())
        }
        _ => {}
    }
    let mut bytes = Vec::new();
    crate::runtime::wire::encode_request(0, op, &mut bytes);
    match crate::runtime::wire::decode(&bytes) {
        crate::runtime::wire::Decoded::Invalid(why) => Err(Error::InvalidArgument(why)),
        _ => Ok(()),
    }
}

pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(24 * 3600))
}

/// Time left until `deadline`, at least a millisecond (a zero socket timeout means "none").
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")
}

fn frame_kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Refused(_) => "the member refused the connection",
        _ => "the member sent an unexpected frame",
    }
}

pub(crate) fn unexpected(value: impl std::fmt::Debug) -> Error {
    Error::Protocol(format!("unexpected answer: {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::Space;
    use crate::limits::KEY_BYTES_MAX;

    #[test]
    fn reads_are_refused_exactly_when_the_members_decoder_would_refuse_them() {
        for len in [0, 1, KEY_BYTES_MAX, KEY_BYTES_MAX + 1, 10 * KEY_BYTES_MAX] {
            let field = vec![b'k'; len];
            for op in [
                ClientOp::Get {
                    key: field.clone(),
                    serializable: false,
                },
                ClientOp::Range {
                    prefix: field.clone(),
                    limit: 10,
                    serializable: true,
                },
                ClientOp::Watch {
                    watch: 1,
                    space: Space::Kv,
                    prefix: field.clone(),
                    from: 1,
                },
            ] {
                // What the member's decoder says of the encoded request.
                let mut bytes = Vec::new();
                wire::encode_request(0, &op, &mut bytes);
                let member_refuses = matches!(wire::decode(&bytes), wire::Decoded::Invalid(_));
                let result = refuse_what_members_refuse(&op);
                assert_eq!(result.is_err(), member_refuses, "{len} bytes: {result:?}");
                assert_eq!(member_refuses, len > KEY_BYTES_MAX);
                if let Err(error) = result {
                    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
                }
            }
        }
    }
}
