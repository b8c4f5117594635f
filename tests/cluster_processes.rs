//! Real `accord server` processes on loopback: failover, pauses, restarts, clients on
//! followers, a concurrent history checked for linearizability, and bad input on the socket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord::api::{Client, ClientConfig};
use accord::local_cluster::LocalCluster;
use accord::runtime::wire::{self, Caller, Frame, PROTOCOL_VERSION};
use accord::sim::history::{OpInput, OpOutput, Operation};
use accord::sim::linearizability::{self, Verdict};

/// Fast ticks so elections take a few hundred milliseconds.
const SERVER_ARGS: &[&str] = &["--tick-ms", "20"];
const LEADER_WAIT: Duration = Duration::from_secs(15);

fn start(nodes: usize, name: &str) -> LocalCluster {
    let binary = Path::new(env!("CARGO_BIN_EXE_accord"));
    LocalCluster::start(binary, nodes, name, SERVER_ARGS).expect("starting the cluster")
}

#[test]
fn killing_the_leader_elects_a_new_one_and_no_acknowledged_write_is_lost() {
    let mut cluster = start(3, "kill-leader");
    let (leader, _) = cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let client = cluster.client().unwrap();
    for i in 0..50 {
        client.put(format!("k{i}").as_bytes(), b"v").unwrap();
    }
    cluster.kill(leader);
    client.put(b"after", b"kill").unwrap();
    let (new_leader, _) = cluster.wait_for_leader(Some(leader), LEADER_WAIT).unwrap();
    assert_ne!(new_leader, leader);
    let (found, _, _) = client.range(b"k", 100).unwrap();
    assert_eq!(found.len(), 50);
}

#[test]
fn five_members_survive_two_leader_kills() {
    let mut cluster = start(5, "five");
    let client = cluster.client().unwrap();
    for round in 0..2 {
        let (leader, _) = cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
        client
            .put(format!("round{round}").as_bytes(), b"before")
            .unwrap();
        cluster.kill(leader);
        client
            .put(format!("round{round}").as_bytes(), b"after")
            .unwrap();
    }
    let (value, _) = client.get(b"round1").unwrap();
    assert_eq!(value.unwrap().value, b"after");
}

#[test]
fn a_paused_leader_steps_down_and_serves_no_stale_read() {
    let cluster = start(3, "pause");
    let (leader, _) = cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let client = cluster.client().unwrap();
    client.put(b"key", b"old").unwrap();
    cluster.signal(leader, libc::SIGSTOP);
    let (new_leader, _) = cluster.wait_for_leader(Some(leader), LEADER_WAIT).unwrap();
    assert_ne!(new_leader, leader);
    client.put(b"key", b"new").unwrap();
    cluster.signal(leader, libc::SIGCONT);
    // Ask the old leader only: a linearizable read must not return the old value.
    let address = cluster.address(leader).unwrap().to_string();
    let only_old = Client::connect(ClientConfig::new(vec![address])).unwrap();
    let (value, _) = only_old.get(b"key").unwrap();
    assert_eq!(
        value.unwrap().value,
        b"new",
        "the resumed leader served a stale read"
    );
    let status = cluster.statuses(Duration::from_secs(1));
    assert_ne!(
        status[&leader].role, "leader",
        "the paused leader did not step down"
    );
}

#[test]
fn restarting_every_member_keeps_the_state() {
    let mut cluster = start(3, "restart-all");
    cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let client = cluster.client().unwrap();
    for i in 0..30 {
        client
            .put(format!("k{i:02}").as_bytes(), format!("{i}").as_bytes())
            .unwrap();
    }
    for id in cluster.ids() {
        cluster.kill(id);
    }
    for id in cluster.ids() {
        cluster.spawn(id).unwrap();
    }
    cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let (found, _, revision) = client.range(b"k", 100).unwrap();
    assert_eq!(found.len(), 30);
    assert_eq!(found[29].value, b"29");
    assert!(revision >= 30);
}

