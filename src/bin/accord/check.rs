//! `accord check`: opens a data directory the way a starting node does and reports what it
//! holds, or why a node would refuse to start on it.

use std::path::PathBuf;
use std::process::ExitCode;

use accord::core::raft::Storage;
use accord::runtime::storage::{StorageOptions, WalStorage};

use crate::args::Args;

const HELP: &str = "\
usage: accord check --data-dir D

Opens the data directory D as a starting node would: takes its lock, loads the newest
snapshot, replays the write-ahead log (cutting off a torn last write, as a start would),
and reports what it holds. Exit status: 0 usable; 3 damaged (the node refuses to start:
the message names the file and byte offset, and how to repair); 4 locked by another
process or unreadable.
";

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let dir: Option<PathBuf> = args.get_opt("data-dir")?;
    args.finish()?;
    let dir = dir.ok_or("--data-dir is required")?;
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    match WalStorage::open(&dir, &StorageOptions::new(&[])) {
        Ok((storage, report)) => {
            let hard_state = storage.hard_state();
            println!(
                "data dir {}: usable; snapshot at index {}, log {}..={} ({} entries), term {} \
                 vote {} commit {}, torn tails repaired {}",
                dir.display(),
                report.snapshot_index,
                storage.first_index(),
                storage.last_index(),
                report.entries,
                hard_state.term,
                hard_state.vote,
                hard_state.commit,
                report.torn_tails_repaired
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("accord: {error}");
            Ok(ExitCode::from(error.exit_code()))
        }
    }
}
