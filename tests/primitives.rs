//! Sessions and coordination primitives against three members embedded in this process,
//! through the public Rust API.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::api::{
    Client, ClientConfig, Compare, Condition, Fence, Node, NodeConfig, Op, Session, SessionStatus,
    Space, WatchItem,
};
use accord::core::state::EventKind;

struct Cluster {
    nodes: BTreeMap<u64, Node>,
    endpoints: Vec<String>,
    root: PathBuf,
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        let root = std::env::temp_dir().join(format!("accord-{name}-{}", std::process::id()));
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
        let nodes = members
            .iter()
            .map(|(&id, &address)| {
                let mut config =
                    NodeConfig::new(id, address, members.clone(), root.join(format!("n{id}")));
                config.tick = Duration::from_millis(20);
                (id, Node::start(config).unwrap())
            })
            .collect();
        let endpoints = members.values().map(|a| a.to_string()).collect();
        Cluster {
            nodes,
            endpoints,
            root,
        }
    }

    fn config(&self) -> ClientConfig {
        ClientConfig::new(self.endpoints.clone())
    }

    fn client(&self) -> Client {
        Client::connect(self.config()).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, node) in std::mem::take(&mut self.nodes) {
            let _ = node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

const SECOND: Duration = Duration::from_secs(1);
const MILLI: Duration = Duration::from_millis(1);

#[test]
fn a_mutex_is_handed_over_in_order_with_increasing_tokens_and_fences_writes() {
    let cluster = Cluster::start("mutex");
    let a = Session::create(cluster.config(), 10 * SECOND).unwrap();
    let b = Arc::new(Session::create(cluster.config(), 10 * SECOND).unwrap());
    let held = a.lock(b"m", 5 * SECOND).unwrap();
    assert!(held.is_held());
    assert!(b.try_lock(b"m").unwrap().is_none(), "the mutex is taken");
    let waiter = {
        let b = b.clone();
        std::thread::spawn(move || b.lock(b"m", 10 * SECOND).map(|l| l.token()))
    };
    std::thread::sleep(Duration::from_millis(300));
    // A write guarded by the holder's token goes through.
    let client = cluster.client();
    let guard = |token| {
        vec![Condition {
            key: b"m".to_vec(),
            compare: Compare::LockToken(token),
        }]
    };
    let put = vec![Op::Put {
        key: b"data".to_vec(),
        value: b"a".to_vec(),
    }];
    let first = held.token();
    assert!(client.txn(guard(first), put.clone(), vec![]).unwrap().0);
    held.release().unwrap();
    let second = waiter.join().unwrap().unwrap();
    assert!(second > first, "tokens increase: {first} then {second}");
    // The old holder's guarded write is refused by the cluster; a fence refuses it too.
    assert!(!client.txn(guard(first), put, vec![]).unwrap().0);
    let fence = Fence::new();
    fence.admit(second).unwrap();
    assert!(fence.admit(first).is_err());
    let (holders, _) = client.lock_holders(b"m").unwrap();
    assert_eq!(holders[0].session, b.id());
    // A lock wait that times out holds nothing afterwards.
    let late = a.lock(b"m", Duration::from_millis(300));
    assert!(matches!(late, Err(accord::Error::Timeout(_))), "{late:?}");
    let (_, waiters) = client.lock_holders(b"m").unwrap();
    assert!(waiters.is_empty(), "the timed-out waiter withdrew");
}

#[test]
fn a_session_whose_creation_was_slow_is_kept_alive_from_its_first_keepalive() {
    let cluster = Cluster::start("slow-creation");
    // The first two endpoints accept connections and never answer (as a stopped process's
    // would): creating a session waits one attempt (2 s) on each before the client tries
    // the next endpoint.
    let silent: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut endpoints: Vec<String> = silent
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    endpoints.extend(cluster.endpoints.clone());
    let started = Instant::now();
    let session = Session::create(ClientConfig::new(endpoints), 5 * SECOND).unwrap();
    let took = started.elapsed();
    assert!(took > 3500 * MILLI, "the creation took only {took:?}");
    // Its safe time (4.5 s) runs from when the creation was sent, so its first keepalive is
    // due at once (not one interval after the slow creation returned), and goes where the
    // creation got through (not through the silent endpoints again).
    std::thread::sleep(3 * SECOND);
    assert_eq!(
        session.status(),
        SessionStatus::Held,
        "{}",
        session.lost_reason()
    );
}

#[test]
fn an_expired_session_loses_its_lock_and_its_holder_is_told() {
    let cluster = Cluster::start("expiry");
    let holder = Session::create(cluster.config(), SECOND).unwrap();
    let lock = holder.lock(b"m", 5 * SECOND).unwrap();
    let other = Session::create(cluster.config(), 10 * SECOND).unwrap();
    // Simulate a holder whose keepalives stop (a paused process): drop the session's
    // keepalive thread by closing the cluster's view of it from another client.
    let client = cluster.client();
    assert!(client.session_ttl(holder.id()).unwrap().is_some());
    let started = Instant::now();
    // Stop keepalives: dropping the Session stops them; keep the lock handle's shared view.
    let holder_id = holder.id();
    drop(holder);
    let taken = other.lock(b"m", 10 * SECOND).unwrap();
    assert!(taken.token() > lock.token());
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "expired too early"
    );
    assert!(!lock.is_held(), "the holder must know its lock is gone");
    assert!(lock.wait_lost(Duration::ZERO));
    assert!(client.session_ttl(holder_id).unwrap().is_none());
}

