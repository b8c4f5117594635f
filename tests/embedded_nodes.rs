//! Members embedded in one process through the Rust API: each node's own client reaches its
//! event loop through the command channel, and follows the leader over the network.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use accord::api::{Node, NodeConfig};

fn free_addresses(count: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

#[test]
fn embedded_members_serve_their_own_clients_and_survive_the_leader_stopping() {
    let root = std::env::temp_dir().join(format!("accord-embedded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let members: BTreeMap<u64, SocketAddr> = free_addresses(3)
        .into_iter()
        .enumerate()
        .map(|(i, a)| (i as u64 + 1, a))
        .collect();
    let mut nodes: BTreeMap<u64, Node> = members
        .iter()
        .map(|(&id, &address)| {
            let mut config =
                NodeConfig::new(id, address, members.clone(), root.join(format!("n{id}")));
            config.tick = Duration::from_millis(20);
            (id, Node::start(config).unwrap())
        })
        .collect();
    // Every member's own client can write, leader or not.
    for (id, node) in &nodes {
        let client = node.client().unwrap();
        client
            .put(format!("from-{id}").as_bytes(), b"hello")
            .unwrap();
    }
    let client = nodes[&1].client().unwrap();
    let (found, _, _) = client.range(b"from-", 10).unwrap();
    assert_eq!(found.len(), 3);
    // Arguments out of range are refused with a message, before anything is sent.
    let empty_key = client.put(b"", b"x");
    assert!(
        matches!(empty_key, Err(accord::Error::InvalidArgument(_))),
        "{empty_key:?}"
    );
    let huge = vec![0u8; accord::limits::VALUE_BYTES_MAX + 1];
    let too_large = client.put(b"k", &huge);
    assert!(
        matches!(too_large, Err(accord::Error::InvalidArgument(ref why)) if why.contains("at most"))
    );
    // Stop whichever member leads; the others elect a new leader and keep serving.
    let leader = client.status().unwrap().leader;
    assert_ne!(leader, 0);
    nodes.remove(&leader).unwrap().stop().unwrap();
    let survivor = nodes.keys().next().copied().unwrap();
    let client = nodes[&survivor].client().unwrap();
    client.put(b"after", b"stop").unwrap();
    let (value, _) = client.get(b"from-1").unwrap();
    assert_eq!(value.unwrap().value, b"hello");
    for (_, node) in nodes {
        node.stop().unwrap();
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// `GET /metrics` on `address`: the body.
fn scrape(address: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    response.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// The value of the series starting with `series` (its first line).
fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
}

#[test]
fn a_member_serves_its_metrics_in_the_prometheus_text_format() {
    let root = std::env::temp_dir().join(format!("accord-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let addresses = free_addresses(2);
    let (listen, metrics) = (addresses[0], addresses[1]);
    let mut config = NodeConfig::new(1, listen, [(1, listen)].into(), root.join("n1"));
    config.tick = Duration::from_millis(20);
    config.metrics = Some(metrics);
    let node = Node::start(config).unwrap();
    let client = node.client().unwrap();
    for i in 0..20 {
        client.put(format!("k{i}").as_bytes(), b"v").unwrap();
    }
    let session = accord::api::session(&client, Duration::from_secs(10)).unwrap();
    let _lock = session.lock(b"m", Duration::from_secs(5)).unwrap();
    // Gauges are published every tick.
    std::thread::sleep(Duration::from_millis(100));
    let body = scrape(metrics);
    assert_eq!(value(&body, "accord_is_leader{"), 1.0);
    assert!(value(&body, "accord_commit_index{") >= 20.0);
    assert_eq!(value(&body, "accord_voters{"), 1.0);
    assert_eq!(value(&body, "accord_sessions{"), 1.0);
    assert_eq!(value(&body, "accord_locks_held{"), 1.0);
    assert!(value(&body, "accord_proposal_duration_seconds_count{") >= 20.0);
    assert!(value(&body, "accord_fsync_duration_seconds_count{") >= 20.0);
    assert!(value(&body, "accord_wal_bytes{") > 0.0);
    assert_eq!(value(&body, "accord_leader_changes_total{"), 1.0);
    // Anything but GET /metrics is a 404; the member keeps serving.
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(metrics).unwrap();
    stream.write_all(b"POST /x HTTP/1.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    client.put(b"after", b"scrapes").unwrap();
    drop(session);
    node.stop().unwrap();
    // The endpoint is gone with the member.
    std::thread::sleep(Duration::from_millis(300));
    assert!(std::net::TcpStream::connect(metrics).is_err());
    let _ = std::fs::remove_dir_all(&root);
}

/// Every file under `dir` (recursively) and its mode, and every directory's.
fn modes(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, u32, bool)>) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        out.push((
            entry.path(),
            meta.permissions().mode() & 0o777,
            meta.is_dir(),
        ));
        if meta.is_dir() {
            modes(&entry.path(), out);
        }
    }
}

#[test]
fn a_data_directory_and_every_file_in_it_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let root = std::env::temp_dir().join(format!("accord-private-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let listen = free_addresses(1)[0];
    let dir = root.join("n1");
    let mut config = NodeConfig::new(1, listen, [(1, listen)].into(), dir.clone());
    config.tick = Duration::from_millis(20);
    config.snapshot_every_entries = 10; // snapshot files too
    let node = Node::start(config).unwrap();
    let client = node.client().unwrap();
    for i in 0..50 {
        client.put(format!("k{i}").as_bytes(), b"secret").unwrap();
    }
    let session = accord::api::session(&client, Duration::from_secs(10)).unwrap();
    drop(session);
    let mut found = Vec::new();
    modes(&dir, &mut found);
    assert!(
        found
            .iter()
            .any(|(path, _, _)| path.to_string_lossy().contains("snap")),
        "no snapshot file was written: {found:?}"
    );
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "{}", dir.display());
    for (path, mode, is_dir) in &found {
        let expected = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, expected, "{} is {mode:o}", path.display());
    }
    drop(node);
    // A data directory left readable by others (by an earlier version) is made private
    // when a member opens it.
    for (path, _, is_dir) in &found {
        let open = if *is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(open)).unwrap();
    }
    let mut config = NodeConfig::new(1, listen, [(1, listen)].into(), dir.clone());
    config.tick = Duration::from_millis(20);
    let node = Node::start(config).unwrap();
    let mut again = Vec::new();
    modes(&dir, &mut again);
    for (path, mode, is_dir) in &again {
        let expected = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(
            *mode,
            expected,
            "after a restart, {} is {mode:o}",
            path.display()
        );
    }
    drop(node);
    let _ = std::fs::remove_dir_all(&root);
}
