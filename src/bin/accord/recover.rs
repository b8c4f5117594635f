//! `accord recover`: rebuilds a working cluster from the members that survived the loss of
//! a majority.

use std::path::PathBuf;
use std::process::ExitCode;

use accord::core::raft::Storage;
use accord::runtime::members::encode_addresses;
use accord::runtime::storage::{StorageOptions, WalStorage};
use accord::types::ConfState;

use crate::args::Args;
use crate::server::parse_members;

const HELP: &str = "\
usage: accord recover --data-dir D --voters ID=ADDR[,ID=ADDR...] --confirm

For a cluster that lost a majority of its voters for good (hosts gone, disks gone): a
cluster without a quorum can neither write nor elect a leader, and waiting will not help.
Run this on every surviving member, stopped, with the same --voters (the survivors): it
appends to the member's log a membership made of those voters alone. Start the survivors
again; they elect a leader among themselves and serve. Add new members afterwards with
`accord server --join`.

What may be lost: writes the lost members had committed but that no survivor received. The
survivor with the most up-to-date log wins the first election, and the others take its log.
Never run this while the lost members may come back: they would form a second cluster.

Without --confirm nothing is written; the command says what it would do.
Exit status: 0 done (or would be done); 2 bad arguments; 3 damaged data directory;
4 locked (the member is running: stop it first).
";

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help", "confirm"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let dir: PathBuf = args.get_opt("data-dir")?.ok_or("--data-dir is required")?;
    let voters: String = args.get_opt("voters")?.ok_or("--voters is required")?;
    let confirm = args.flag("confirm");
    args.finish()?;
    let addresses = parse_members(&voters)?;
    let conf = ConfState::with_voters(&addresses.keys().copied().collect::<Vec<_>>());
    conf.validate().map_err(|why| format!("--voters: {why}"))?;
    if !WalStorage::holds_a_member(&dir) {
        return Err(format!("{} holds no member's data", dir.display()));
    }
    let (mut storage, _) = match WalStorage::open(&dir, &StorageOptions::new(&[])) {
        Ok(opened) => opened,
        Err(error) => {
            eprintln!("accord: {error}");
            return Ok(ExitCode::from(error.exit_code()));
        }
    };
    let hard_state = storage.hard_state();
    println!(
        "data dir {}: log up to index {} (term {}), commit {}",
        dir.display(),
        storage.last_index(),
        hard_state.term,
        hard_state.commit
    );
    println!("new membership: {conf}");
    println!(
        "writes committed by the lost members after index {} may be lost",
        hard_state.commit
    );
    if !confirm {
        println!("nothing written: run again with --confirm to do it");
        return Ok(ExitCode::SUCCESS);
    }
    let index = storage
        .append_recovery_membership(&conf, &encode_addresses(&addresses))
        .map_err(|e| format!("writing the new membership: {e}"))?;
    println!(
        "written at index {index}: start the survivors ({}) again",
        addresses
            .keys()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
