//! `accord server`: run one member of a cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use accord::api::{Node, NodeConfig};

use crate::args::Args;

const HELP: &str = "\
usage: accord server --id N --listen ADDR --peers ID=ADDR[,ID=ADDR...] --data-dir DIR [options]
       accord server --config FILE [options]

Runs one member. Members and clients connect to ADDR. --peers lists the other members.
--config reads the same settings from a TOML file (options given on the command line win):
    id = 1
    listen = \"127.0.0.1:7101\"
    peers = \"2=127.0.0.1:7102,3=127.0.0.1:7103\"
    data_dir = \"/var/lib/accord\"
    # cluster_id, tick_ms, election_ticks, snapshot_entries, rejoin = true|false

options:
  --cluster-id N       cluster identity; connections from other clusters are refused (default 1)
  --tick-ms N          length of a Raft tick (default 50)
  --election-ticks N   election timeout in ticks, drawn from [N, 2N) (default 10)
  --snapshot-entries N take a snapshot (and compact the log) every N applied entries
                       (default 10000)
  --compaction-margin N  entries kept behind a snapshot for slow followers (default 5000)
  --rejoin             the data directory was re-created empty after damage: replicate, but
                       neither vote nor count toward quorums until re-added as a voter

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
            ("rejoin", "true") => arguments.push("--rejoin".to_string()),
            ("rejoin", "false") => {}
            ("rejoin", other) => {
                return Err(format!(
                    "{path}:{}: rejoin must be true or false, not {other}",
                    number + 1
                ))
            }
            (
                "id" | "listen" | "peers" | "data-dir" | "cluster-id" | "tick-ms"
                | "election-ticks" | "snapshot-entries" | "compaction-margin",
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
    let mut args = Args::parse(arguments.clone(), &["help", "rejoin"])?;
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
                    let takes_value = name != "rejoin";
                    merged.drain(position..position + 1 + takes_value as usize);
                }
            }
            merged.push(flag);
        }
        args = Args::parse(merged, &["help", "rejoin"])?;
    }
    let id: u64 = args.get_opt("id")?.ok_or("--id is required")?;
    let listen: SocketAddr = args.get_opt("listen")?.ok_or("--listen is required")?;
    let peers: String = args.get("peers", String::new())?;
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
    args.finish()?;
    let mut members = parse_members(&peers)?;
    if members.insert(id, listen).is_some() {
        return Err(format!("--peers lists this node's own id {id}"));
    }
    let mut config = NodeConfig::new(id, listen, members, data_dir);
    config.cluster = cluster;
    config.tick = Duration::from_millis(tick_ms);
    config.election_ticks = election_ticks;
    config.rejoin = rejoin;
    config.snapshot_every_entries = snapshot_entries.max(1);
    config.compaction_margin_entries = margin;
    let node = match Node::start(config) {
        Ok(node) => node,
        Err(error) => {
            eprintln!("accord: node {id} cannot start: {error}");
            return Ok(ExitCode::from(error.exit_code()));
        }
    };
    match node.wait() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            eprintln!("accord: node {id} stopped: {error}");
            Ok(ExitCode::from(error.exit_code()))
        }
    }
}
