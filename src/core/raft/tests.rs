//! Unit tests of the consensus core driven by hand: the Ready/advance contract, and bad input.

use super::*;
use crate::error::Error;
use crate::limits::ENTRY_BYTES_MAX;
use crate::types::{Entry, EntryKind, Payload};

fn node(id: u64, voters: &[u64]) -> Raft<MemStorage> {
    Raft::new(Config::new(id), MemStorage::new_with_voters(voters)).unwrap()
}

/// Persists a Ready the way a driver must, returning it for inspection.
fn persist(raft: &mut Raft<MemStorage>) -> Ready {
    let ready = raft.ready();
    raft.storage_mut().append(&ready.entries).unwrap();
    if let Some(hard_state) = ready.hard_state {
        raft.storage_mut().set_hard_state(hard_state);
    }
    raft.advance(ready.persisted_marker());
    ready
}

fn tick_until_campaign(raft: &mut Raft<MemStorage>) {
    for _ in 0..100 {
        raft.tick();
        if raft.role() != Role::Follower {
            return;
        }
    }
    panic!("no campaign");
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: Payload::from_slice(b"e"),
    }
}

fn append(from: u64, to: u64, term: u64, prev: (u64, u64), entries: Vec<Entry>) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::Append {
            prev_index: prev.0,
            prev_term: prev.1,
            entries,
            commit: 0,
        },
    }
}

#[test]
fn single_node_counts_its_own_vote_only_after_it_is_durable() {
    let mut raft = node(1, &[1]);
    tick_until_campaign(&mut raft);
    assert_eq!(
        raft.role(),
        Role::Candidate,
        "vote counted before persisting"
    );
    let ready = raft.ready();
    assert_eq!(ready.hard_state.map(|h| (h.term, h.vote)), Some((1, 1)));
    raft.storage_mut().set_hard_state(ready.hard_state.unwrap());
    raft.advance(ready.persisted_marker());
    assert_eq!(raft.role(), Role::Leader);
}

#[test]
fn leader_commits_only_after_its_own_entries_are_durable() {
    let mut raft = node(1, &[1]);
    tick_until_campaign(&mut raft);
    persist(&mut raft); // becomes leader, appends its no-op
    let ready = raft.ready();
    assert_eq!(ready.entries.len(), 1, "the term's no-op");
    assert_eq!(
        raft.commit_index(),
        0,
        "committed before the no-op was durable"
    );
    raft.storage_mut().append(&ready.entries).unwrap();
    raft.advance(ready.persisted_marker());
    assert_eq!(raft.commit_index(), 1);
    let ready = persist(&mut raft);
    assert_eq!(ready.committed_entries.len(), 1);
}

#[test]
fn follower_answers_appends_only_after_persisting() {
    let mut raft = node(2, &[1, 2, 3]);
    raft.step(append(1, 2, 1, (0, 0), vec![entry(1, 1)]))
        .unwrap();
    let ready = raft.ready();
    assert!(
        ready.messages.is_empty(),
        "an answer may not precede persistence"
    );
    assert_eq!(ready.persisted_messages.len(), 1);
    assert!(matches!(
        ready.persisted_messages[0].body,
        MessageBody::AppendResponse {
            index: 1,
            reject: false,
            ..
        }
    ));
    assert_eq!(ready.entries.len(), 1);
    assert_eq!(ready.hard_state.map(|h| h.term), Some(1));
}

#[test]
fn follower_never_truncates_on_a_stale_or_duplicated_append() {
    let mut raft = node(2, &[1, 2, 3]);
    let entries: Vec<Entry> = (1..=5).map(|i| entry(i, 1)).collect();
    raft.step(append(1, 2, 1, (0, 0), entries.clone())).unwrap();
    persist(&mut raft);
    // An older message carrying a prefix arrives late, then a duplicate of the whole.
    raft.step(append(1, 2, 1, (0, 0), entries[..2].to_vec()))
        .unwrap();
    raft.step(append(1, 2, 1, (0, 0), entries)).unwrap();
    assert_eq!(raft.last_index(), 5);
    let ready = persist(&mut raft);
    assert!(ready.entries.is_empty(), "stale appends rewrote entries");
}

