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
