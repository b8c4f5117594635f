//! `accord hostile`: clients that misbehave on purpose, against one member, to show that no
//! client slows a member down for the others. The same attacks serve `accord bench hostile`
//! (which measures a well-behaved client beside them), the hostile-client tests and the
//! torture harness's nemesis.
//!
//! Each attack speaks the wire protocol itself over plain TCP (a real client library would
//! read its replies): every connection says `Hello` as a client, then
//! - `never-read`: pipelines linearizable `Get`s of a key holding a large value and never
//!   reads a byte;
//! - `slow-read`: the same, reading one byte a second;
//! - `flood`: pipelines tiny `Get`s as fast as it can, reading (and dropping) the replies;
//! - `watch-never-read`: registers watches on a prefix that another thread of the attack
//!   keeps writing to, and never reads.
//!
//! All connections of an attack are driven by one thread with non-blocking sockets, so that
//! an attack with a thousand connections costs one thread.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::api::{Client, ClientConfig, Space};
use accord::runtime::wire::{self, Caller, ClientOp, Frame};

use crate::args::Args;

const HELP: &str = "\
usage: accord hostile --kind KIND --endpoints A,B,C [--target ADDR] [--connections N]
                      [--seconds S] [--value-bytes N] [--cluster-id N]

Runs clients that misbehave on purpose against one member (the target; default: the first
endpoint), to test that the member keeps serving everyone else. Plaintext connections only.

kinds:
  never-read        pipeline linearizable gets of a key holding a large value; never read
  slow-read         the same, reading one byte a second
  flood             pipeline tiny gets as fast as possible, reading and dropping the replies
  watch-never-read  watch a prefix that the attack keeps writing to; never read

options:
  --endpoints A,B,C   every member's address (the attack writes its large value or its busy
                      prefix through an ordinary client of the cluster)
  --target ADDR       the member attacked (default: the first endpoint)
  --connections N     connections opened to the target (default 1, at most 1024)
  --seconds S         how long the attack lasts (default 10)
  --value-bytes N     size of the value read by never-read and slow-read (default 1000000)
  --cluster-id N      the cluster's id (default 1)

Ends with one line:
  hostile <kind>: connections=<n> opened=<n> closed_by_member=<n> requests_sent=<n> bytes_read=<n>
";

/// The key whose large value `never-read` and `slow-read` ask for, and the prefix
/// `watch-never-read` watches (under it, keys are written by the attack's writer).
pub const ATTACK_KEY: &[u8] = b"hostile/large";
const BUSY_PREFIX: &[u8] = b"hostile/busy/";

/// Connections one attack may open.
const ATTACK_CONNECTIONS_MAX: usize = 1024;

/// Requests written to a connection in one batch (and so between two readiness checks).
const REQUESTS_PER_BATCH: usize = 64;

/// Watches one `watch-never-read` connection registers.
const WATCHES_PER_CONNECTION: u64 = 16;

/// Value size the busy prefix is written with.
const BUSY_VALUE_BYTES: usize = 16 * 1024;

/// The misbehaviours an attack can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Pipelines gets of a large value and never reads.
    NeverRead,
    /// Pipelines gets of a large value and reads one byte a second.
    SlowRead,
    /// Pipelines tiny gets and reads the replies.
    Flood,
    /// Watches a busy prefix and never reads.
    WatchNeverRead,
}

impl Kind {
    /// Every kind, in the order `accord bench hostile` runs them.
    pub const ALL: [Kind; 4] = [
        Kind::NeverRead,
        Kind::SlowRead,
        Kind::Flood,
        Kind::WatchNeverRead,
    ];

    /// The kind's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::NeverRead => "never-read",
            Kind::SlowRead => "slow-read",
            Kind::Flood => "flood",
            Kind::WatchNeverRead => "watch-never-read",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown kind '{name}' (one of {})", names.join(", "))
            })
    }
}

/// One attack: what, against whom, how wide.
#[derive(Clone, Debug)]
pub struct Attack {
    /// The misbehaviour.
    pub kind: Kind,
    /// The member attacked.
    pub target: SocketAddr,
    /// Every member (for the attack's own ordinary client).
    pub endpoints: Vec<String>,
    /// Connections opened to the target.
    pub connections: usize,
    /// Size of the large value.
    pub value_bytes: usize,
    /// The cluster's id.
    pub cluster: u64,
}

