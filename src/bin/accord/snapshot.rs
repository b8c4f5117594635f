//! `accord snapshot save | restore`: back up a live cluster's state, and seed a new cluster
//! from a backup.

use std::path::PathBuf;
use std::process::ExitCode;

use accord::core::state::StateMachine;
use accord::runtime::members::encode_addresses;
use accord::runtime::storage::{snapshot_file, StorageOptions, WalStorage};
use accord::types::{ConfState, Payload, Snapshot, SnapshotMeta};

use crate::args::Args;
use crate::kv::connect;
use crate::server::parse_members;

const HELP: &str = concat!("\
usage: accord snapshot save FILE [--endpoints A,B,C]
       accord snapshot restore FILE --data-dir D --voters ID=ADDR[,ID=ADDR...]

save: writes a snapshot of the cluster's replicated state (keys, sessions, locks, elections,
groups, queues, counters), consistent as of the moment the command started, to FILE. The
leader takes a fresh snapshot when its newest one is older. FILE is checksummed; the save
verifies it before renaming it into place.

restore: seeds the data directory D (new, or empty) of one member of a NEW cluster whose
voters are --voters, from FILE (its checksum verified first). Run it once per member with
the same FILE and --voters, then start each member with `accord server --id ID --listen
ADDR --data-dir D` and its TLS options (its membership comes from the directory). The new cluster continues from
the snapshot's revision; sessions in it expire after their TTL unless their clients return.

options:
  --endpoints A,B,C   (save) member addresses (default: $ACCORD_ENDPOINTS, else 127.0.0.1:7101)
  --cluster-id N      (save) the cluster's id (default 1)
  --timeout-ms N      (save) how long each call may take, retries included (default 10000)
",
    client_security_help!()
);

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    let help = args.flag("help");
    if help || args.words.len() != 2 {
        print!("{HELP}");
        return Ok(if help {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        });
    }
    let file = PathBuf::from(&args.words[1]);
    match args.words[0].as_str() {
        "save" => save(args, file),
        "restore" => restore(args, file),
        other => Err(format!("unknown snapshot command '{other}'\n\n{HELP}")),
    }
}

fn save(mut args: Args, file: PathBuf) -> Result<ExitCode, String> {
    let (client, _) = connect(&mut args)?;
    args.finish_keeping_words()?;
    let temporary = file.with_extension("partial");
    let mut out = std::io::BufWriter::new(
        // Owner-only (0600), as in a data directory: a backup holds every key and value.
        std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true),
            0o600,
        )
        .open(&temporary)
        .map_err(|e| format!("creating {}: {e}", temporary.display()))?,
    );
    let (index, bytes) = client.save_snapshot(&mut out).map_err(|e| e.to_string())?;
    let written = out
        .into_inner()
        .map_err(|e| format!("writing {}: {e}", temporary.display()))?;
    written
        .sync_all()
        .map_err(|e| format!("writing {}: {e}", temporary.display()))?;
    drop(written);
    // Verify what reached the disk before it replaces anything.
    snapshot_file::load(&temporary).map_err(|e| format!("the saved snapshot is damaged: {e}"))?;
    std::fs::rename(&temporary, &file)
        .map_err(|e| format!("renaming {} into place: {e}", temporary.display()))?;
    println!(
        "saved the snapshot at index {index} ({bytes} bytes, checksum verified) to {}",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn restore(mut args: Args, file: PathBuf) -> Result<ExitCode, String> {
    let dir: PathBuf = args.get_opt("data-dir")?.ok_or("--data-dir is required")?;
    let voters: String = args.get_opt("voters")?.ok_or("--voters is required")?;
    args.finish_keeping_words()?;
    let addresses = parse_members(&voters)?;
    let conf = ConfState::with_voters(&addresses.keys().copied().collect::<Vec<_>>());
    conf.validate().map_err(|why| format!("--voters: {why}"))?;
    let saved = snapshot_file::load(&file).map_err(|e| e.to_string())?;
    // The state remembers the old cluster's member addresses: the new cluster's replace them.
    let mut state = StateMachine::decode(saved.data.as_slice())
        .map_err(|why| format!("{}: the state does not decode: {why}", file.display()))?;
    state.apply_membership(state.applied_index(), &encode_addresses(&addresses));
    if WalStorage::holds_a_member(&dir) {
        return Err(format!(
            "{} already holds a member's data: restore into a new or empty directory",
            dir.display()
        ));
    }
    let options = StorageOptions::new(&addresses.keys().copied().collect::<Vec<_>>());
    let (mut storage, _) = match WalStorage::open(&dir, &options) {
        Ok(opened) => opened,
        Err(error) => {
            eprintln!("accord: {error}");
            return Ok(ExitCode::from(error.exit_code()));
        }
    };
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            conf: conf.clone(),
            ..saved.meta
        },
        data: Payload::from(state.encode()),
    };
    let (index, revision) = (snapshot.meta.index, state.revision());
    storage
        .seed_from_snapshot(snapshot)
        .map_err(|e| format!("seeding {}: {e}", dir.display()))?;
    println!(
        "restored the snapshot at index {index} (revision {revision}) into {} for a cluster of {conf}",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
