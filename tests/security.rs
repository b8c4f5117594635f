//! Security of real `accord server` processes: mutual TLS between members and clients,
//! identities from certificates and tokens, per-prefix rights (watches included), and the
//! per-connection limit on requests waiting for their answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use accord::api::{Client, ClientConfig, Session, Space, WatchItem, WatchStream};
use accord::local_cluster::LocalCluster;
use accord::runtime::access::Secret;
use accord::runtime::tls::{write_certificates, TlsFiles, CA_FILE};
use accord::runtime::wire::{self, Caller, ClientOp, ClientReply, Decoded, Frame};
use accord::Error;

const LEADER_WAIT: Duration = Duration::from_secs(15);
const ALICE_TOKEN: &str = "alice-token-0123456789abcdef";
const MEMBER_TOKEN: &str = "member-token-0123456789abcdef";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_accord"))
}

fn config(cluster: &LocalCluster, tls: Option<TlsFiles>, token: &str) -> ClientConfig {
    ClientConfig {
        tls,
        token: Secret(token.as_bytes().to_vec()),
        timeout: Duration::from_secs(5),
        ..ClientConfig::new(cluster.endpoints())
    }
}

/// The cluster's CA without a client certificate (for token clients).
fn ca_only(cluster: &LocalCluster) -> TlsFiles {
    TlsFiles {
        cert: None,
        key: None,
        ..cluster.client_tls().unwrap().clone()
    }
}

/// A raw client's greeting to cluster 1, without a token.
fn hello(client: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::encode(
        &Frame::Hello {
            cluster: 1,
            caller: Caller::Client(client),
            token: Vec::new(),
        },
        &mut bytes,
    );
    bytes
}

fn denied(result: Result<impl std::fmt::Debug, Error>, expected: &str) {
    match result {
        Err(Error::PermissionDenied(why)) => assert!(why.contains(expected), "{why}"),
        other => panic!("expected PermissionDenied ({expected}), got {other:?}"),
    }
}

