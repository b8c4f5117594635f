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

Runs one member. Members and clients connect to ADDR. --peers lists the other members.

options:
  --cluster-id N       cluster identity; connections from other clusters are refused (default 1)
  --tick-ms N          length of a Raft tick (default 50)
  --election-ticks N   election timeout in ticks, drawn from [N, 2N) (default 10)
  --snapshot-entries N take a snapshot (and compact the log) every N applied entries
                       (default 10000)
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

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help", "rejoin"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
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