#[test]
fn a_client_on_a_follower_keeps_working_through_leader_changes() {
    let mut cluster = start(3, "follower-client");
    let (leader, _) = cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let follower = cluster.ids().into_iter().find(|&id| id != leader).unwrap();
    let client = cluster.client_of(follower).unwrap();
    client.put(b"a", b"1").unwrap();
    cluster.kill(leader);
    client.put(b"b", b"2").unwrap();
    cluster.spawn(leader).unwrap();
    let (value, _) = client.get(b"a").unwrap();
    assert_eq!(value.unwrap().value, b"1");
}

/// Concurrent put / get / compare-and-swap from three clients while the leader is killed and
/// restarted; the history must be linearizable.
#[test]
fn a_concurrent_history_across_a_leader_kill_is_linearizable() {
    let mut cluster = start(3, "history");
    cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let started = Instant::now();
    let history = Arc::new(Mutex::new(Vec::<Operation>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let endpoints = cluster.endpoints();
    let workers: Vec<_> = (0..3u32)
        .map(|client_id| {
            let (history, stop, endpoints) = (history.clone(), stop.clone(), endpoints.clone());
            std::thread::spawn(move || {
                let config = ClientConfig {
                    timeout: Duration::from_secs(3),
                    ..ClientConfig::new(endpoints)
                };
                let client = Client::connect(config).unwrap();
                let mut last_seen = 0u64;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = (n % 2) as u32;
                    let key_bytes = format!("reg{key}");
                    let unique = (u64::from(client_id) + 1) << 32 | n;
                    let input = match n % 3 {
                        0 => OpInput::Put(unique),
                        1 => OpInput::Get,
                        _ => OpInput::Cas {
                            expected: last_seen,
                            new: unique,
                        },
                    };
                    let invoked = started.elapsed().as_micros() as u64;
                    let output = match input {
                        OpInput::Put(v) => client
                            .put(key_bytes.as_bytes(), v.to_string().as_bytes())
                            .ok()
                            .map(|_| OpOutput::Written),
                        OpInput::Get => client.get(key_bytes.as_bytes()).ok().map(|(kv, _)| {
                            let value =
                                kv.map(|kv| String::from_utf8_lossy(&kv.value).parse().unwrap());
                            if let Some(v) = value {
                                last_seen = v;
                            }
                            OpOutput::Value(value)
                        }),
                        OpInput::Cas { expected, new } => client
                            .compare_and_swap(
                                key_bytes.as_bytes(),
                                Some(expected.to_string().as_bytes()),
                                new.to_string().as_bytes(),
                            )
                            .ok()
                            .map(|(swapped, _)| OpOutput::Swapped(swapped)),
                    };
                    let returned = output.map(|o| (started.elapsed().as_micros() as u64, o));
                    history.lock().unwrap().push(Operation {
                        client: client_id,
                        key,
                        input,
                        invoked,
                        returned,
                    });
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let (leader, _) = cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    cluster.kill(leader);
    std::thread::sleep(Duration::from_millis(1200));
    cluster.spawn(leader).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let history = history.lock().unwrap();
    let answered = history.iter().filter(|op| op.returned.is_some()).count();
    assert!(answered > 50, "only {answered} operations completed");
    assert_eq!(linearizability::check(&history), Verdict::Linearizable);
}

// ----- bad input on the socket -----

/// Sends `bytes` on a fresh connection and reports whether the member closed it.
fn closed_after(address: &str, bytes: &[u8]) -> bool {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut buffer = [0u8; 4096];
    // Bounded by the read timeout: a member that keeps the connection open fails the test.
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue, // a Refused frame before the close
            Err(error) => return error.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

fn hello(cluster: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::encode(
        &Frame::Hello {
            cluster,
            caller: Caller::Client(99),
            token: Vec::new(),
        },
        &mut bytes,
    );
    bytes
}

#[test]
fn bad_input_closes_only_the_offending_connection() {
    let cluster = start(3, "bad-input");
    cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let address = cluster.address(1).unwrap().to_string();
    let client = cluster.client().unwrap();
    client.put(b"alive", b"1").unwrap();
    assert!(
        closed_after(&address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "garbage"
    );
    let mut oversize = u32::MAX.to_le_bytes().to_vec();
    oversize.extend_from_slice(&[PROTOCOL_VERSION, 1]);
    assert!(closed_after(&address, &oversize), "oversize frame");
    let mut other_version = hello(1);
    other_version[4] = PROTOCOL_VERSION + 1;
    assert!(
        closed_after(&address, &other_version),
        "another protocol version"
    );
    assert!(closed_after(&address, &hello(7)), "another cluster id");
    // Half-open: connections that never say anything hold no one up.
    let silent: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    // A flood of connections.
    let flood: Vec<TcpStream> = (0..500)
        .filter_map(|_| TcpStream::connect(&address).ok())
        .collect();
    client.put(b"alive", b"2").unwrap();
    let (value, _) = client.get(b"alive").unwrap();
    assert_eq!(value.unwrap().value, b"2");
    drop((silent, flood));
    let log = std::fs::read_to_string(cluster.dir().join("node1.log")).unwrap();
    assert!(
        log.contains("cluster id 7 does not match"),
        "the refusal was not logged:\n{log}"
    );
}

/// A connection to `to` from the loopback address `source` (bound before connecting).
fn connect_from(source: [u8; 4], to: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(to) = to else {
        panic!("IPv4 only");
    };
    let address = |ip: [u8; 4], port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    };
    let length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns (wrapped in a TcpStream
    // at once, which closes it on every path).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = address(source, 0);
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, length) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = address(to.ip().octets(), to.port());
        if libc::connect(fd, &remote as *const _ as *const libc::sockaddr, length) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

#[test]
fn one_source_address_cannot_take_every_connection_from_the_others() {
    let cluster = start(3, "per-source");
    cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let member: std::net::SocketAddr = cluster.address(1).unwrap().to_string().parse().unwrap();
    // Another host (127.0.0.2) opens the limit's worth of connections (each says Hello, so
    // that none is dropped for silence however long opening them all takes)...
    let limit = accord::limits::CONNECTIONS_PER_SOURCE_MAX;
    let flood: Vec<TcpStream> = (0..limit)
        .map(|_| {
            let mut stream = connect_from([127, 0, 0, 2], member).unwrap();
            stream.write_all(&hello(1)).unwrap();
            stream
        })
        .collect();
    // ... and its next one is refused, with the limit named.
    let mut over = connect_from([127, 0, 0, 2], member).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = over.write_all(&hello(1));
    let mut reply = Vec::new();
    let _ = over.read_to_end(&mut reply);
    match wire::decode(&reply) {
        wire::Decoded::Frame(Frame::Refused(why), _) => {
            assert!(why.contains("too many connections from 127.0.0.2"), "{why}");
            assert!(why.contains(&limit.to_string()), "{why}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Every other client is served as before, by that member too.
    let client = Client::connect(ClientConfig::new(vec![member.to_string()])).unwrap();
    client.put(b"still", b"served").unwrap();
    assert_eq!(client.get(b"still").unwrap().0.unwrap().value, b"served");
    // The flood's connections freed, its host is welcome again.
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect_from([127, 0, 0, 2], member).unwrap();
        again
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        again.write_all(&hello(1)).unwrap();
        let mut buffer = [0u8; 256];
        let n = again.read(&mut buffer).unwrap_or(0);
        if let wire::Decoded::Frame(Frame::Welcome { .. }, _) = wire::decode(&buffer[..n]) {
            break;
        }
        assert!(Instant::now() < deadline, "127.0.0.2 is still refused");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_size_limit_is_refused_with_a_clear_error_and_others_are_served() {
    use accord::api::{Compare, Condition, Op};
    use accord::error::Error;
    use accord::limits::{KEY_BYTES_MAX, SESSION_TTL_MS_MAX, TXN_OPERATIONS_MAX, VALUE_BYTES_MAX};
    let cluster = start(3, "size-limits");
    cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let config = ClientConfig {
        timeout: Duration::from_secs(5),
        ..ClientConfig::new(cluster.endpoints())
    };
    let offender = Client::connect(config.clone()).unwrap();
    let bystander = Client::connect(config.clone()).unwrap();
    let served = |round: &str| {
        let value = format!("after {round}");
        bystander.put(b"bystander", value.as_bytes()).unwrap();
        assert_eq!(
            bystander.get(b"bystander").unwrap().0.unwrap().value,
            value.as_bytes()
        );
    };
    let invalid = |what: &str, call: &dyn Fn() -> Result<u64, Error>, words: &str| {
        let started = Instant::now();
        match call() {
            Err(Error::InvalidArgument(why)) => assert!(why.contains(words), "{what}: {why}"),
            other => panic!("{what}: {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what} took {:?}",
            started.elapsed()
        );
    };
    let long_key = vec![b'k'; KEY_BYTES_MAX + 1];
    invalid(
        "a key over the limit",
        &|| offender.put(&long_key, b"v"),
        "key",
    );
    served("a long key");
    invalid("an empty key", &|| offender.put(b"", b"v"), "key");
    served("an empty key");
    let long_value = vec![b'v'; VALUE_BYTES_MAX + 1];
    invalid(
        "a value over the limit",
        &|| offender.put(b"k", &long_value),
        "value",
    );
    served("a long value");
    let ops: Vec<Op> = (0..=TXN_OPERATIONS_MAX)
        .map(|i| Op::Put {
            key: format!("t{i}").into_bytes(),
            value: b"v".to_vec(),
        })
        .collect();
    let compare = vec![Condition {
        key: b"t0".to_vec(),
        compare: Compare::Exists(false),
    }];
    invalid(
        "a transaction over the limit",
        &|| {
            offender
                .txn(compare.clone(), ops.clone(), Vec::new())
                .map(|(_, revision)| revision)
        },
        "operations",
    );
    served("a long transaction");
    let ttl = Duration::from_millis(SESSION_TTL_MS_MAX + 1);
    invalid(
        "a session TTL over the limit",
        &|| accord::api::Session::create(config.clone(), ttl).map(|s| s.id()),
        "TTL",
    );
    served("a long TTL");
    // Reads and watches are held to the member's limits before they are sent (a request the
    // member's decoder refuses would only get its connection closed, and be retried until
    // the call's timeout).
    invalid(
        "a range prefix over the limit",
        &|| {
            offender
                .range(&long_key, 10)
                .map(|(_, _, revision)| revision)
        },
        "exceeds the limit",
    );
    served("a long range prefix");
    invalid(
        "a watch prefix over the limit",
        &|| {
            offender
                .watch(accord::api::Space::Kv, &long_key, 0)
                .map(|(_, watch)| watch)
        },
        "exceeds the limit",
    );
    served("a long watch prefix");
    // The offender's own connection still works for valid requests.
    offender.put(b"k", b"fine").unwrap();
}

#[test]
fn a_blocked_call_is_cancelled_from_another_thread() {
    let cluster = start(3, "cancel");
    cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let config = ClientConfig {
        timeout: Duration::from_secs(60),
        ..ClientConfig::new(cluster.endpoints())
    };
    let client = Arc::new(Client::connect(config).unwrap());
    client.put(b"before", b"1").unwrap();
    for id in cluster.ids() {
        cluster.signal(id, libc::SIGSTOP); // nobody answers now
    }
    let handle = client.cancel_handle();
    let blocked = {
        let client = client.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            (client.put(b"during", b"2"), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    handle.cancel();
    let (result, waited) = blocked.join().unwrap();
    assert!(
        matches!(result, Err(accord::Error::Cancelled)),
        "{result:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "cancellation took {waited:?}"
    );
    for id in cluster.ids() {
        cluster.signal(id, libc::SIGCONT);
    }
    client.put(b"after", b"3").unwrap();
}

#[test]
fn a_member_that_missed_compacted_entries_catches_up_by_snapshot() {
    let binary = Path::new(env!("CARGO_BIN_EXE_accord"));
    let args = [
        "--tick-ms",
        "20",
        "--snapshot-entries",
        "100",
        "--compaction-margin",
        "10",
    ];
    let mut cluster = LocalCluster::start(binary, 3, "snapshot-catch-up", &args).unwrap();
    let (leader, _) = cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let laggard = cluster.ids().into_iter().find(|&id| id != leader).unwrap();
    cluster.kill(laggard);
    let client = cluster.client().unwrap();
    for i in 0..600 {
        client
            .put(format!("k{i:03}").as_bytes(), format!("{i}").as_bytes())
            .unwrap();
    }
    cluster.spawn(laggard).unwrap();
    let deadline = Instant::now() + LEADER_WAIT;
    let caught_up = loop {
        let statuses = cluster.statuses(Duration::from_millis(500));
        let target = statuses.get(&leader).map_or(u64::MAX, |s| s.applied);
        if statuses.get(&laggard).is_some_and(|s| s.applied >= target) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(caught_up, "the restarted member did not catch up");
    let address = cluster.address(laggard).unwrap().to_string();
    let local = Client::connect(ClientConfig::new(vec![address])).unwrap();
    let (value, _) = local.get_serializable(b"k599").unwrap();
    assert_eq!(
        value.unwrap().value,
        b"599",
        "the snapshot did not carry the state"
    );
    let log = std::fs::read_to_string(cluster.dir().join(format!("node{laggard}.log"))).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}

/// The documented repair: a member refuses to start on a damaged WAL (exit status 3); moved
/// aside and restarted empty with --rejoin, it re-replicates everything from the others.
#[test]
fn a_member_with_a_damaged_wal_refuses_to_start_and_the_documented_repair_works() {
    use std::os::unix::fs::FileExt;
    let mut cluster = start(3, "repair");
    let (leader, _) = cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let damaged = cluster.ids().into_iter().find(|&id| id != leader).unwrap();
    let client = cluster.client().unwrap();
    for i in 0..40 {
        client
            .put(format!("k{i:02}").as_bytes(), format!("{i}").as_bytes())
            .unwrap();
    }
    cluster.kill(damaged);
    let wal = cluster.data_dir(damaged).join("wal");
    let segment = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .min()
        .unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 400).unwrap();
    file.write_all_at(&[byte[0] ^ 0x20], 400).unwrap();
    drop(file);
    cluster.spawn(damaged).unwrap();
    assert_eq!(
        cluster.wait_exit(damaged, LEADER_WAIT),
        Some(3),
        "it started on damaged data"
    );
    let log = std::fs::read_to_string(cluster.dir().join(format!("node{damaged}.log"))).unwrap();
    assert!(
        log.contains("corruption in") && log.contains("--rejoin"),
        "{log}"
    );
    let data = cluster.data_dir(damaged);
    std::fs::rename(&data, data.with_extension("damaged")).unwrap();
    cluster.spawn_with(damaged, &["--rejoin"]).unwrap();
    client.put(b"after-repair", b"yes").unwrap();
    let address = cluster.address(damaged).unwrap().to_string();
    let local = Client::connect(ClientConfig::new(vec![address])).unwrap();
    let deadline = Instant::now() + LEADER_WAIT;
    let repaired = loop {
        let found = local
            .get_serializable(b"after-repair")
            .ok()
            .and_then(|(kv, _)| kv);
        if found.is_some() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(repaired, "the rejoined member did not re-replicate");
    let (value, _) = local.get_serializable(b"k17").unwrap();
    assert_eq!(value.unwrap().value, b"17");
}

#[test]
fn the_command_line_client_reads_writes_and_reports_status() {
    let cluster = start(3, "cli");
    cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let endpoints = cluster.endpoints().join(",");
    let accord = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_accord"))
            .args(args)
            .args(["--endpoints", &endpoints])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code(), text)
    };
    assert_eq!(accord(&["kv", "put", "greeting", "hello"]).0, Some(0));
    assert_eq!(
        accord(&["kv", "get", "greeting"]),
        (Some(0), "hello\n".to_string())
    );
    let (status, text) = accord(&["kv", "range", "gr"]);
    assert_eq!((status, text.as_str()), (Some(0), "greeting=hello\n"));
    assert_eq!(accord(&["kv", "del", "greeting"]).0, Some(0));
    assert_eq!(
        accord(&["kv", "get", "greeting"]).0,
        Some(1),
        "a missing key exits 1"
    );
    let (status, text) = accord(&["status"]);
    assert_eq!(status, Some(0));
    assert!(text.contains(" leader "), "{text}");
    assert!(
        text.contains("member 1 (voter): match=") && text.contains("member 2 (voter): match="),
        "{text}"
    );
    assert!(!text.contains("SUSPECTED DOWN"), "{text}");
}
