//! The `accord` command: server, command-line client, coordination primitives, demo,
//! simulation and benchmarks.

#[macro_use]
mod args;
mod bench;
mod bench_ffi;
mod bench_hostile;
mod bench_local;
mod bench_wal;
mod certs;
mod check;
mod coord;
mod counting_alloc;
mod crashtest;
mod demo;
mod hostile;
mod kv;
mod lincheck;
mod member;
mod recover;
mod server;
mod sim;
mod snapshot;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: counting_alloc::CountingAllocator = counting_alloc::CountingAllocator;

const USAGE: &str = "\
accord — an embeddable coordination engine

usage: accord <command> [options]

commands:
  demo     a 3-member cluster on loopback: elect, write, kill the leader, fail over, verify
  server   run one member of a cluster (accord server --help)
  certs    make a cluster CA and TLS certificates for members and clients
  kv       read and write keys: get, put, del, range (accord kv --help)
  status   each member's view: role, term, leader, commit and applied index, lag
  member   list the cluster's members; add, promote or remove one (accord member --help)
  transfer-leader  hand leadership to a voter: accord transfer-leader --to ID
  leave    a member leaves the cluster for good: accord leave --id ID (then stop it)
  recover  rebuild a cluster from the survivors of a lost majority (accord recover --help)
  snapshot back up a live cluster's state, or seed a new cluster from a backup
           (accord snapshot --help)
  lock     run a command while holding a lock, with its fencing token (accord lock --help)
  elect    campaign in an election and print its leadership changes
  group    join, list or watch a group
  queue    push, claim and ack work items
  watch    print every change under a prefix
  sim      run the deterministic simulator over many seeds (accord sim --help)
  bench    run a benchmark: `accord bench core`, `accord bench wal`, `accord bench local`
           (accord bench --help)
  check    verify a data directory as a starting node would (accord check --help)
  crashtest  kill a process writing the WAL at random moments and check nothing acknowledged
           is lost (accord crashtest --help)
  lincheck check a recorded register history for linearizability (accord lincheck --help)
  hostile  run clients that misbehave on purpose against one member (accord hostile --help)
  help     show this text
";

fn main() -> ExitCode {
    let mut arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.is_empty() {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    let command = arguments.remove(0);
    let result = match command.as_str() {
        "sim" => sim::main(arguments),
        "server" => server::main(arguments),
        "certs" => certs::main(arguments),
        "demo" => demo::main(arguments),
        "kv" => kv::kv_main(arguments),
        "status" => kv::status_main(arguments),
        "member" => member::main(arguments),
        "transfer-leader" => member::transfer_main(arguments),
        "leave" => member::leave_main(arguments),
        "recover" => recover::main(arguments),
        "snapshot" => snapshot::main(arguments),
        "lock" => coord::lock_main(arguments),
        "elect" => coord::elect_main(arguments),
        "group" => coord::group_main(arguments),
        "queue" => coord::queue_main(arguments),
        "watch" => coord::watch_main(arguments),
        "bench" => bench::main(arguments),
        "check" => check::main(arguments),
        "crashtest" => crashtest::main(arguments),
        "lincheck" => lincheck::main(arguments),
        "hostile" => hostile::main(arguments),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command '{other}'\n\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("accord: {message}");
            ExitCode::from(2)
        }
    }
}
