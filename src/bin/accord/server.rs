//! `accord server`: run one member of a cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use accord::api::{Client, ClientConfig, MembershipView, Node, NodeConfig};
use accord::runtime::access::AccessRules;
use accord::runtime::log::{log, Level};
use accord::runtime::members::encode_addresses;
use accord::runtime::storage::WalStorage;

use crate::args::{Args, Security};

const HELP: &str = "\
usage: accord server --id N --listen ADDR --peers ID=ADDR[,ID=ADDR...] --data-dir DIR [options]
       accord server --id N --listen ADDR --join ADDR[,ADDR...] --data-dir DIR [options]
       accord server --config FILE [options]

Runs one member. Members and clients connect to ADDR. --peers lists the other members of a
new cluster. --join adds this member to a running cluster instead (ADDR: any members): it
joins as a learner, catches up (by snapshot if need be) and then asks to be promoted to
voter (unless --no-promote). Restarting a member that joined needs neither flag's list
again: its data directory remembers the membership (give --join anyway, it is ignored).
--config reads the same settings from a TOML file (options given on the command line win):
    id = 1
    listen = \"127.0.0.1:7101\"
    peers = \"2=127.0.0.1:7102,3=127.0.0.1:7103\"
    data_dir = \"/var/lib/accord\"
    tls_ca = \"/etc/accord/ca.pem\"
    tls_cert = \"/etc/accord/node1.pem\"
    tls_key = \"/etc/accord/node1-key.pem\"
    # cluster_id, tick_ms, election_ticks, snapshot_entries, access, token_file,
    # rejoin = true|false, plaintext = true|false

security (one of the two is required):
  --tls-ca FILE --tls-cert FILE --tls-key FILE
                       TLS on every connection: FILE holds PEM. Members present their
                       certificate to each other (mutual TLS; the certificate must name the
                       address other members reach it at) and every caller must show a
                       certificate the CA signed, or, with --access, a token. `accord certs`
                       makes a CA and certificates.
  --plaintext          serve without TLS: anyone on the network can read and forge traffic,
                       tokens included. For loopback and trusted networks only; the member
                       warns at start.
  --access FILE        who may do what: users identified by a token or a certificate's common
                       name, and their roles (per-space, per-prefix read and write rights;
                       read-only, read-write, admin, member built in). The file's format is in
                       SECURITY.md. Without it, every caller that passes TLS may do everything.
  --token-file FILE    the token this member presents to the others (with --access, when its
                       certificate does not identify it as a member, or without TLS)

options:
  --cluster-id N       cluster identity; connections from other clusters are refused (default 1)
  --tick-ms N          length of a Raft tick (default 50)
  --election-ticks N   election timeout in ticks, drawn from [N, 2N) (default 10)
  --snapshot-entries N take a snapshot (and compact the log) every N applied entries
                       (default 10000)
  --compaction-margin N  entries kept behind a snapshot for slow followers (default 5000)
  --rejoin             the data directory was re-created empty after damage: replicate, but
                       neither vote nor count toward quorums until re-added as a voter
  --no-promote         with --join: stay a learner (promote later: accord member promote)
  --disk-quota-mb N    the data directory may use N MiB: over it, writes that add data are
                       refused with a clear error (reads, deletes, releases still work), a
                       snapshot is taken at once and the log compacted; writes resume by
                       themselves once usage is back under (default: no quota)
  --metrics ADDR       serve metrics in the Prometheus text format at http://ADDR/metrics:
                       term, commit and applied index, leader changes, proposal and fsync
                       latency histograms, WAL and snapshot bytes, sessions, locks held,
                       watches, fencing rejections, and on the leader each member's lag

Exit status: 0 stopped; 2 bad arguments; 3 damaged data directory (move it aside and start
with --rejoin on an empty one); 4 data directory locked or unusable; 1 other failures.
";

/// Parses `2=127.0.0.1:7102,3=127.0.0.1:7103`.
pub fn parse_members(text: &str) -> Result<BTreeMap<u64, SocketAddr>, String> {
    let mut members = BTreeMap::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (id, address) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not ID=ADDRESS"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("'{id}' is not a node id"))?;
        let address: SocketAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("'{address}' is not an address like 127.0.0.1:7101"))?;
        if id == 0 || members.insert(id, address).is_some() {
            return Err(format!("node id {id} is zero or listed twice"));
        }
    }
    Ok(members)
}