#[test]
fn conflicting_entries_are_replaced_and_rejections_carry_a_term_hint() {
    let mut raft = node(2, &[1, 2, 3]);
    raft.step(append(
        1,
        2,
        1,
        (0, 0),
        (1..=4).map(|i| entry(i, 1)).collect(),
    ))
    .unwrap();
    persist(&mut raft);
    // A leader of term 3 whose log has term 2 at index 3: the follower rejects and hints.
    raft.step(append(3, 2, 3, (4, 2), vec![entry(5, 3)]))
        .unwrap();
    let ready = persist(&mut raft);
    let hint = ready.persisted_messages.iter().find_map(|m| match m.body {
        MessageBody::AppendResponse {
            reject: true,
            hint_index,
            hint_term,
            ..
        } => Some((hint_index, hint_term)),
        _ => None,
    });
    assert_eq!(
        hint,
        Some((4, 1)),
        "hint: the last index whose term is at most 2"
    );
    raft.step(append(3, 2, 3, (2, 1), vec![entry(3, 2), entry(4, 3)]))
        .unwrap();
    persist(&mut raft);
    assert_eq!(raft.log_term(3), Some(2));
    assert_eq!(raft.log_term(4), Some(3));
    assert_eq!(raft.storage().last_index(), 4);
}

#[test]
fn messages_from_unknown_nodes_are_refused_without_effect() {
    let mut raft = node(2, &[1, 2, 3]);
    let before = raft.hard_state();
    let result = raft.step(append(9, 2, 5, (0, 0), vec![entry(1, 5)]));
    assert_eq!(result, Err(Error::UnknownNode(9)));
    let result = raft.step(append(2, 2, 5, (0, 0), Vec::new()));
    assert_eq!(result, Err(Error::UnknownNode(2)), "a message from itself");
    assert_eq!(raft.hard_state(), before);
    assert!(!raft.has_ready());
}

#[test]
fn future_term_with_bogus_indexes_is_refused_before_the_term_changes() {
    let mut raft = node(2, &[1, 2, 3]);
    let gap = append(1, 2, 7, (0, 0), vec![entry(1, 7), entry(3, 7)]);
    assert!(matches!(raft.step(gap), Err(Error::InvalidMessage(_))));
    let future_entry = append(1, 2, 7, (0, 0), vec![entry(1, 8)]);
    assert!(matches!(
        raft.step(future_entry),
        Err(Error::InvalidMessage(_))
    ));
    let future_prev = append(1, 2, 7, (3, 9), Vec::new());
    assert!(matches!(
        raft.step(future_prev),
        Err(Error::InvalidMessage(_))
    ));
    let misaddressed = append(1, 3, 7, (0, 0), Vec::new());
    assert!(matches!(
        raft.step(misaddressed),
        Err(Error::InvalidMessage(_))
    ));
    assert_eq!(raft.term(), 0, "a refused message changed the term");
    assert!(!raft.has_ready());
}

#[test]
fn entries_over_the_size_limit_are_refused_from_peers_and_proposers() {
    let mut raft = node(1, &[1]);
    let huge = Payload::from(vec![0u8; ENTRY_BYTES_MAX + 1]);
    let mut oversized = entry(1, 1);
    oversized.data = huge.clone();
    let mut follower = node(2, &[1, 2]);
    let result = follower.step(append(1, 2, 1, (0, 0), vec![oversized]));
    assert!(matches!(result, Err(Error::EntryTooLarge { .. })));
    assert_eq!(follower.last_index(), 0);
    tick_until_campaign(&mut raft);
    persist(&mut raft);
    persist(&mut raft);
    let last = raft.last_index();
    let batch = vec![Payload::from_slice(b"ok"), huge];
    assert!(matches!(
        raft.propose_batch(batch),
        Err(Error::EntryTooLarge { .. })
    ));
    assert_eq!(
        raft.last_index(),
        last,
        "a refused batch left entries behind"
    );
}

