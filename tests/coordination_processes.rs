//! Lock holders in real processes against a cluster of `accord server` processes: a holder
//! stopped (SIGSTOP) past its session's TTL loses the lock to another process, learns it
//! when it resumes, and its fenced write is refused by the cluster; `accord lock` does the
//! same for the command it runs.
//!
//! The first test's holder is this test binary run again: the child is started with
//! `ACCORD_TEST_ROLE=holder` and `--exact holder_process_entry`, so it runs only
//! [`holder_process_entry`], which in a normal run (no role in the environment) does nothing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use accord::api::{Client, ClientConfig, Compare, Condition, Op, Session};
use accord::local_cluster::LocalCluster;

/// Fast ticks so elections take a few hundred milliseconds.
const SERVER_ARGS: &[&str] = &["--tick-ms", "20"];
const LEADER_WAIT: Duration = Duration::from_secs(15);
/// The stopped holder's session TTL, and how long it stays stopped (well past the TTL).
const HOLDER_TTL: Duration = Duration::from_secs(2);
const STOPPED_FOR: Duration = Duration::from_secs(5);

const ROLE_VAR: &str = "ACCORD_TEST_ROLE";
const ENDPOINTS_VAR: &str = "ACCORD_TEST_ENDPOINTS";
const LOG_VAR: &str = "ACCORD_TEST_LOG";
const ENTRY_TEST: &str = "holder_process_entry";

