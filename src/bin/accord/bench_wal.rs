//! `accord bench wal`: what durability costs. Appends through the real WAL next to the raw
//! fdatasync latency of the same disk, measured in the same run.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use accord::runtime::storage::{StorageOptions, WalStorage};
use accord::types::{Entry, EntryKind, HardState, Payload};

use crate::args::Args;

/// Percentile `p` (0..=100) of `samples` (sorted here), in microseconds.
pub fn percentile_us(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((samples.len() as f64 - 1.0) * p / 100.0).round() as usize;
    samples.get(rank).copied().unwrap_or(0.0) * 1e6
}

/// Raw cost of durability on this disk: a small write at the end of a file, then fdatasync.
pub fn raw_fsync_p50_us(dir: &Path, count: usize) -> Result<f64, String> {
    let path = dir.join("fsync-probe");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    // Written (not sparse) space, as the WAL's segments are: the probe measures the cost of
    // making a small overwrite durable, nothing else.
    let zeros = vec![0u8; count * 160 + 4096];
    file.write_all_at(&zeros, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("preparing {}: {e}", path.display()))?;
    let block = [7u8; 160];
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let started = Instant::now();
        file.write_all_at(&block, (i * block.len()) as u64)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        samples.push(started.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_file(&path);
    Ok(percentile_us(&mut samples, 50.0))
}

struct WalRun {
    p50_us: f64,
    records_per_s: f64,
    mb_per_s: f64,
}

/// Appends `appends` batches of `batch` records of `size` bytes, each batch one fdatasync.
fn wal_run(dir: &Path, size: usize, batch: usize, appends: usize) -> Result<WalRun, String> {
    let _ = std::fs::remove_dir_all(dir);
    let (mut storage, _) =
        WalStorage::open(dir, &StorageOptions::new(&[1])).map_err(|e| e.to_string())?;
    let data = Payload::from(vec![42u8; size]);
    let mut samples = Vec::with_capacity(appends);
    let mut next = 1u64;
    let started = Instant::now();
    for _ in 0..appends {
        let entries: Vec<Entry> = (next..next + batch as u64)
            .map(|index| Entry {
                term: 1,
                index,
                kind: EntryKind::Normal,
                data: data.clone(),
            })
            .collect();
        next += batch as u64;
        let hard_state = HardState {
            term: 1,
            vote: 1,
            commit: next - 1,
        };
        let one = Instant::now();
        storage
            .append(&entries, Some(hard_state))
            .map_err(|e| e.to_string())?;
        samples.push(one.elapsed().as_secs_f64());
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(storage);
    let _ = std::fs::remove_dir_all(dir);
    let records = (appends * batch) as f64;
    Ok(WalRun {
        p50_us: percentile_us(&mut samples, 50.0),
        records_per_s: records / elapsed,
        mb_per_s: records * size as f64 / elapsed / 1e6,
    })
}

pub fn main(mut args: Args) -> Result<ExitCode, String> {
    let dir: Option<PathBuf> = args.get_opt("dir")?;
    let appends: usize = args.get("appends", 2_000)?;
    args.finish()?;
    let dir = dir.ok_or("--dir is required (a directory on the disk to measure)")?;
    if !(10..=1_000_000).contains(&appends) {
        return Err("--appends must be between 10 and 1000000".into());
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let wal_dir = dir.join("bench-wal");
    // Start from a quiet disk: flush whatever earlier work left in the page cache.
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let fsync_p50 = raw_fsync_p50_us(&dir, appends)?;
    println!("bench wal: raw small write + fdatasync p50_us={fsync_p50:.1}");
    let mut summary = (0.0, 0.0, 0.0);
    for size in [128usize, 4096] {
        let one = wal_run(&wal_dir, size, 1, appends)?;
        let many = wal_run(&wal_dir, size, 64, appends / 4)?;
        for (batch, run) in [(1, &one), (64, &many)] {
            println!(
                "bench wal: size={size}B batch={batch} p50_us={:.1} records_per_s={:.0} mb_per_s={:.1}",
                run.p50_us, run.records_per_s, run.mb_per_s
            );
        }
        if size == 128 {
            summary = (
                one.p50_us,
                many.records_per_s,
                many.records_per_s / one.records_per_s,
            );
        }
    }
    println!(
        "wal: fsync_p50_us={fsync_p50:.0} batch1_p50_us={:.0} batch1_to_fsync={:.2} batch64_records_per_s={:.0} batch64_speedup={:.1}",
        summary.0,
        summary.0 / fsync_p50,
        summary.1,
        summary.2
    );
    Ok(ExitCode::SUCCESS)
}
