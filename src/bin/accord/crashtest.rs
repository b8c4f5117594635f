//! `accord crashtest`: a child process appends and acknowledges records through the real WAL
//! while this process kills it with SIGKILL at random moments, restarts it, and checks that
//! every acknowledged record came back.
//!
//! The child (`accord crashtest --child`) first recovers the directory and reports
//! `recovered first=<i> last=<i> bad=<n> torn=<n>` (bad: entries whose content is not what was
//! written), then appends batches forever, printing `write <last index> <bytes>` before each
//! batch and `ack <last index>` after its fdatasync. Record contents are a function of their
//! index, so the child can verify them on recovery.
//!
//! SIGKILL alone never tears a write (the kernel keeps what `write` accepted), so half of the
//! kills that land between a `write` and its `ack` are followed by a simulated power cut: the
//! parent zeroes a random part of what was written after the last acknowledged byte (the
//! child reports, with each `ack`, the WAL file and offset where durable data ends).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use accord::core::raft::Storage;
use accord::core::rng::Rng;
use accord::runtime::storage::{StorageOptions, WalStorage};
use accord::types::{Entry, EntryKind, HardState, Payload};

use crate::args::Args;

const HELP: &str = "\
usage: accord crashtest --dir D [--cycles N] [--seed S]

Runs N kill-and-recover cycles: a child process appends records through the WAL in D and
acknowledges each batch once it is durable; this process SIGKILLs it at a random moment,
restarts it, and checks every acknowledged record is recovered intact. D is created if
missing and emptied first. --tear-acknowledged destroys acknowledged data on purpose, to
show that the check catches a loss. Ends with
  crashtest: cycles=<n> acked=<n> recovered=<n> lost=<n> torn_tails_repaired=<n>
and exits 1 if any acknowledged record was lost or came back damaged.
";

/// Small segments, so rotation and segment deletion happen often.
const SEGMENT_BYTES: u64 = 256 * 1024;

/// Longest the parent waits for the child to say anything (a hung child is a failure).
const CHILD_SILENCE_MAX: Duration = Duration::from_secs(30);

/// Cycles one run may do.
const CYCLES_MAX: u64 = 1_000_000;

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help", "child", "tear-acknowledged"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let child = args.flag("child");
    let dir: Option<PathBuf> = args.get_opt("dir")?;
    let cycles: u64 = args.get("cycles", 50)?;
    let seed: u64 = args.get("seed", 1)?;
    let tear_acknowledged = args.flag("tear-acknowledged");
    args.finish()?;
    let dir = dir.ok_or("--dir is required")?;
    if child {
        return run_child(&dir, seed);
    }
    if cycles == 0 || cycles > CYCLES_MAX {
        return Err(format!("--cycles must be between 1 and {CYCLES_MAX}"));
    }
    run_parent(&dir, cycles, seed, tear_acknowledged)
}

/// The content of the record at `index`: its index, repeated, over a length derived from it.
fn record_data(index: u64) -> Vec<u8> {
    let length = (index.wrapping_mul(7919) % 512 + 8) as usize;
    index
        .to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(length)
        .collect()
}