/// What an attack did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Connections opened.
    pub opened: usize,
    /// Connections the member closed (end of stream or reset).
    pub closed_by_member: usize,
    /// Requests written.
    pub requests_sent: u64,
    /// Bytes read back.
    pub bytes_read: u64,
}

/// One hostile connection.
struct Hostile {
    stream: TcpStream,
    /// Bytes of `pending` already written.
    written: usize,
    pending: Vec<u8>,
    open: bool,
    next_read: Instant,
}

/// Encodes a client `Hello` for client `id` of `cluster`.
fn hello(cluster: u64, id: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::encode(
        &Frame::Hello {
            cluster,
            caller: Caller::Client(id),
            token: Vec::new(),
        },
        &mut bytes,
    );
    bytes
}

/// A batch of the requests `kind` pipelines.
fn request_batch(kind: Kind) -> Vec<u8> {
    let mut bytes = Vec::new();
    for id in 0..REQUESTS_PER_BATCH as u64 {
        let op = match kind {
            Kind::NeverRead | Kind::SlowRead => ClientOp::Get {
                key: ATTACK_KEY.to_vec(),
                serializable: false,
            },
            // Alternating linearizable and local reads: the read-index path and the
            // immediate one both see the flood.
            Kind::Flood => ClientOp::Get {
                key: b"hostile/absent".to_vec(),
                serializable: id % 2 == 0,
            },
            Kind::WatchNeverRead => return Vec::new(),
        };
        wire::encode_request(id + 1, &op, &mut bytes);
    }
    bytes
}

/// The watches a `watch-never-read` connection registers.
fn watch_requests() -> Vec<u8> {
    let mut bytes = Vec::new();
    for watch in 1..=WATCHES_PER_CONNECTION {
        let op = ClientOp::Watch {
            watch,
            space: Space::Kv,
            prefix: BUSY_PREFIX.to_vec(),
            from: 0,
        };
        wire::encode_request(watch, &op, &mut bytes);
    }
    bytes
}

/// A client id no other client of the cluster uses (random per connection).
fn client_id(serial: u64) -> u64 {
    let random =
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), serial);
    random | 1
}

/// Prepares what the attack needs in the cluster: the large value, for the readers.
fn prepare(attack: &Attack) -> Result<Client, String> {
    let config = ClientConfig {
        cluster: attack.cluster,
        ..ClientConfig::new(attack.endpoints.clone())
    };
    let client = Client::connect(config).map_err(|e| e.to_string())?;
    if matches!(attack.kind, Kind::NeverRead | Kind::SlowRead) {
        client
            .put(ATTACK_KEY, &vec![b'x'; attack.value_bytes])
            .map_err(|e| format!("writing the attack's value: {e}"))?;
    }
    Ok(client)
}