/// Reads a flat TOML file of `key = value` lines (strings quoted, numbers, booleans) into
/// command-line form (`--key value`), so the file and the flags share one parser.
fn config_file_arguments(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let mut arguments = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("{path}:{}: expected key = value", number + 1))?;
        let key = key.trim().replace('_', "-");
        let value = value.trim();
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(unquoted) => unquoted.to_string(),
            None => value.to_string(),
        };
        match (key.as_str(), value.as_str()) {
            ("rejoin" | "plaintext", "true") => arguments.push(format!("--{key}")),
            ("rejoin" | "plaintext", "false") => {}
            ("rejoin" | "plaintext", other) => {
                return Err(format!(
                    "{path}:{}: {key} must be true or false, not {other}",
                    number + 1
                ))
            }
            (
                "id" | "listen" | "peers" | "join" | "data-dir" | "cluster-id" | "tick-ms"
                | "election-ticks" | "snapshot-entries" | "compaction-margin" | "metrics"
                | "disk-quota-mb" | "tls-ca" | "tls-cert" | "tls-key" | "access" | "token-file",
                _,
            ) => {
                arguments.push(format!("--{key}"));
                arguments.push(value);
            }
            _ => return Err(format!("{path}:{}: unknown setting '{key}'", number + 1)),
        }
    }
    Ok(arguments)
}

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let switches = ["help", "rejoin", "no-promote", "plaintext"];
    let mut args = Args::parse(arguments.clone(), &switches)?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = args.get_opt::<String>("config")? {
        // Settings from the file first; flags given on the command line replace them.
        let mut merged = config_file_arguments(&path)?;
        let mut flags = arguments.into_iter().peekable();
        while let Some(flag) = flags.next() {
            if flag == "--config" {
                flags.next();
                continue;
            }
            if let Some(name) = flag.strip_prefix("--") {
                if let Some(position) = merged.iter().position(|m| m == &flag) {
                    let takes_value = !switches.contains(&name);
                    merged.drain(position..position + 1 + takes_value as usize);
                }
            }
            merged.push(flag);
        }
        args = Args::parse(merged, &switches)?;
    }
    let id: u64 = args.get_opt("id")?.ok_or("--id is required")?;
    let listen: SocketAddr = args.get_opt("listen")?.ok_or("--listen is required")?;
    let peers: String = args.get("peers", String::new())?;
    let join: Option<String> = args.get_opt("join")?;
    let metrics: Option<SocketAddr> = args.get_opt("metrics")?;
    let disk_quota_mb: Option<u64> = args.get_opt("disk-quota-mb")?;
    let promote = !args.flag("no-promote");
    let data_dir: PathBuf = args.get_opt("data-dir")?.ok_or("--data-dir is required")?;
    let cluster: u64 = args.get("cluster-id", 1)?;
    let tick_ms: u64 = args.get("tick-ms", 50)?;
    let election_ticks: u32 = args.get("election-ticks", 10)?;
    let rejoin = args.flag("rejoin");
    let snapshot_entries: u64 = args.get("snapshot-entries", 10_000)?;
    let margin: u64 = args.get(
        "compaction-margin",
        accord::limits::COMPACTION_MARGIN_ENTRIES_DEFAULT,
    )?;
    let security = Security::from_args(&mut args, true)?;
    let access: Option<PathBuf> = args.get_opt("access")?;
    args.finish()?;
    let access = match access {
        Some(path) => Some(Arc::new(
            AccessRules::load(&path).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    if join.is_some() && !peers.is_empty() {
        return Err(
            "give either --peers (a new cluster) or --join (a running one), not both".into(),
        );
    }
    let mut members = parse_members(&peers)?;
    if members.insert(id, listen).is_some() {
        return Err(format!("--peers lists this node's own id {id}"));
    }
    let join_endpoints: Vec<String> = join
        .iter()
        .flat_map(|j| j.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(String::from)
        .collect();
    let mut joined = None;
    if !join_endpoints.is_empty() && !WalStorage::holds_a_member(&data_dir) {
        let (view, addresses) = ask_to_join(&join_endpoints, cluster, id, listen, &security)?;
        members = addresses.clone();
        members.insert(id, listen);
        joined = Some((view.conf.clone(), encode_addresses(&members)));
    }
    let mut config = NodeConfig::new(id, listen, members, data_dir);
    config.join = joined;
    config.metrics = metrics;
    config.disk_quota_bytes = disk_quota_mb.map(|mb| mb.saturating_mul(1024 * 1024));
    config.cluster = cluster;
    config.tick = Duration::from_millis(tick_ms);
    config.election_ticks = election_ticks;
    config.rejoin = rejoin;
    config.snapshot_every_entries = snapshot_entries.max(1);
    config.compaction_margin_entries = margin;
    config.tls = security.tls.clone();
    config.token = security.token.clone();
    config.access = access;
    let node = match Node::start(config) {
        Ok(node) => node,
        Err(error) => {
            eprintln!("accord: node {id} cannot start: {error}");
            return Ok(ExitCode::from(error.exit_code()));
        }
    };
    if !join_endpoints.is_empty() && promote {
        let mut endpoints = vec![listen.to_string()];
        endpoints.extend(join_endpoints);
        std::thread::spawn(move || promote_when_caught_up(endpoints, cluster, id, security));
    }
    match node.wait() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            eprintln!("accord: node {id} stopped: {error}");
            Ok(ExitCode::from(error.exit_code()))
        }
    }
}

/// Asks a running cluster to add this member as a learner; returns the membership and the
/// members' addresses it was added to.
fn ask_to_join(
    endpoints: &[String],
    cluster: u64,
    id: u64,
    listen: SocketAddr,
    security: &Security,
) -> Result<(MembershipView, BTreeMap<u64, SocketAddr>), String> {
    let config = security.apply(ClientConfig {
        cluster,
        timeout: Duration::from_secs(30),
        ..ClientConfig::new(endpoints.to_vec())
    });
    let client = Client::connect(config).map_err(|e| e.to_string())?;
    log(
        Level::Info,
        id,
        format!(
            "asking {} to add this member as a learner",
            endpoints.join(",")
        ),
    );
    let view = client
        .member_add_learner(id, &listen.to_string())
        .map_err(|e| format!("joining the cluster at {}: {e}", endpoints.join(",")))?;
    let mut addresses = BTreeMap::new();
    for (member, address) in &view.addresses {
        let address = address
            .parse()
            .map_err(|_| format!("the cluster gave member {member} the address {address:?}"))?;
        addresses.insert(*member, address);
    }
    log(
        Level::Info,
        id,
        format!("added as a learner to {}", view.conf),
    );
    Ok((view, addresses))
}

/// Asks, until it succeeds, for this learner to be promoted: the leader refuses while the
/// learner's log trails its own by too much, so this waits for the catch-up.
fn promote_when_caught_up(endpoints: Vec<String>, cluster: u64, id: u64, security: Security) {
    let config = security.apply(ClientConfig {
        cluster,
        timeout: Duration::from_secs(10),
        ..ClientConfig::new(endpoints)
    });
    let Ok(client) = Client::connect(config) else {
        return;
    };
    // Bounded: a learner catches up or the operator stops it; one attempt per second.
    for attempt in 0u64.. {
        match client.member_list() {
            Ok(view) if view.conf.voters.contains(&id) && !view.conf.is_joint() => {
                if attempt > 0 {
                    log(Level::Info, id, format!("promoted to voter: {}", view.conf));
                }
                return;
            }
            Ok(view) if !view.conf.is_member(id) => {
                log(
                    Level::Warn,
                    id,
                    "no longer a member; not asking for promotion",
                );
                return;
            }
            _ => {}
        }
        match client.member_promote(id) {
            Ok(view) => {
                log(Level::Info, id, format!("promoted to voter: {}", view.conf));
                return;
            }
            Err(error) if attempt % 10 == 0 => {
                log(Level::Info, id, format!("not promoted yet: {error}"));
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