#[test]
fn elections_groups_queues_barriers_and_counters() {
    let cluster = Cluster::start("primitives");
    let client = cluster.client();
    let s1 = Session::create(cluster.config(), 10 * SECOND).unwrap();
    let s2 = Arc::new(Session::create(cluster.config(), 10 * SECOND).unwrap());
    // Election: one leader, observers see the changes with tokens.
    let mut observer = client.observe(b"e").unwrap();
    let first = observer.next(SECOND).unwrap().unwrap();
    assert!(first.leader.is_none());
    let leadership = s1.campaign(b"e", b"one", 5 * SECOND).unwrap();
    let change = observer.next(5 * SECOND).unwrap().unwrap();
    assert_eq!(change.leader.as_ref().unwrap().value, b"one");
    leadership.proclaim(b"uno").unwrap();
    let change = observer.next(5 * SECOND).unwrap().unwrap();
    assert_eq!(change.leader.as_ref().unwrap().value, b"uno");
    let candidate = {
        let s2 = s2.clone();
        std::thread::spawn(move || s2.campaign(b"e", b"two", 10 * SECOND).map(|l| l.token()))
    };
    std::thread::sleep(Duration::from_millis(200));
    let old_token = leadership.token();
    leadership.resign().unwrap();
    let new_token = candidate.join().unwrap().unwrap();
    assert!(new_token > old_token);
    assert_eq!(client.leader(b"e").unwrap().unwrap().value, b"two");

    // Groups: membership bound to the session.
    let m1 = s1.join(b"g", b"worker-1", b"host-a").unwrap();
    s2.join(b"g", b"worker-2", b"host-b").unwrap();
    assert!(s2.join(b"g", b"worker-1", b"x").is_err(), "the id is taken");
    let (members, _) = client.members(b"g").unwrap();
    assert_eq!(members.len(), 2);
    m1.leave().unwrap();
    assert_eq!(client.members(b"g").unwrap().0.len(), 1);

    // Queue: claim, ack once; a claimer waits for the next item.
    client.enqueue(b"q", b"job-1").unwrap();
    let claim = s1.claim(b"q", SECOND).unwrap();
    assert_eq!(claim.payload, b"job-1");
    let waiting = {
        let s2 = s2.clone();
        std::thread::spawn(move || s2.claim(b"q", 10 * SECOND).map(|c| c.payload.clone()))
    };
    std::thread::sleep(Duration::from_millis(200));
    client.enqueue(b"q", b"job-2").unwrap();
    assert_eq!(waiting.join().unwrap().unwrap(), b"job-2");
    let token = claim.token;
    claim.ack().unwrap();
    assert_eq!(
        client.queue_counts(b"q").unwrap().0,
        1,
        "job-2 is claimed, not acked"
    );
    assert!(s1.try_claim(b"q").unwrap().is_none());
    let _ = token;

    // Barrier: both arrive, both return.
    let arriving = {
        let s2 = s2.clone();
        std::thread::spawn(move || s2.barrier(b"b", 2, 10 * SECOND))
    };
    s1.barrier(b"b", 2, 10 * SECOND).unwrap();
    arriving.join().unwrap().unwrap();
    let lonely = s1.barrier(b"b2", 2, Duration::from_millis(300));
    assert!(matches!(lonely, Err(accord::Error::Timeout(_))));

    // Counter.
    assert_eq!(client.add(b"c", 5).unwrap(), 5);
    assert_eq!(client.add(b"c", -2).unwrap(), 3);
    assert_eq!(client.counter(b"c").unwrap(), 3);
    assert_eq!(s1.status(), SessionStatus::Held);
}