fn run_child(dir: &Path, seed: u64) -> Result<ExitCode, String> {
    let options = StorageOptions {
        segment_bytes: SEGMENT_BYTES,
        compaction_margin_entries: 100,
        ..StorageOptions::new(&[1])
    };
    let (mut storage, report) = WalStorage::open(dir, &options).map_err(|e| e.to_string())?;
    let (first, last) = (storage.first_index(), storage.last_index());
    let mut entries = Vec::new();
    storage
        .entries(first, last + 1, usize::MAX, &mut entries)
        .map_err(|e| e.to_string())?;
    let bad = entries
        .iter()
        .filter(|e| e.data.as_slice() != record_data(e.index))
        .count();
    let mut out = std::io::stdout().lock();
    let say = |out: &mut std::io::StdoutLock, line: String| {
        writeln!(out, "{line}").and_then(|()| out.flush())
    };
    say(
        &mut out,
        format!(
            "recovered first={first} last={last} bad={bad} torn={}",
            report.torn_tails_repaired
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut rng = Rng::new(seed);
    let mut next = last + 1;
    // Runs until killed; bounded by the parent, which always kills it.
    loop {
        let count = rng.range(1, 65);
        let batch: Vec<Entry> = (next..next + count)
            .map(|index| Entry {
                term: 1,
                index,
                kind: EntryKind::Normal,
                data: Payload::from(record_data(index)),
            })
            .collect();
        next += count;
        let bytes: usize = batch.iter().map(|e| e.data.len() + 26).sum();
        say(&mut out, format!("write {} {bytes}", next - 1)).map_err(|e| e.to_string())?;
        let hard_state = HardState {
            term: 1,
            vote: 1,
            commit: next - 1,
        };
        storage
            .append(&batch, Some(hard_state))
            .map_err(|e| e.to_string())?;
        let (segment, offset) = storage.wal_end_position();
        say(
            &mut out,
            format!("ack {} {} {offset}", next - 1, segment.display()),
        )
        .map_err(|e| e.to_string())?;
        if rng.chance(1, 20) {
            // Snapshot and compact now and then, so old segments are deleted too.
            let upto = next - 1;
            storage
                .snapshot_and_compact(upto, b"crashtest")
                .map_err(|e| e.to_string())?;
        }
    }
}

/// Totals over the run.
#[derive(Default)]
struct Totals {
    acked: u64,
    recovered: u64,
    lost: u64,
    torn: u64,
}

fn run_parent(
    dir: &Path,
    cycles: u64,
    seed: u64,
    tear_acknowledged: bool,
) -> Result<ExitCode, String> {
    let _ = std::fs::remove_dir_all(dir);
    let exe = std::env::current_exe().map_err(|e| format!("finding the accord binary: {e}"))?;
    let mut rng = Rng::new(seed);
    let mut totals = Totals::default();
    let mut acked_max = 0u64;
    let mut acked_this_cycle = 0u64;
    let mut durable_end: Option<(PathBuf, u64)> = None;
    let progress_every = (cycles / 10).max(1);
    for cycle in 1..=cycles + 1 {
        let mut child = spawn_child(&exe, dir, rng.next_u64())?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("no child stdout")?).lines();
        let first_line = read_line(&mut lines, &mut child)?;
        let (last, bad, torn) = parse_recovered(&first_line)?;
        totals.torn += torn;
        let lost_now = acked_max.saturating_sub(last);
        totals.lost += lost_now + bad;
        totals.recovered += acked_this_cycle.saturating_sub(lost_now);
        if lost_now > 0 || bad > 0 {
            eprintln!(
                "crashtest: cycle {cycle}: acknowledged through {acked_max}, recovered through \
                 {last}, {bad} damaged"
            );
        }
        if cycle > cycles {
            // The last start only checks what the previous cycle acknowledged.
            kill(&mut child);
            break;
        }
        let deadline = Instant::now() + Duration::from_micros(rng.range(500, 40_000));
        let mut watcher = CycleWatcher {
            acked_max,
            recovered_last: last,
            acked: 0,
            unacked_batch_bytes: None,
            durable_end: durable_end.clone(),
        };
        while Instant::now() < deadline {
            let line = read_line(&mut lines, &mut child)?;
            watcher.observe(&line)?;
        }
        kill(&mut child);
        // Whatever the child wrote before it died was reported to us: drain it.
        for line in lines.map_while(Result::ok) {
            watcher.observe(&line)?;
        }
        acked_max = watcher.acked_max;
        acked_this_cycle = watcher.acked;
        durable_end = watcher.durable_end.clone();
        if let Some(bytes) = watcher.unacked_batch_bytes {
            if rng.chance(1, 2) {
                let cut = rng.range(1, bytes + 1);
                tear_tail(dir, cut, durable_end.as_ref())?;
            }
        } else if tear_acknowledged {
            // Self-check: destroy acknowledged data and expect the run to report the loss.
            tear_tail(dir, 64, None)?;
        }
        totals.acked += acked_this_cycle;
        if cycle % progress_every == 0 {
            eprintln!("crashtest: {cycle}/{cycles} cycles");
        }
    }
    println!(
        "crashtest: cycles={cycles} acked={} recovered={} lost={} torn_tails_repaired={}",
        totals.acked, totals.recovered, totals.lost, totals.torn
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(if totals.lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What the parent learns from one child's lines.
struct CycleWatcher {
    acked_max: u64,
    recovered_last: u64,
    acked: u64,
    /// Size of a batch announced with `write` and not acknowledged yet.
    unacked_batch_bytes: Option<u64>,
    /// WAL file and offset where acknowledged data ends.
    durable_end: Option<(PathBuf, u64)>,
}

impl CycleWatcher {
    fn observe(&mut self, line: &str) -> Result<(), String> {
        let mut parts = line.split_whitespace();
        let number = |part: Option<&str>| part.and_then(|n| n.parse::<u64>().ok());
        match parts.next() {
            Some("write") => {
                let (_, bytes) = (number(parts.next()), number(parts.next()));
                self.unacked_batch_bytes = Some(bytes.ok_or("malformed write line")?);
            }
            Some("ack") => {
                let index = number(parts.next()).ok_or("malformed ack line")?;
                let file = parts.next().ok_or("malformed ack line")?;
                let offset = number(parts.next()).ok_or("malformed ack line")?;
                self.durable_end = Some((PathBuf::from(file), offset));
                self.acked += index.saturating_sub(self.acked_max.max(self.recovered_last));
                self.acked_max = self.acked_max.max(index);
                self.unacked_batch_bytes = None;
            }
            _ => return Err(format!("unexpected line from the child: {line}")),
        }
        Ok(())
    }
}

/// Simulates losing up to `bytes` written before a power cut: zeroes them at the end of the
/// newest WAL segment, never before `durable_end` (what was acknowledged), nor in the header
/// records of a segment created for the unacknowledged batch (they were synced before it).
fn tear_tail(dir: &Path, bytes: u64, durable_end: Option<&(PathBuf, u64)>) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let wal = dir.join("wal");
    let newest = std::fs::read_dir(&wal)
        .map_err(|e| format!("listing {}: {e}", wal.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .max()
        .ok_or("no WAL segment to tear")?;
    let data = std::fs::read(&newest).map_err(|e| e.to_string())?;
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1) as u64;
    let floor = match durable_end {
        Some((file, offset)) if *file == newest => *offset,
        Some(_) => segment_header_bytes(&data),
        None => 0, // --tear-acknowledged: no floor
    };
    let start = end.saturating_sub(bytes).max(floor);
    if start >= end {
        return Ok(());
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .map_err(|e| e.to_string())?;
    file.write_all_at(&vec![0u8; (end - start) as usize], start)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("tearing {}: {e}", newest.display()))
}

/// Bytes of the records a new segment starts with (header, hard state, snapshot base).
fn segment_header_bytes(data: &[u8]) -> u64 {
    let mut offset = 0usize;
    for _ in 0..3 {
        let Some(length) = data.get(offset..offset + 4) else {
            break;
        };
        let length = u32::from_le_bytes([length[0], length[1], length[2], length[3]]) as usize;
        offset += accord::runtime::storage::record::RECORD_HEADER_BYTES + length;
    }
    offset as u64
}

fn spawn_child(exe: &Path, dir: &Path, seed: u64) -> Result<Child, String> {
    Command::new(exe)
        .args(["crashtest", "--child", "--seed", &seed.to_string(), "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the child: {e}"))
}

fn read_line(
    lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>,
    child: &mut Child,
) -> Result<String, String> {
    // The child writes a line at least every batch; a silent child is killed by the caller's
    // deadline below, so this read is bounded by the child's own progress.
    let started = Instant::now();
    match lines.next() {
        Some(Ok(line)) => Ok(line),
        Some(Err(error)) => Err(format!("reading from the child: {error}")),
        None => {
            let status = child.wait().map_err(|e| e.to_string())?;
            if started.elapsed() > CHILD_SILENCE_MAX {
                return Err("the child went silent".into());
            }
            Err(format!("the child exited early ({status})"))
        }
    }
}

fn parse_recovered(line: &str) -> Result<(u64, u64, u64), String> {
    let field = |name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    match (field("last"), field("bad"), field("torn")) {
        (Some(last), Some(bad), Some(torn)) if line.starts_with("recovered ") => {
            Ok((last, bad, torn))
        }
        _ => Err(format!("unexpected first line from the child: {line}")),
    }
}

fn kill(child: &mut Child) {
    // SAFETY: sending a signal to our own child process; no memory is involved.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
}