/// Node 1 of {1, 2, 3}, elected with node 2's votes, its no-op acknowledged by node 2.
fn leader_of_three() -> Raft<MemStorage> {
    let mut leader = node(1, &[1, 2, 3]);
    tick_until_campaign(&mut leader);
    // Pre-vote round, then the real vote.
    for _ in 0..2 {
        let ready = persist(&mut leader);
        let term = leader.term();
        for m in ready.messages.iter().filter(|m| m.to == 2) {
            let body = match m.body {
                MessageBody::PreVote { .. } => MessageBody::PreVoteResponse { granted: true },
                _ => MessageBody::VoteResponse { granted: true },
            };
            leader
                .step(Message {
                    from: 2,
                    to: 1,
                    term: m.term.max(term),
                    body,
                })
                .unwrap();
        }
    }
    assert_eq!(leader.role(), Role::Leader);
    persist(&mut leader);
    let term = leader.term();
    let last = leader.last_index();
    leader
        .step(Message {
            from: 2,
            to: 1,
            term,
            body: MessageBody::AppendResponse {
                index: last,
                reject: false,
                hint_index: 0,
                hint_term: 0,
                counted: true,
            },
        })
        .unwrap();
    persist(&mut leader);
    assert_eq!(leader.commit_index(), last);
    leader
}

#[test]
fn bogus_acknowledgements_are_refused_by_the_leader() {
    let mut leader = leader_of_three();
    let term = leader.term();
    let match_before = leader.tracker().get(2).unwrap().match_index;
    let ack = |index| Message {
        from: 2,
        to: 1,
        term,
        body: MessageBody::AppendResponse {
            index,
            reject: false,
            hint_index: 0,
            hint_term: 0,
            counted: true,
        },
    };
    let result = leader.step(ack(leader.last_index() + 100));
    assert!(matches!(result, Err(Error::InvalidMessage(_))));
    assert_eq!(leader.tracker().get(2).unwrap().match_index, match_before);
    let round = Message {
        from: 2,
        to: 1,
        term,
        body: MessageBody::HeartbeatResponse {
            read_round: 99,
            counted: true,
        },
    };
    assert!(matches!(leader.step(round), Err(Error::InvalidMessage(_))));
}

#[test]
fn reads_pending_together_share_one_heartbeat_round() {
    let mut leader = node(1, &[1]);
    tick_until_campaign(&mut leader);
    persist(&mut leader);
    persist(&mut leader);
    for request in 0..10 {
        leader.read_index(request).unwrap();
    }
    let ready = persist(&mut leader);
    assert_eq!(
        ready.read_states.len(),
        10,
        "single voter: reads confirmed at once"
    );
    assert!(ready
        .read_states
        .iter()
        .all(|r| r.index == leader.commit_index()));
}

#[test]
fn invalid_configuration_is_refused() {
    let mut config = Config::new(1);
    config.heartbeat_ticks = config.election_ticks;
    assert!(matches!(
        Raft::new(config, MemStorage::new_with_voters(&[1])),
        Err(Error::InvalidConfig(_))
    ));
    assert!(Raft::new(Config::new(0), MemStorage::new_with_voters(&[1])).is_err());
    assert!(Raft::new(Config::new(1), MemStorage::new_with_voters(&[])).is_err());
}

#[test]
fn one_heartbeat_round_confirms_every_read_pending_when_it_began() {
    let mut leader = leader_of_three();
    let term = leader.term();
    for request in 0..10 {
        leader.read_index(request).unwrap();
    }
    let ready = persist(&mut leader);
    let heartbeats: Vec<_> = ready
        .messages
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::Heartbeat { read_round, .. } => Some((m.to, read_round)),
            _ => None,
        })
        .collect();
    assert_eq!(
        heartbeats.len(),
        2,
        "one heartbeat per follower for ten reads"
    );
    assert!(
        ready.read_states.is_empty(),
        "confirmed before a quorum answered"
    );
    let round = heartbeats[0].1;
    leader
        .step(Message {
            from: 3,
            to: 1,
            term,
            body: MessageBody::HeartbeatResponse {
                read_round: round,
                counted: true,
            },
        })
        .unwrap();
    let ready = persist(&mut leader);
    assert_eq!(ready.read_states.len(), 10);
    // A read registered after the round began needs the next round.
    leader.read_index(99).unwrap();
    persist(&mut leader);
    leader
        .step(Message {
            from: 3,
            to: 1,
            term,
            body: MessageBody::HeartbeatResponse {
                read_round: round,
                counted: true,
            },
        })
        .unwrap();
    assert!(persist(&mut leader).read_states.is_empty());
}