#[test]
fn watches_are_ordered_gapless_and_resume_after_list() {
    let cluster = Cluster::start("watch");
    let client = cluster.client();
    client.put(b"w/0", b"before").unwrap();
    let (listed, revision, mut stream) = client.list_and_watch(b"w/").unwrap();
    assert_eq!(listed.len(), 1);
    for i in 1..=50 {
        client.put(format!("w/{i}").as_bytes(), b"v").unwrap();
        client.put(format!("other/{i}").as_bytes(), b"v").unwrap();
    }
    client.delete(b"w/0").unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + 10 * SECOND;
    while seen.len() < 51 && Instant::now() < deadline {
        if let Some((_, WatchItem::Events(events))) = stream.next(SECOND).unwrap() {
            seen.extend(events);
        }
    }
    assert_eq!(seen.len(), 51, "one event per change under the prefix");
    assert!(seen.windows(2).all(|w| w[0].revision < w[1].revision));
    assert!(seen[0].revision > revision);
    assert!(seen.iter().all(|e| e.key.starts_with(b"w/")));
    assert_eq!(seen.last().unwrap().kind, EventKind::Delete);
    // A watch from an old revision replays the same events.
    let (mut replay, _) = client.watch(Space::Kv, b"w/", revision + 1).unwrap();
    let mut again = Vec::new();
    while again.len() < 51 {
        match replay.next(5 * SECOND).unwrap() {
            Some((_, WatchItem::Events(events))) => again.extend(events),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(again, seen);
}

#[test]
fn a_watcher_that_stops_reading_is_cancelled_with_a_reason() {
    let cluster = Cluster::start("slow-watcher");
    let client = cluster.client();
    let (mut stream, _) = client.watch(Space::Kv, b"big/", 1).unwrap();
    // Far more than the socket buffers and the member's backlog bound (16 MiB) hold.
    let value = vec![b'x'; 1_000_000];
    for i in 0..48 {
        client.put(format!("big/{i}").as_bytes(), &value).unwrap();
    }
    let deadline = Instant::now() + 20 * SECOND;
    let mut events = 0;
    let reason = loop {
        assert!(
            Instant::now() < deadline,
            "the slow watcher was never cancelled"
        );
        match stream.next(SECOND).unwrap() {
            Some((_, WatchItem::Cancelled(reason))) => break reason,
            Some((_, WatchItem::Events(batch))) => events += batch.len(),
            Some((_, other)) => panic!("{other:?}"),
            None => {}
        }
    };
    assert!(reason.contains("too slowly"), "{reason}");
    assert!(
        events < 48,
        "every event arrived ({events}): nothing was slow"
    );
    // The member kept serving everyone else.
    client.put(b"after", b"ok").unwrap();
}

#[test]
fn one_client_shared_by_threads_writes_in_order_and_one_session_holds_a_name_once() {
    let cluster = Cluster::start("shared-client");
    let client = Arc::new(cluster.client());
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    client
                        .put(format!("t{t}/{i}").as_bytes(), b"v")
                        .expect("a write of a shared client failed");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(client.range(b"t", 1000).unwrap().0.len(), 400);
    // A session's lock taken twice (say from two threads) is refused, not granted twice.
    let session = Session::create(cluster.config(), 10 * SECOND).unwrap();
    let held = session.lock(b"m", SECOND).unwrap();
    let again = session.lock(b"m", SECOND);
    assert!(
        matches!(again, Err(accord::Error::InvalidArgument(_))),
        "{again:?}"
    );
    held.release().unwrap();
    session.lock(b"m", SECOND).unwrap().release().unwrap();
}

#[test]
fn a_wait_longer_than_the_call_timeout_still_withdraws_when_it_ends() {
    let cluster = Cluster::start("withdraw");
    let mut config = cluster.config();
    config.timeout = Duration::from_millis(500);
    let a = Session::create(cluster.config(), 10 * SECOND).unwrap();
    let b = Session::create(config, 10 * SECOND).unwrap();
    let held = a.lock(b"m", SECOND).unwrap();
    let waited = b.lock(b"m", Duration::from_millis(800));
    assert!(
        matches!(waited, Err(accord::Error::Timeout(_))),
        "{waited:?}"
    );
    let (_, waiters) = cluster.client().lock_holders(b"m").unwrap();
    assert!(
        waiters.is_empty(),
        "the waiter that gave up is still queued"
    );
    held.release().unwrap();
    let (holders, _) = cluster.client().lock_holders(b"m").unwrap();
    assert!(
        holders.is_empty(),
        "the lock went to a caller that had left"
    );
}