#[test]
fn with_mutual_tls_only_holders_of_a_certificate_from_the_cluster_ca_get_in() {
    let cluster = LocalCluster::start_with(binary(), 3, "tls", &["--tick-ms", "20"], true)
        .expect("starting the cluster");
    cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    // The cluster's own client certificate: served.
    let client = cluster.client().unwrap();
    client.put(b"k", b"v").unwrap();
    assert_eq!(client.get(b"k").unwrap().0.unwrap().value, b"v");

    // TLS without a certificate: refused at the handshake's Hello, at once.
    let started = Instant::now();
    let anonymous = Client::connect(config(&cluster, Some(ca_only(&cluster)), "")).unwrap();
    denied(anonymous.get(b"k"), "certificate signed by the cluster CA");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A certificate from another CA: the member's TLS refuses it, a configuration error.
    let other = cluster.dir().join("other-ca");
    write_certificates(&other, &["127.0.0.1".into()], &["mallory".into()]).unwrap();
    let forged = TlsFiles {
        ca: cluster.client_tls().unwrap().ca.clone(),
        cert: Some(other.join("mallory.pem")),
        key: Some(other.join("mallory-key.pem")),
    };
    let started = Instant::now();
    match Client::connect(config(&cluster, Some(forged), ""))
        .unwrap()
        .get(b"k")
    {
        Err(Error::InvalidConfig(why)) => assert!(why.contains("TLS"), "{why}"),
        other => panic!("a foreign certificate was not refused: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    // Trusting another CA: the client refuses the members.
    let wrong_ca = TlsFiles {
        ca: other.join(CA_FILE),
        cert: None,
        key: None,
    };
    match Client::connect(config(&cluster, Some(wrong_ca), ""))
        .unwrap()
        .get(b"k")
    {
        Err(Error::InvalidConfig(why)) => assert!(why.contains("TLS"), "{why}"),
        other => panic!("an unknown server certificate was accepted: {other:?}"),
    }

    // Plaintext to a TLS member: told at once that TLS is required.
    let started = Instant::now();
    match Client::connect(config(&cluster, None, ""))
        .unwrap()
        .get(b"k")
    {
        Err(Error::InvalidConfig(why)) => assert!(why.contains("requires TLS"), "{why}"),
        other => panic!("a plaintext client was not told to use TLS: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    // The cluster still serves its own clients, and a raw plaintext Hello is refused.
    client.put(b"k2", b"v2").unwrap();
    let mut raw = TcpStream::connect(cluster.address(1).unwrap()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    raw.write_all(&hello(5)).unwrap();
    let mut answer = vec![0u8; 256];
    let count = raw.read(&mut answer).unwrap_or(0);
    match wire::decode(&answer[..count]) {
        Decoded::Frame(Frame::Refused(why), _) => assert!(why.contains("requires TLS"), "{why}"),
        _ => panic!("a plaintext caller was not refused: {:?}", &answer[..count]),
    }
}

/// An access file for a TLS cluster from `LocalCluster::start_with(.., true)`: the members
/// by certificate, alice by token (her application's prefixes), and the cluster's client
/// certificate read-only.
fn access_file(dir: &Path, members_by_token: bool) -> PathBuf {
    let path = dir.join("access.conf");
    let members = if members_by_token {
        format!("user members token:{MEMBER_TOKEN} member\n")
    } else {
        (1..=3)
            .map(|id| format!("user node{id} cert:node{id} member\n"))
            .collect()
    };
    let text = format!(
        "# roles\n\
         role app write:kv:app/ read:kv:shared/ write:lock:app/ write:session:\n\
         user alice token:{ALICE_TOKEN} app\n\
         user reader cert:client read-only\n\
         {members}"
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn start_with_access(name: &str, tls: bool) -> LocalCluster {
    let dir = std::env::temp_dir().join(format!("accord-access-{name}-{}", std::process::id()));
    let access = access_file(&dir, !tls);
    let token_file = dir.join("member-token");
    std::fs::write(&token_file, MEMBER_TOKEN).unwrap();
    let access = access.display().to_string();
    let token_file = token_file.display().to_string();
    let mut args = vec!["--tick-ms", "20", "--access", access.as_str()];
    if !tls {
        args.extend(["--token-file", token_file.as_str()]);
    }
    let cluster = LocalCluster::start_with(binary(), 3, name, &args, tls).unwrap();
    if tls {
        // (Without TLS the cluster's own status client has no token: callers wait by
        // writing.)
        cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    }
    cluster
}

#[test]
fn rights_follow_the_access_file_for_every_kind_of_request_and_watch() {
    let cluster = start_with_access("rights", true);
    let alice = Client::connect(config(&cluster, Some(ca_only(&cluster)), ALICE_TOKEN)).unwrap();
    alice.put(b"app/a", b"1").unwrap();
    denied(
        alice.put(b"other/a", b"1"),
        "alice may not write key \"other/a\"",
    );
    denied(alice.get(b"other/a"), "alice may not read key \"other/a\"");
    denied(alice.range(b"", 10), "alice may not read keys under \"\"");
    assert!(alice.range(b"app/", 10).is_ok());
    assert!(alice.get(b"shared/x").is_ok());
    denied(alice.put(b"shared/x", b"1"), "may not write");
    denied(alice.member_remove(3), "may not change the membership");

    // Locks: her prefix only.
    let alice = std::sync::Arc::new(alice);
    let session = Session::create_on(alice.clone(), Duration::from_secs(5)).unwrap();
    let lock = session.lock(b"app/lock", Duration::from_secs(5)).unwrap();
    assert!(lock.token() > 0);
    drop(lock);
    denied(
        session
            .lock(b"ops/lock", Duration::from_secs(5))
            .map(|_| ()),
        "alice may not write",
    );

    // Watches: refused outside her prefixes, with no event delivered; inside, events flow.
    let mut watch_config = config(&cluster, Some(ca_only(&cluster)), ALICE_TOKEN);
    watch_config.timeout = Duration::from_secs(5);
    let mut stream = WatchStream::open(watch_config).unwrap();
    denied(stream.add(Space::Kv, b"", 1), "alice may not read (watch)");
    denied(
        stream.add(Space::Kv, b"other/", 1),
        "alice may not read (watch)",
    );
    let watch = stream.add(Space::Kv, b"app/", 1).unwrap().unwrap();
    alice.put(b"app/b", b"2").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while !seen.contains(&b"app/b".to_vec()) && Instant::now() < deadline {
        if let Some((id, WatchItem::Events(events))) =
            stream.next(Duration::from_millis(200)).unwrap()
        {
            assert_eq!(id, watch);
            seen.extend(events.into_iter().map(|e| e.key));
        }
    }
    assert!(seen.iter().all(|key| key.starts_with(b"app/")), "{seen:?}");
    assert!(seen.contains(&b"app/b".to_vec()));

    // The certificate "client" is read-only: reads pass, writes and sessions do not.
    let reader = cluster.client().unwrap();
    assert_eq!(reader.get(b"app/a").unwrap().0.unwrap().value, b"1");
    denied(reader.put(b"app/a", b"2"), "reader may not write");
    let refused = Session::create_on(
        std::sync::Arc::new(cluster.client().unwrap()),
        Duration::from_secs(5),
    );
    denied(refused.map(|_| ()), "reader may not hold sessions");

    // No credential, or a wrong one: refused at once, whatever the request.
    for token in ["", "alice-token-0123456789abcdeX"] {
        let started = Instant::now();
        let stranger = Client::connect(config(&cluster, Some(ca_only(&cluster)), token)).unwrap();
        denied(stranger.get(b"shared/x"), "authentication failed");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    // Everyone else is still served.
    alice.put(b"app/c", b"3").unwrap();
}

#[test]
fn without_tls_members_and_clients_identify_themselves_by_token() {
    // The members reach each other only because their token has the member role.
    let cluster = start_with_access("tokens", false);
    let mut patient = config(&cluster, None, ALICE_TOKEN);
    patient.timeout = LEADER_WAIT;
    let alice = Client::connect(patient).unwrap();
    alice.put(b"app/a", b"1").unwrap();
    denied(alice.put(b"x", b"1"), "alice may not write");
    // A client presenting the member token is a member, not a client with rights to data.
    let member = Client::connect(config(&cluster, None, MEMBER_TOKEN)).unwrap();
    denied(member.get(b"app/a"), "members may not read");
    denied(
        Client::connect(config(&cluster, None, ""))
            .unwrap()
            .get(b"app/a"),
        "authentication failed",
    );
    // No token, no value and no denied key reaches the members' logs.
    alice.put(b"app/secret", b"value-never-logged").unwrap();
    denied(alice.get(b"denied-key-never-logged"), "alice may not read");
    let logs: String = cluster
        .ids()
        .iter()
        .map(|id| std::fs::read_to_string(cluster.dir().join(format!("node{id}.log"))).unwrap())
        .collect();
    assert!(logs.contains("denied a request of alice"), "{logs}");
    for secret in [
        ALICE_TOKEN,
        MEMBER_TOKEN,
        "value-never-logged",
        "denied-key-never-logged",
    ] {
        assert!(!logs.contains(secret), "{secret} is in the logs:\n{logs}");
    }
}

#[test]
fn one_connection_cannot_queue_requests_without_bound() {
    let binary = binary();
    let cluster = LocalCluster::start(binary, 3, "in-flight", &["--tick-ms", "20"]).unwrap();
    let (leader, _) = cluster.wait_for_leader(None, LEADER_WAIT).unwrap();
    let mut raw = TcpStream::connect(cluster.address(leader).unwrap()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut bytes = hello(77);
    // Twice the limit of linearizable reads, sent at once: each waits for a quorum's
    // confirmation, so the member holds them all unless it bounds them.
    let count = 2 * accord::limits::PENDING_REQUESTS_PER_CONNECTION_MAX;
    for id in 1..=count as u64 {
        let op = ClientOp::Get {
            key: b"k".to_vec(),
            serializable: false,
        };
        wire::encode_request(id, &op, &mut bytes);
    }
    raw.write_all(&bytes).unwrap();
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let (mut answered, mut limited) = (0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered < count && Instant::now() < deadline {
        let n = raw.read(&mut chunk).unwrap();
        assert!(n > 0, "the member closed the connection");
        received.extend_from_slice(&chunk[..n]);
        while let Decoded::Frame(frame, used) = wire::decode(&received) {
            received.drain(..used);
            if let Frame::Reply { reply, .. } = frame {
                answered += 1;
                if let ClientReply::Failed(why) = reply {
                    assert!(why.contains("the limit per connection"), "{why}");
                    limited += 1;
                }
            }
        }
    }
    assert_eq!(answered, count, "every request gets an answer");
    // The member takes at most REQUESTS_PER_CONNECTION_TURN_MAX requests of a connection
    // per turn, so reads confirmed between turns may keep it under the in-flight limit:
    // refusals may be none, never more than the excess.
    assert!(limited <= count - accord::limits::PENDING_REQUESTS_PER_CONNECTION_MAX);
    // Other clients are served meanwhile and after.
    cluster.client().unwrap().put(b"after", b"ok").unwrap();
}