/// Runs `attack` until `until` (or until `stop` is set); returns what it did.
pub fn run(attack: &Attack, until: Instant, stop: &AtomicBool) -> Result<Summary, String> {
    if !(1..=ATTACK_CONNECTIONS_MAX).contains(&attack.connections) {
        return Err(format!(
            "--connections must be 1..={ATTACK_CONNECTIONS_MAX}"
        ));
    }
    let client = prepare(attack)?;
    let writer_stop = Arc::new(AtomicBool::new(false));
    let writer = match (attack.kind, client) {
        (Kind::WatchNeverRead, client) => {
            let stop = writer_stop.clone();
            Some(std::thread::spawn(move || busy_writer(&client, &stop)))
        }
        _ => None,
    };
    let mut summary = Summary::default();
    let mut hostiles = Vec::new();
    for serial in 0..attack.connections as u64 {
        let stream = match TcpStream::connect_timeout(&attack.target, Duration::from_secs(2)) {
            Ok(stream) => stream,
            Err(_) => continue, // refused (a limit): the attack goes on with the others
        };
        let _ = stream.set_nonblocking(true);
        let mut pending = hello(attack.cluster, client_id(serial));
        if attack.kind == Kind::WatchNeverRead {
            pending.extend(watch_requests());
        }
        summary.opened += 1;
        hostiles.push(Hostile {
            stream,
            written: 0,
            pending,
            open: true,
            next_read: Instant::now(),
        });
    }
    let batch = request_batch(attack.kind);
    let mut sink = vec![0u8; 64 * 1024];
    // Bounded by `until`.
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let mut progressed = false;
        for hostile in hostiles.iter_mut().filter(|h| h.open) {
            progressed |= drive(hostile, attack.kind, &batch, &mut sink, &mut summary);
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    writer_stop.store(true, Ordering::Relaxed);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Ok(summary)
}

/// One round of one connection's misbehaviour; returns whether it moved any bytes.
fn drive(
    hostile: &mut Hostile,
    kind: Kind,
    batch: &[u8],
    sink: &mut [u8],
    summary: &mut Summary,
) -> bool {
    let mut progressed = false;
    if hostile.written == hostile.pending.len() && !batch.is_empty() {
        hostile.pending.clear();
        hostile.pending.extend_from_slice(batch);
        hostile.written = 0;
        summary.requests_sent += REQUESTS_PER_BATCH as u64;
    }
    if hostile.written < hostile.pending.len() {
        match hostile.stream.write(&hostile.pending[hostile.written..]) {
            Ok(0) => hostile.open = false,
            Ok(count) => {
                hostile.written += count;
                progressed = true;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => hostile.open = false,
        }
    }
    let now = Instant::now();
    let read_size = match kind {
        Kind::Flood => sink.len(),
        Kind::SlowRead if now >= hostile.next_read => {
            hostile.next_read = now + Duration::from_secs(1);
            1
        }
        // Never reading: a closed connection shows only when writing fails.
        _ => 0,
    };
    if read_size > 0 && hostile.open {
        match hostile.stream.read(&mut sink[..read_size]) {
            Ok(0) => hostile.open = false,
            Ok(count) => {
                summary.bytes_read += count as u64;
                progressed = true;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => hostile.open = false,
        }
    }
    if !hostile.open {
        summary.closed_by_member += 1;
    }
    progressed
}

/// Keeps the busy prefix busy: puts of `BUSY_VALUE_BYTES` under it, round the clock.
fn busy_writer(client: &Client, stop: &AtomicBool) {
    let value = vec![b'b'; BUSY_VALUE_BYTES];
    let mut n = 0u64;
    // Bounded by `stop`, which the attack sets when it ends.
    while !stop.load(Ordering::Relaxed) {
        let mut key = BUSY_PREFIX.to_vec();
        key.extend_from_slice(format!("{:04}", n % 1000).as_bytes());
        if client.put(&key, &value).is_err() {
            std::thread::sleep(Duration::from_millis(10));
        }
        n += 1;
    }
}

/// `accord hostile`.
pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let kind: String = args
        .get_opt("kind")?
        .ok_or_else(|| format!("--kind is required\n\n{HELP}"))?;
    let kind = Kind::parse(&kind)?;
    let endpoints: String = args
        .get_opt("endpoints")?
        .ok_or_else(|| format!("--endpoints is required\n\n{HELP}"))?;
    let endpoints: Vec<String> = endpoints.split(',').map(str::to_string).collect();
    let target: String = args.get("target", endpoints[0].clone())?;
    let target: SocketAddr = target
        .parse()
        .map_err(|_| format!("--target {target}: not an address (host:port)"))?;
    let connections: usize = args.get("connections", 1)?;
    let seconds: u64 = args.get("seconds", 10)?;
    let value_bytes: usize = args.get("value-bytes", 1_000_000)?;
    let cluster: u64 = args.get("cluster-id", 1)?;
    args.finish()?;
    if value_bytes > accord::limits::VALUE_BYTES_MAX {
        return Err(format!(
            "--value-bytes: at most {}",
            accord::limits::VALUE_BYTES_MAX
        ));
    }
    let attack = Attack {
        kind,
        target,
        endpoints,
        connections,
        value_bytes,
        cluster,
    };
    let until = Instant::now() + Duration::from_secs(seconds);
    let summary = run(&attack, until, &AtomicBool::new(false))?;
    println!(
        "hostile {}: connections={connections} opened={} closed_by_member={} requests_sent={} bytes_read={}",
        kind.name(),
        summary.opened,
        summary.closed_by_member,
        summary.requests_sent,
        summary.bytes_read
    );
    Ok(ExitCode::SUCCESS)
}
