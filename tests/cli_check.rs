//! `accord check` on a damaged data directory: the operator's message, the exit status, and
//! the documented repair (move the directory aside, start empty).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use accord::runtime::storage::{StorageOptions, WalStorage};
use accord::types::{Entry, EntryKind, Payload};

fn accord(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(args)
        .output()
        .expect("running accord");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

fn populated(path: &Path) -> WalStorage {
    let _ = fs::remove_dir_all(path);
    let options = StorageOptions {
        segment_bytes: 4096,
        ..StorageOptions::new(&[1])
    };
    let (mut storage, _) = WalStorage::open(path, &options).unwrap();
    for index in 1..=40 {
        let entry = Entry {
            term: 1,
            index,
            kind: EntryKind::Normal,
            data: Payload::from(vec![index as u8; 100]),
        };
        storage.append(&[entry], None).unwrap();
    }
    storage
}

#[test]
fn check_reports_corruption_with_exit_status_3_the_repair_and_the_lock_holder() {
    let root = std::env::temp_dir().join(format!("accord-check-{}", std::process::id()));
    let data = root.join("data");
    drop(populated(&data));
    let (status, text) = accord(&["check", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(status, 0, "{text}");
    assert!(text.contains("log 1..=40"), "{text}");
    let first: PathBuf = fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .min()
        .unwrap();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&first)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 300).unwrap();
    file.write_all_at(&[byte[0] ^ 1], 300).unwrap();
    drop(file);
    let (status, text) = accord(&["check", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(status, 3, "{text}");
    assert!(
        text.contains("corruption in") && text.contains("at byte"),
        "{text}"
    );
    assert!(text.contains("move its data directory aside"), "{text}");
    // The documented repair: move the directory aside; the node starts empty and
    // re-replicates from the other members (exercised in the simulator).
    fs::rename(&data, root.join("data.damaged")).unwrap();
    fs::create_dir(&data).unwrap();
    let (status, text) = accord(&["check", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(status, 0, "{text}");
    fs::remove_dir_all(&root).unwrap();
    check_on_a_locked_directory_names_the_holder_with_exit_status_4();
}

/// Runs inside the test above: tests of one binary run in parallel threads, and a child
/// forked by one test briefly holds every descriptor of the others (until it execs), locks
/// included — so the two scenarios that take and check the lock run one after the other.
fn check_on_a_locked_directory_names_the_holder_with_exit_status_4() {
    let data = std::env::temp_dir().join(format!("accord-check-lock-{}", std::process::id()));
    let _held = populated(&data);
    let (status, text) = accord(&["check", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(status, 4, "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    fs::remove_dir_all(&data).unwrap();
}