fn chunk(
    from: u64,
    term: u64,
    meta: &crate::types::SnapshotMeta,
    data: &[u8],
    offset: usize,
    len: usize,
) -> Message {
    Message {
        from,
        to: 2,
        term,
        body: MessageBody::InstallSnapshot {
            meta: meta.clone(),
            total_bytes: data.len() as u64,
            offset: offset as u64,
            chunk: Payload::from_slice(&data[offset..offset + len]),
        },
    }
}

fn snapshot_meta(index: u64, term: u64) -> crate::types::SnapshotMeta {
    crate::types::SnapshotMeta {
        index,
        term,
        conf: crate::types::ConfState::with_voters(&[1, 2, 3]),
    }
}

fn progress_reply(ready: &Ready) -> Option<u64> {
    ready.messages.iter().find_map(|m| match m.body {
        MessageBody::SnapshotProgress { received_bytes, .. } => Some(received_bytes),
        _ => None,
    })
}

#[test]
fn a_partial_snapshot_is_never_installed() {
    let mut follower = node(2, &[1, 2, 3]);
    let data = b"0123456789";
    let meta = snapshot_meta(50, 3);
    follower.step(chunk(1, 3, &meta, data, 0, 4)).unwrap();
    let ready = persist(&mut follower);
    assert!(
        ready.snapshot.is_none(),
        "installed after the first of three chunks"
    );
    assert_eq!(progress_reply(&ready), Some(4));
    assert_eq!(follower.last_index(), 0);
    follower.step(chunk(1, 3, &meta, data, 4, 4)).unwrap();
    follower.step(chunk(1, 3, &meta, data, 8, 2)).unwrap();
    let ready = persist(&mut follower);
    let snapshot = ready.snapshot.expect("complete snapshot handed out");
    assert_eq!(snapshot.data.as_slice(), data);
    assert_eq!((follower.last_index(), follower.commit_index()), (50, 50));
    assert!(ready.persisted_messages.iter().any(|m| matches!(
        m.body,
        MessageBody::AppendResponse {
            index: 50,
            reject: false,
            ..
        }
    )));
}

#[test]
fn a_lost_chunk_is_asked_for_again_and_a_new_leader_resumes_the_transfer() {
    let mut follower = node(2, &[1, 2, 3]);
    let data = b"abcdefghijkl";
    let meta = snapshot_meta(40, 2);
    follower.step(chunk(1, 2, &meta, data, 0, 4)).unwrap();
    persist(&mut follower);
    // The chunk at 4 is lost; the one at 8 does not continue what the follower holds.
    follower.step(chunk(1, 2, &meta, data, 8, 4)).unwrap();
    assert_eq!(progress_reply(&persist(&mut follower)), Some(4));
    // Leader 3 takes over in term 3 and starts sending the same snapshot from the start:
    // the follower tells it to resume at byte 4.
    follower.step(chunk(3, 3, &meta, data, 0, 4)).unwrap();
    assert_eq!(progress_reply(&persist(&mut follower)), Some(4));
    follower.step(chunk(3, 3, &meta, data, 4, 8)).unwrap();
    let ready = persist(&mut follower);
    assert_eq!(ready.snapshot.map(|s| s.data.len()), Some(12));
}

#[test]
fn malformed_snapshot_chunks_are_refused() {
    let mut follower = node(2, &[1, 2, 3]);
    let meta = snapshot_meta(10, 1);
    let mut beyond = chunk(1, 1, &meta, b"abcd", 0, 4);
    if let MessageBody::InstallSnapshot { total_bytes, .. } = &mut beyond.body {
        *total_bytes = 2;
    }
    assert!(matches!(
        follower.step(beyond),
        Err(Error::InvalidMessage(_))
    ));
    let mut huge = chunk(1, 1, &meta, b"abcd", 0, 4);
    if let MessageBody::InstallSnapshot { total_bytes, .. } = &mut huge.body {
        *total_bytes = u64::MAX;
    }
    assert!(matches!(follower.step(huge), Err(Error::InvalidMessage(_))));
    let future = chunk(1, 1, &snapshot_meta(10, 5), b"abcd", 0, 4);
    assert!(matches!(
        follower.step(future),
        Err(Error::InvalidMessage(_))
    ));
    assert_eq!(follower.term(), 0);
    assert!(!follower.has_ready());
}
