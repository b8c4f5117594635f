//! Membership changes on real `accord server` processes: growing a cluster from three
//! members to five and shrinking it back while a client writes, and replacing a member whose
//! data was lost.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord::api::{Client, ClientConfig, MembershipView};
use accord::local_cluster::LocalCluster;
use accord::types::NodeId;

const SERVER_ARGS: &[&str] = &["--tick-ms", "20"];
const WAIT: Duration = Duration::from_secs(30);

fn start(nodes: usize, name: &str) -> LocalCluster {
    let binary = Path::new(env!("CARGO_BIN_EXE_accord"));
    LocalCluster::start(binary, nodes, name, SERVER_ARGS).expect("starting the cluster")
}

fn client_of(endpoints: Vec<String>) -> Client {
    Client::connect(ClientConfig::new(endpoints)).unwrap()
}

/// Waits until the cluster's voters are exactly `voters` (sorted), with no learner and no
/// change in progress; returns the membership then.
fn wait_for_voters(cluster: &LocalCluster, voters: &[NodeId]) -> MembershipView {
    let client = cluster.client().unwrap();
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(view) = client.member_list() {
            let mut have = view.conf.voters.clone();
            have.sort_unstable();
            if have == voters && view.conf.learners.is_empty() && !view.pending {
                return view;
            }
            last = Some(view);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the voters never became {voters:?}; last seen {last:?}");
}

/// A client writing `w{i}` keys until stopped; remembers which writes were acknowledged and
/// how many calls failed (after the client's own retries).
struct Writer {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<u64>>>,
    errors: Arc<Mutex<Vec<String>>>,
    thread: std::thread::JoinHandle<()>,
}

fn start_writer(endpoints: Vec<String>) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (s, a, e) = (stop.clone(), acknowledged.clone(), errors.clone());
    let thread = std::thread::spawn(move || {
        let client = client_of(endpoints);
        let mut i = 0u64;
        while !s.load(Ordering::SeqCst) {
            match client.put(format!("w{i:06}").as_bytes(), b"x") {
                Ok(_) => a.lock().unwrap().push(i),
                Err(error) => e.lock().unwrap().push(error.to_string()),
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    Writer {
        stop,
        acknowledged,
        errors,
        thread,
    }
}

impl Writer {
    /// Stops writing; returns (acknowledged writes, failed calls).
    fn finish(self) -> (Vec<u64>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        let errors = self.errors.lock().unwrap().clone();
        (acknowledged, errors)
    }
}

/// Every acknowledged write is there.
fn check_writes(client: &Client, acknowledged: &[u64]) {
    let (found, more, _) = client.range(b"w", 0).unwrap();
    assert!(!more || found.len() >= acknowledged.len());
    let keys: std::collections::BTreeSet<Vec<u8>> = found.into_iter().map(|kv| kv.key).collect();
    for i in acknowledged {
        assert!(
            keys.contains(format!("w{i:06}").as_bytes()),
            "acknowledged write w{i:06} is missing"
        );
    }
}

#[test]
fn growing_from_three_members_to_five_and_back_under_writes_loses_nothing() {
    let mut cluster = start(3, "grow-shrink");
    cluster.wait_for_leader(None, WAIT).unwrap();
    let writer = start_writer(cluster.endpoints());

    // Grow: two members join as learners and are promoted once they have caught up.
    cluster.join(4, &[]).unwrap();
    wait_for_voters(&cluster, &[1, 2, 3, 4]);
    cluster.join(5, &[]).unwrap();
    let view = wait_for_voters(&cluster, &[1, 2, 3, 4, 5]);
    assert_eq!(view.addresses.len(), 5, "{view:?}");

    // Leadership moves to a new member on request.
    let client = cluster.client().unwrap();
    let view = client.transfer_leader(5).unwrap();
    assert_eq!(view.leader, 5, "{view:?}");
    assert_eq!(cluster.wait_for_leader(None, WAIT).unwrap().0, 5);

    // Shrink: remove the leader (it hands over) and the other new member.
    let (leader, _) = cluster.wait_for_leader(None, WAIT).unwrap();
    client.member_remove(leader).unwrap();
    client.member_remove(4).unwrap();
    let remaining: Vec<NodeId> = [1, 2, 3, 5]
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    wait_for_voters(&cluster, &remaining);
    // A removed member that keeps running retries; the others say so once, not each time.
    std::thread::sleep(Duration::from_secs(2));
    for &id in &remaining {
        let log = std::fs::read_to_string(cluster.dir().join(format!("node{id}.log"))).unwrap();
        let repeats = log
            .lines()
            .filter(|l| l.contains("from 4:") || l.contains("node 4 is not a member"))
            .count();
        assert!(
            repeats <= 3,
            "member {id} logged {repeats} warnings about node 4:\n{log}"
        );
    }
    cluster.forget(leader);
    cluster.forget(4);
    let (new_leader, _) = cluster.wait_for_leader(None, WAIT).unwrap();
    assert!(remaining.contains(&new_leader));

    std::thread::sleep(Duration::from_millis(300));
    let (acknowledged, errors) = writer.finish();
    assert!(
        acknowledged.len() > 50,
        "only {} writes",
        acknowledged.len()
    );
    assert!(
        errors.is_empty(),
        "writes failed beyond the client's retries: {errors:?}"
    );
    check_writes(&cluster.client().unwrap(), &acknowledged);
    // The removed members are not members any more: a change naming them is refused.
    let client = cluster.client().unwrap();
    assert!(client.member_promote(4).is_err());
}

#[test]
fn a_member_whose_data_was_lost_is_replaced_by_a_new_one() {
    // Snapshots every 50 entries and a short log behind them: the new member catches up by
    // snapshot.
    let binary = Path::new(env!("CARGO_BIN_EXE_accord"));
    let args = [
        "--tick-ms",
        "20",
        "--snapshot-entries",
        "50",
        "--compaction-margin",
        "10",
    ];
    let mut cluster = LocalCluster::start(binary, 3, "replace", &args).unwrap();
    cluster.wait_for_leader(None, WAIT).unwrap();
    let client = cluster.client().unwrap();
    for i in 0..100 {
        client.put(format!("r{i}").as_bytes(), b"v").unwrap();
    }
    // Member 3's disk is gone: the leader reports it suspected down, and its lag grows.
    cluster.kill(3);
    std::fs::remove_dir_all(cluster.data_dir(3)).unwrap();
    let client = cluster.client().unwrap();
    for i in 0..10 {
        client
            .put(format!("lag{i}").as_bytes(), b"0123456789")
            .unwrap();
    }
    let (leader, _) = cluster.wait_for_leader(None, WAIT).unwrap();
    let health = |id: NodeId| {
        let address = cluster.address(leader).unwrap().to_string();
        let status = client.status_of(&address).unwrap();
        status.members.into_iter().find(|m| m.id == id).unwrap()
    };
    let deadline = Instant::now() + WAIT;
    while !health(3).suspect {
        assert!(
            Instant::now() < deadline,
            "member 3 never suspected: {:?}",
            health(3)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let down = health(3);
    assert!(down.lag_entries >= 10 && down.lag_bytes >= 100, "{down:?}");
    let other = if leader == 1 { 2 } else { 1 };
    let up = health(other);
    assert!(!up.suspect && up.contact_ms < 1000, "{up:?}");
    client.member_remove(3).unwrap();
    cluster.forget(3);
    cluster.join(4, &[]).unwrap();
    wait_for_voters(&cluster, &[1, 2, 4]);
    // The new member holds everything: read it there without asking the leader.
    let replacement = cluster.client_of(4).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (found, _, _) = replacement.range(b"r", 0).unwrap();
        if found.len() == 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member 4 has {} keys",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Any one member may now fail: the new one counts toward the quorum.
    let (leader, _) = cluster.wait_for_leader(None, WAIT).unwrap();
    let victim = if leader == 1 { 2 } else { 1 };
    cluster.kill(victim);
    client_of(cluster.endpoints())
        .put(b"after", b"replacement")
        .unwrap();
}

/// Acknowledged writes, when each was acknowledged, and the errors of failed ones.
type WriteLog = (Vec<u64>, Vec<Instant>, Vec<String>);

/// The longest gap between consecutive acknowledged writes (the time writes were
/// unavailable), from the writer's timestamps.
fn longest_gap(times: &[Instant]) -> Duration {
    times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

#[test]
fn a_rolling_restart_of_every_member_under_writes_loses_nothing() {
    let mut cluster = start(3, "rolling");
    cluster.wait_for_leader(None, WAIT).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<WriteLog>> = Arc::default();
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        let client = client_of(cluster.endpoints());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let result = client.put(format!("roll{i:06}").as_bytes(), b"x");
                let mut log = log.lock().unwrap();
                match result {
                    Ok(_) => {
                        log.0.push(i);
                        log.1.push(Instant::now());
                    }
                    Err(error) => log.2.push(error.to_string()),
                }
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // One member at a time: stop it, wait, start it again, and wait until it has caught up.
    for id in cluster.ids() {
        cluster.kill(id);
        std::thread::sleep(Duration::from_millis(300));
        cluster.spawn(id).unwrap();
        let target = cluster.client().unwrap().status().unwrap().commit;
        let member = cluster.client_of(id).unwrap();
        let deadline = Instant::now() + WAIT;
        while member
            .status_of(&cluster.address(id).unwrap().to_string())
            .map_or(0, |s| s.applied)
            < target
        {
            assert!(Instant::now() < deadline, "member {id} never caught up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let (acknowledged, times, errors) = log.lock().unwrap().clone();
    println!(
        "rolling restart: writes={} errors={} longest_unavailable_ms={}",
        acknowledged.len(),
        errors.len(),
        longest_gap(&times).as_millis()
    );
    assert!(
        errors.is_empty(),
        "writes failed beyond retries: {errors:?}"
    );
    let client = cluster.client().unwrap();
    let (found, _, _) = client.range(b"roll", 0).unwrap();
    let keys: std::collections::BTreeSet<Vec<u8>> = found.into_iter().map(|kv| kv.key).collect();
    for i in &acknowledged {
        assert!(
            keys.contains(format!("roll{i:06}").as_bytes()),
            "roll{i:06} lost"
        );
    }
}

#[test]
fn a_survivor_of_a_lost_majority_is_rebuilt_into_a_working_cluster() {
    let mut cluster = start(3, "recover");
    cluster.wait_for_leader(None, WAIT).unwrap();
    let client = cluster.client().unwrap();
    for i in 0..50 {
        client.put(format!("s{i}").as_bytes(), b"v").unwrap();
    }
    // Members 1 and 2 are gone for good; member 3 alone cannot write.
    cluster.forget(1);
    cluster.forget(2);
    let alone = Client::connect(ClientConfig {
        timeout: Duration::from_millis(1500),
        ..ClientConfig::new(cluster.endpoints())
    })
    .unwrap();
    assert!(alone.put(b"without", b"quorum").is_err());
    cluster.kill(3);
    let binary = env!("CARGO_BIN_EXE_accord");
    let voters = format!("3={}", cluster.address(3).unwrap());
    let recover = |confirm: bool| {
        let mut command = std::process::Command::new(binary);
        command
            .arg("recover")
            .arg("--data-dir")
            .arg(cluster.data_dir(3));
        command.args(["--voters", &voters]);
        if confirm {
            command.arg("--confirm");
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let dry_run = recover(false);
    assert!(
        dry_run.contains("may be lost") && dry_run.contains("nothing written"),
        "{dry_run}"
    );
    let done = recover(true);
    assert!(done.contains("written at index"), "{done}");
    cluster.spawn(3).unwrap();
    let client = client_of(cluster.endpoints());
    client.put(b"after", b"recovery").unwrap();
    let (found, _, _) = client.range(b"s", 0).unwrap();
    assert_eq!(found.len(), 50, "the survivor's data");
    let view = client.member_list().unwrap();
    assert_eq!(view.conf.voters, vec![3]);
    // A running member's data directory is refused (locked).
    let locked = std::process::Command::new(binary)
        .arg("recover")
        .arg("--data-dir")
        .arg(cluster.data_dir(3))
        .args(["--voters", &voters, "--confirm"])
        .output()
        .unwrap();
    assert_eq!(locked.status.code(), Some(4), "{locked:?}");
}

/// Server processes started by hand, killed when dropped.
struct Servers(Vec<std::process::Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_snapshot_saved_from_a_live_cluster_seeds_a_new_one() {
    let cluster = start(3, "backup");
    cluster.wait_for_leader(None, WAIT).unwrap();
    let client = cluster.client().unwrap();
    for i in 0..200 {
        client.put(format!("b{i:03}").as_bytes(), b"v").unwrap();
    }
    client.add(b"jobs", 42).unwrap();
    let binary = env!("CARGO_BIN_EXE_accord");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(binary)
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    };
    let file = cluster.dir().join("backup.snap");
    let endpoints = cluster.endpoints().join(",");
    let (code, text) = run(&[
        "snapshot",
        "save",
        file.to_str().unwrap(),
        "--endpoints",
        &endpoints,
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("checksum verified"), "{text}");
    // A damaged copy is refused before anything is written.
    let damaged = cluster.dir().join("damaged.snap");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&damaged, &bytes).unwrap();
    let scratch = cluster.dir().join("scratch");
    let (code, text) = run(&[
        "snapshot",
        "restore",
        damaged.to_str().unwrap(),
        "--data-dir",
        scratch.to_str().unwrap(),
        "--voters",
        "1=127.0.0.1:1",
    ]);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("checksum"), "{text}");
    // A new cluster of three, on new ports, from the saved file.
    let ports: Vec<String> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let voters: Vec<String> = (0..3).map(|i| format!("{}={}", i + 1, ports[i])).collect();
    let voters = voters.join(",");
    let mut servers = Servers(Vec::new());
    for (i, port) in ports.iter().enumerate() {
        let dir = cluster.dir().join(format!("restored{}", i + 1));
        let (code, text) = run(&[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            dir.to_str().unwrap(),
            "--voters",
            &voters,
        ]);
        assert_eq!(code, Some(0), "{text}");
        let child = std::process::Command::new(binary)
            .args([
                "server",
                "--plaintext",
                "--id",
                &(i + 1).to_string(),
                "--listen",
                port,
            ])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--tick-ms", "20"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        servers.0.push(child);
    }
    let restored = client_of(ports.clone());
    let (found, _, _) = restored.range(b"b", 0).unwrap();
    assert_eq!(found.len(), 200);
    assert_eq!(restored.counter(b"jobs").unwrap(), 42);
    restored.put(b"new", b"cluster").unwrap();
    assert_eq!(restored.member_list().unwrap().conf.voters.len(), 3);
    drop(servers);
}

#[test]
fn a_leader_whose_disk_stalls_hands_leadership_over() {
    // Servers started from here on honour the slow-disk failpoint file in their data dir.
    std::env::set_var("ACCORD_FAILPOINTS", "1");
    let cluster = start(3, "slow-disk");
    let (slow, _) = cluster.wait_for_leader(None, WAIT).unwrap();
    let client = cluster.client().unwrap();
    client.put(b"before", b"stall").unwrap();
    // The leader's durable writes now take 600 ms, three times the election timeout.
    let failpoint = cluster
        .data_dir(slow)
        .join(accord::runtime::node::FSYNC_DELAY_FAILPOINT_FILE);
    std::fs::write(&failpoint, "600").unwrap();
    client.put(b"during", b"stall").unwrap();
    let deadline = Instant::now() + WAIT;
    let leader = loop {
        let (leader, _) = cluster.wait_for_leader(None, WAIT).unwrap();
        if leader != slow {
            break leader;
        }
        assert!(
            Instant::now() < deadline,
            "the stalling leader kept its seat"
        );
        let _ = client.put(b"during", b"stall");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::fs::remove_file(&failpoint).unwrap();
    client.put(b"after", b"stall").unwrap();
    assert_ne!(leader, slow);
    let log = std::fs::read_to_string(cluster.dir().join(format!("node{slow}.log"))).unwrap();
    assert!(log.contains("the disk stalls"), "{log}");
}

#[test]
fn over_its_disk_quota_a_member_refuses_writes_then_resumes_by_itself() {
    let binary = Path::new(env!("CARGO_BIN_EXE_accord"));
    let args = [
        "--tick-ms",
        "20",
        "--disk-quota-mb",
        "20",
        "--snapshot-entries",
        "1000000",
    ];
    let cluster = LocalCluster::start(binary, 1, "quota", &args).unwrap();
    cluster.wait_for_leader(None, WAIT).unwrap();
    let client = cluster.client().unwrap();
    let value = vec![7u8; 60 * 1024];
    let deadline = Instant::now() + Duration::from_secs(60);
    // The log grows (the same few keys are overwritten) until the quota is reached.
    let mut i = 0u64;
    let refusal = loop {
        assert!(Instant::now() < deadline, "no write was refused after {i}");
        match client.put(format!("q{}", i % 5).as_bytes(), &value) {
            Ok(_) => i += 1,
            Err(error) => break error.to_string(),
        }
    };
    assert!(refusal.contains("disk quota"), "{refusal}");
    // Reads and deletes still work; a snapshot and compaction free the log, and writes
    // resume without anyone doing anything.
    client.get(b"q0").unwrap();
    client.delete(b"q4").unwrap();
    let resumed = loop {
        assert!(Instant::now() < deadline, "writes never resumed");
        if client.put(b"after", b"quota").is_ok() {
            break true;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(resumed);
    let log = std::fs::read_to_string(cluster.dir().join("node1.log")).unwrap();
    assert!(
        log.contains("over its disk quota") && log.contains("back under"),
        "{log}"
    );
}