fn start(nodes: usize, name: &str) -> LocalCluster {
    let binary = Path::new(env!("CARGO_BIN_EXE_accord"));
    LocalCluster::start(binary, nodes, name, SERVER_ARGS).expect("starting the cluster")
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// A scratch directory unique to this test process and test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("accord-{name}-scratch-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: a signal to a process this test started; no memory is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Child processes (and stray pids) killed and reaped when the test ends, however it ends.
struct Reaper {
    children: Vec<Child>,
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
}

impl Reaper {
    fn new(dir: &Path) -> Reaper {
        Reaper {
            children: Vec::new(),
            pids: Vec::new(),
            dirs: vec![dir.to_path_buf()],
        }
    }

    fn child(&mut self, index: usize) -> &mut Child {
        &mut self.children[index]
    }

    /// Waits up to `timeout` for child `index` to exit.
    fn wait_exit(&mut self, index: usize, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        // Bounded by the deadline.
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.children[index].try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for &pid in &self.pids {
            if process_running(pid) {
                signal(pid, libc::SIGKILL);
            }
        }
        for child in &mut self.children {
            // SIGKILL works on a stopped process too.
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            for dir in &self.dirs {
                let _ = fs::remove_dir_all(dir);
            }
        }
    }
}

/// Whether `pid` is a live (not zombie) process.
fn process_running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Waits up to `timeout` for `path` to hold a complete line; returns the file's text.
fn wait_for_line(path: &Path, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    // Bounded by the deadline.
    while Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(path) {
            if text.contains('\n') {
                return Some(text);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn fenced_put(
    client: &Client,
    lock: &[u8],
    token: u64,
    value: String,
) -> accord::Result<(bool, u64)> {
    client.txn(
        vec![Condition {
            key: lock.to_vec(),
            compare: Compare::LockToken(token),
        }],
        vec![Op::Put {
            key: b"data".to_vec(),
            value: value.into_bytes(),
        }],
        vec![],
    )
}

// ----- the holder process -----

/// The entry point of the holder process; in a normal test run (no role set) it does nothing.
#[test]
fn holder_process_entry() {
    if std::env::var(ROLE_VAR).as_deref() != Ok("holder") {
        return;
    }
    let endpoints: Vec<String> = std::env::var(ENDPOINTS_VAR)
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    let log_path = PathBuf::from(std::env::var(LOG_VAR).unwrap());
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let mut say = |line: String| {
        log.write_all(format!("{} {line}\n", now_ms()).as_bytes())
            .unwrap();
        log.flush().unwrap();
    };
    run_holder(endpoints, &mut say);
    std::process::exit(0);
}

/// Log lines (each prefixed with the wall-clock time in ms):
/// `TOKEN t`, then `ITER checked=MS held=true status=S write=ok|rejected rev=R` (or
/// `write=error E`), where MS is just before `is_held()` said true,
/// then `LOST reason=...`, `FINAL write=...` and `FENCED_WRITE_REJECTED` if it was, `EXIT`.
fn run_holder(endpoints: Vec<String>, say: &mut dyn FnMut(String)) {
    let session = Session::create(ClientConfig::new(endpoints), HOLDER_TTL).unwrap();
    let lock = session.lock(b"resource", Duration::from_secs(10)).unwrap();
    let token = lock.token();
    say(format!("TOKEN {token}"));
    let client = session.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Bounded by the deadline.
    while Instant::now() < deadline {
        // Read before the check, so that a stop between the two cannot date it later.
        let checked = now_ms();
        if !lock.is_held() {
            say(format!(
                "LOST status={:?} reason={}",
                session.status(),
                session.lost_reason()
            ));
            let written = fenced_put(client, b"resource", token, format!("holder-{token}"));
            match written {
                Ok((false, revision)) => {
                    say(format!("FINAL write=rejected rev={revision}"));
                    say("FENCED_WRITE_REJECTED".into());
                }
                Ok((true, revision)) => say(format!("FINAL write=ok rev={revision}")),
                Err(error) => say(format!("FINAL write=error {error}")),
            }
            say("EXIT".into());
            return;
        }
        let status = session.status();
        let written = fenced_put(client, b"resource", token, format!("holder-{token}"));
        let outcome = match written {
            Ok((true, revision)) => format!("write=ok rev={revision}"),
            Ok((false, revision)) => format!("write=rejected rev={revision}"),
            Err(error) => format!("write=error {error}"),
        };
        say(format!(
            "ITER checked={checked} held=true status={status:?} {outcome}"
        ));
        std::thread::sleep(Duration::from_millis(50));
    }
    say("TIMEOUT the lock was never lost".into());
}

// ----- the tests -----

#[test]
fn a_stopped_holder_past_its_ttl_loses_the_lock_is_told_and_its_fenced_write_is_rejected() {
    let started = Instant::now();
    let cluster = start(3, "coord-stopped-holder");
    cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let dir = scratch("coord-stopped-holder");
    let log_path = dir.join("holder.log");
    let mut reaper = Reaper::new(&dir);
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", ENTRY_TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, "holder")
        .env(ENDPOINTS_VAR, cluster.endpoints().join(","))
        .env(LOG_VAR, &log_path)
        .stdout(fs::File::create(dir.join("holder.stdout")).unwrap())
        .stderr(fs::File::create(dir.join("holder.stderr")).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    reaper.children.push(child);
    let diagnostics = |dir: &Path| {
        let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap_or_default();
        format!(
            "holder log:\n{}\nholder stdout:\n{}\nholder stderr:\n{}",
            read("holder.log"),
            read("holder.stdout"),
            read("holder.stderr")
        )
    };

    let text = wait_for_line(&log_path, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the holder did not take the lock\n{}", diagnostics(&dir)));
    let first_token: u64 = text
        .lines()
        .next()
        .and_then(|l| l.split_once("TOKEN "))
        .and_then(|(_, t)| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no token logged\n{}", diagnostics(&dir)));
    // Let it do a few fenced writes while it surely holds the lock.
    std::thread::sleep(Duration::from_millis(300));

    signal(pid, libc::SIGSTOP);
    let stopped_at = Instant::now();
    let second = Session::create(
        ClientConfig::new(cluster.endpoints()),
        Duration::from_secs(10),
    )
    .unwrap();
    let lock = second
        .lock(b"resource", Duration::from_secs(15))
        .expect("the stopped holder's session did not expire");
    let waited = stopped_at.elapsed();
    let granted_ms = now_ms();
    let second_token = lock.token();
    assert!(
        second_token > first_token,
        "token {second_token} after token {first_token}"
    );
    // The holder's last keepalive was at most TTL / 3 before the stop, so its session
    // cannot expire sooner than about 2/3 of the TTL after it (half, to allow for ticks).
    assert!(
        waited >= HOLDER_TTL / 2,
        "the lock was granted {waited:?} after the holder stopped, before its TTL could run out"
    );
    let (written, _) = fenced_put(
        second.client(),
        b"resource",
        second_token,
        format!("second-{second_token}"),
    )
    .unwrap();
    assert!(written, "the new holder's fenced write was rejected");
    if let Some(left) = STOPPED_FOR.checked_sub(stopped_at.elapsed()) {
        std::thread::sleep(left);
    }
    assert!(
        reaper.child(0).try_wait().unwrap().is_none(),
        "the holder exited while stopped\n{}",
        diagnostics(&dir)
    );
    signal(pid, libc::SIGCONT);

    let status = reaper.wait_exit(0, Duration::from_secs(20));
    let report = diagnostics(&dir);
    assert!(
        status.is_some_and(|s| s.success()),
        "the holder did not exit cleanly after resuming ({status:?})\n{report}"
    );
    let log = fs::read_to_string(&log_path).unwrap();
    let lost = log
        .lines()
        .find(|l| l.contains(" LOST "))
        .unwrap_or_else(|| panic!("the holder was not told it lost the lock\n{report}"));
    assert!(
        lost.contains("status=Lost") && !lost.trim_end().ends_with("reason="),
        "{report}"
    );
    assert!(
        log.contains("FENCED_WRITE_REJECTED"),
        "the deposed holder's fenced write was not rejected\n{report}"
    );
    // No fenced write of the first holder landed at or after the second grant.
    for line in log.lines().filter(|l| l.contains("write=ok")) {
        let revision: u64 = line
            .rsplit_once("rev=")
            .and_then(|(_, r)| r.trim().parse().ok())
            .unwrap();
        assert!(
            revision < second_token,
            "a deposed holder's write landed at revision {revision}, after the grant at \
             {second_token}: {line}\n{report}"
        );
    }
    // Resumed, it believed the lock held no more (no `is_held()` true after the new grant).
    for line in log.lines().filter(|l| l.contains("ITER checked=")) {
        let checked: u128 = line
            .split_once("checked=")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|c| c.parse().ok())
            .unwrap();
        assert!(
            checked < granted_ms,
            "the deposed holder believed it held the lock at {checked}, after the new grant \
             (by {granted_ms}): {line}\n{report}"
        );
    }
    let successes = log.lines().filter(|l| l.contains("write=ok")).count();
    assert!(
        successes > 0,
        "the holder never wrote while holding\n{report}"
    );
    let (value, _) = second.client().get(b"data").unwrap();
    assert_eq!(
        String::from_utf8(value.unwrap().value).unwrap(),
        format!("second-{second_token}"),
        "the deposed holder's write landed\n{report}"
    );
    lock.release().unwrap();
    second.close().unwrap();
    eprintln!(
        "stopped holder: token {first_token} → {second_token}, new grant {waited:?} after the \
         stop, {successes} fenced writes before it, {:?} in all; after resuming:\n{}",
        started.elapsed(),
        log.lines()
            .skip_while(|l| !l.contains(" LOST "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn accord_lock_stopped_past_its_ttl_exits_1_and_stops_its_command() {
    let started = Instant::now();
    let cluster = start(3, "coord-cli-lock");
    cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let dir = scratch("coord-cli-lock");
    let token_path = dir.join("token");
    let pid_path = dir.join("pid");
    let stderr_path = dir.join("accord.stderr");
    let mut reaper = Reaper::new(&dir);
    let script = format!(
        "echo $$ > {}; echo $ACCORD_FENCING_TOKEN > {}; exec sleep 30",
        pid_path.display(),
        token_path.display()
    );
    let child = Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(["lock", "cli-resource", "--ttl-ms", "2000", "--endpoints"])
        .arg(cluster.endpoints().join(","))
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    reaper.children.push(child);
    let stderr = || fs::read_to_string(&stderr_path).unwrap_or_default();

    let token_text = wait_for_line(&token_path, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the command did not run under the lock\n{}", stderr()));
    let first_token: u64 = token_text.trim().parse().unwrap();
    let command_pid: u32 = wait_for_line(&pid_path, Duration::from_secs(5))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    reaper.pids.push(command_pid);
    assert!(process_running(command_pid));

    // Stop `accord lock` only: its command keeps running, but the session is not kept alive.
    signal(pid, libc::SIGSTOP);
    let stopped_at = Instant::now();
    let session = Session::create(
        ClientConfig::new(cluster.endpoints()),
        Duration::from_secs(10),
    )
    .unwrap();
    let lock = session
        .lock(b"cli-resource", Duration::from_secs(15))
        .expect("the stopped accord lock's session did not expire");
    assert!(lock.token() > first_token);
    if let Some(left) = STOPPED_FOR.checked_sub(stopped_at.elapsed()) {
        std::thread::sleep(left);
    }
    assert!(
        reaper.child(0).try_wait().unwrap().is_none(),
        "accord lock exited while stopped\n{}",
        stderr()
    );
    signal(pid, libc::SIGCONT);
    let resumed_at = Instant::now();

    let status = reaper.wait_exit(0, Duration::from_secs(10));
    let exited_after = resumed_at.elapsed();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "accord lock did not exit 1 after losing the lock\n{}",
        stderr()
    );
    assert!(
        stderr().contains("lost the lock"),
        "accord lock did not say it lost the lock:\n{}",
        stderr()
    );
    assert!(
        !process_running(command_pid),
        "the command (pid {command_pid}) still runs after accord lock lost the lock"
    );
    lock.release().unwrap();
    session.close().unwrap();
    eprintln!(
        "accord lock: exited 1 {exited_after:?} after resuming, {:?} in all",
        started.elapsed()
    );
}
