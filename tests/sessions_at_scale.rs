//! Many sessions in one process: one keepalive thread and one connection keep them all alive.
//! (Alone in its test binary, so that the threads it counts are its own.)

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::api::{Client, ClientConfig, Node, NodeConfig, Session, SessionStatus};
use accord::error::Error;

/// Threads of this process named `name` (Linux: /proc/self/task/*/comm).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

#[test]
fn a_process_keeps_hundreds_of_sessions_alive_with_one_keepalive_thread() {
    let root =
        std::env::temp_dir().join(format!("accord-sessions-at-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let members: BTreeMap<u64, SocketAddr> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.local_addr().unwrap()))
        .collect();
    drop(listeners);
    let nodes: Vec<Node> = members
        .iter()
        .map(|(&id, &address)| {
            let mut config =
                NodeConfig::new(id, address, members.clone(), root.join(format!("n{id}")));
            config.tick = Duration::from_millis(20);
            Node::start(config).unwrap()
        })
        .collect();
    let endpoints = members.values().map(|a| a.to_string()).collect();
    let client = Arc::new(Client::connect(ClientConfig::new(endpoints)).unwrap());
    client.put(b"ready", b"1").unwrap();

    // 400 sessions with the shortest TTL (a keepalive every third of a second each).
    let ttl = Duration::from_secs(1);
    let sessions: Vec<Session> = (0..400)
        .map(|_| Session::create_on(client.clone(), ttl).unwrap())
        .collect();
    assert_eq!(threads_named("accord-sessions"), 1);

    // Three TTLs later every one of them is still alive.
    std::thread::sleep(3 * ttl);
    let lost: Vec<u64> = sessions
        .iter()
        .filter(|s| s.status() != SessionStatus::Held)
        .map(|s| s.id())
        .collect();
    assert!(lost.is_empty(), "sessions no longer held: {lost:?}");
    assert_eq!(threads_named("accord-sessions"), 1);

    // Renewals asked for from several threads at once are each acknowledged.
    std::thread::scope(|scope| {
        for chunk in sessions.chunks(50) {
            scope.spawn(move || {
                for session in chunk {
                    session.keep_alive_once(Duration::from_secs(5)).unwrap();
                }
            });
        }
    });

    // The session still works for what sessions are for.
    let lock = sessions[0].lock(b"scale", Duration::from_secs(5)).unwrap();
    assert!(lock.token() > 0);
    lock.release().unwrap();

    // A closed session cannot be renewed.
    sessions[1].end().unwrap();
    let started = Instant::now();
    match sessions[1].keep_alive_once(Duration::from_secs(5)) {
        Err(Error::SessionLost(_)) => {}
        other => panic!("renewing a closed session: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));

    // The last session out stops the thread.
    drop(sessions);
    assert_eq!(threads_named("accord-sessions"), 0);
    drop(nodes);
    let _ = std::fs::remove_dir_all(&root);
}
