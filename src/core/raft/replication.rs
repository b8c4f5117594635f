//! Log replication: the leader's AppendEntries and heartbeats, the follower's handling of
//! them, and commitment by counting.

use super::message::{Message, MessageBody};
use super::node::{Raft, Role};
use super::progress::ProgressState;
use super::storage::Storage;
use crate::limits::APPEND_ENTRIES_COUNT_MAX;
use crate::types::{Index, NodeId, Term};

impl<S: Storage> Raft<S> {
    /// Sends every member whatever it is missing, as far as its window allows. Called once per
    /// `Ready`, so all proposals since the last one travel together.
    pub(super) fn broadcast_append(&mut self) {
        let commit_only = !self.broadcast_pending && self.commit_broadcast_pending;
        self.broadcast_pending = false;
        self.commit_broadcast_pending = false;
        let committed = self.log.committed;
        for position in 0..self.tracker.iter().count() {
            let Some((id, idle_behind)) = self.tracker.iter().nth(position).map(|p| {
                // A member with nothing in flight would otherwise learn the new commit index
                // only at the next heartbeat (and apply, serve watches and reads that late);
                // one with appends in flight learns it from the next one, soon.
                let idle = p.state == ProgressState::Replicate && p.inflights.count() == 0;
                (p.id, idle && p.commit_sent < committed)
            }) else {
                break;
            };
            if id != self.id {
                // Bounded by the in-flight window: each message occupies one slot.
                while self.send_append(id, commit_only || idle_behind) {}
            }
        }
    }

    /// Sends one AppendEntries to `to` if it is missing entries (or, with `even_if_empty`, to
    /// carry a new commit index). Returns whether another message could usefully follow.
    pub(super) fn send_append(&mut self, to: NodeId, even_if_empty: bool) -> bool {
        let last_index = self.log.last_index();
        let Some(progress) = self.tracker.get(to) else {
            return false;
        };
        if progress.is_paused() {
            return false;
        }
        let next = progress.next_index;
        let has_entries = next <= last_index;
        if !has_entries && !even_if_empty {
            return false;
        }
        let prev_index = next - 1;
        let Ok(prev_term) = self.log.term(prev_index) else {
            // The entry was compacted away: only a snapshot can bring this member up to date.
            self.start_snapshot(to);
            return false;
        };
        let mut entries = std::mem::take(&mut self.append_scratch);
        entries.clear();
        let high = last_index
            .min(prev_index + APPEND_ENTRIES_COUNT_MAX as Index)
            .saturating_add(1);
        if has_entries {
            if let Err(error) =
                self.log
                    .entries(next, high, self.config.append_bytes_max, &mut entries)
            {
                self.append_scratch = entries;
                if matches!(error, crate::error::Error::Compacted { .. }) {
                    self.start_snapshot(to);
                }
                return false;
            }
        }
        let sent_last = prev_index + entries.len() as Index;
        let commit = self.log.committed;
        let Some(progress) = self.tracker.get_mut(to) else {
            return false;
        };
        progress.commit_sent = commit;
        match progress.state {
            ProgressState::Replicate if !entries.is_empty() => {
                progress.next_index = sent_last + 1;
                progress.inflights.add(sent_last);
            }
            ProgressState::Probe => progress.probe_sent = true,
            ProgressState::Replicate | ProgressState::Snapshot => {}
        }
        let more = progress.state == ProgressState::Replicate
            && !entries.is_empty()
            && sent_last < last_index;
        // The message owns an exact-size copy; the scratch buffer is reused for the next one.
        let payload = entries.as_slice().to_vec();
        self.append_scratch = entries;
        self.send(
            to,
            MessageBody::Append {
                prev_index,
                prev_term,
                entries: payload,
                commit,
            },
        );
        more
    }

    /// Sends a heartbeat to every member, carrying the current ReadIndex round.
    pub(super) fn broadcast_heartbeat(&mut self) {
        let round = self.read_round;
        let committed = self.log.committed;
        for position in 0..self.tracker.iter().count() {
            let Some((id, match_index)) = self
                .tracker
                .iter()
                .nth(position)
                .map(|p| (p.id, p.match_index))
            else {
                break;
            };
            if id == self.id {
                continue;
            }
            // Never tell a follower to commit beyond what it is known to hold.
            let commit = committed.min(match_index);
            self.send(
                id,
                MessageBody::Heartbeat {
                    commit,
                    read_round: round,
                },
            );
        }
    }

    pub(super) fn handle_append(&mut self, message: Message) {
        self.election_elapsed = 0;
        self.leader = message.from;
        if self.role != Role::Follower {
            let term = self.term;
            self.become_follower(term, message.from);
        }
        let MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
        } = message.body
        else {
            return;
        };
        if prev_index < self.log.committed {
            // Everything up to our commit index is already settled; say so.
            let index = self.log.committed;
            self.respond_append(message.from, index, false, 0, 0);
            return;
        }
        if !self.log.matches(prev_index, prev_term) {
            let (hint_index, hint_term) = self
                .log
                .find_conflict_by_term(prev_index.min(self.log.last_index()), prev_term);
            self.respond_append(message.from, prev_index, true, hint_index, hint_term);
            return;
        }
        let last_new = prev_index + entries.len() as Index;
        if let Some(conflict) = self.log.find_conflict(&entries) {
            if conflict <= self.log.committed {
                // Validated leaders never rewrite committed entries; refuse rather than obey.
                return;
            }
            let skip = (conflict - prev_index - 1) as usize;
            self.log.append(&entries[skip..]);
            self.entries_appended(&entries[skip..]);
        }
        // Only entries this message vouches for may be committed: never beyond `last_new`,
        // even if our log is longer (its tail may not match the leader's).
        self.log.commit_to(commit.min(last_new));
        self.respond_append(message.from, last_new, false, 0, 0);
    }

    pub(super) fn respond_append(
        &mut self,
        to: NodeId,
        index: Index,
        reject: bool,
        hint_index: Index,
        hint_term: Term,
    ) {
        self.send(
            to,
            MessageBody::AppendResponse {
                index,
                reject,
                hint_index,
                hint_term,
                counted: self.config.may_vote,
            },
        );
    }

    pub(super) fn handle_append_response(&mut self, message: &Message) {
        if self.role != Role::Leader {
            return;
        }
        let MessageBody::AppendResponse {
            index,
            reject,
            hint_index,
            hint_term,
            counted,
        } = message.body
        else {
            return;
        };
        let from = message.from;
        if let Some(progress) = self.tracker.get_mut(from) {
            progress.counted = counted;
        }
        if reject {
            self.handle_append_rejection(from, index, hint_index, hint_term);
            return;
        }
        let Some(progress) = self.tracker.get_mut(from) else {
            return;
        };
        progress.recent_active = true;
        let moved = progress.maybe_update(index);
        match progress.state {
            // Any acknowledgement while probing tells where the logs match: start streaming.
            ProgressState::Probe => progress.become_replicate(),
            ProgressState::Replicate => progress.inflights.free_to(index),
            // The snapshot is installed (or the member had it all along).
            ProgressState::Snapshot if progress.match_index >= progress.snapshot.index => {
                progress.become_replicate()
            }
            ProgressState::Snapshot => {}
        }
        if moved && self.maybe_commit() {
            self.commit_broadcast_pending = true;
        }
        self.maybe_finish_transfer(from);
        self.broadcast_pending = true;
    }

    fn handle_append_rejection(
        &mut self,
        from: NodeId,
        rejected: Index,
        hint_index: Index,
        hint_term: Term,
    ) {
        let probe_index = if hint_term > 0 {
            self.log.find_conflict_by_term(hint_index, hint_term).0
        } else {
            hint_index
        };
        let Some(progress) = self.tracker.get_mut(from) else {
            return;
        };
        progress.recent_active = true;
        if hint_index < progress.match_index && progress.state != ProgressState::Snapshot {
            // The member holds less than it acknowledged: it lost its data and was rebuilt (or
            // this answer is stale). Forget the match and probe from what it says it holds;
            // commitment is unaffected, since the commit index never moves back.
            progress.match_index = 0;
            progress.become_probe();
            progress.next_index = hint_index + 1;
            self.send_append(from, false);
            return;
        }
        if progress.maybe_decrease_to(rejected, probe_index) {
            if progress.state == ProgressState::Replicate {
                progress.become_probe();
            }
            self.send_append(from, false);
        }
    }

    pub(super) fn handle_heartbeat(&mut self, message: &Message, commit: Index, read_round: u64) {
        self.election_elapsed = 0;
        self.leader = message.from;
        if self.role != Role::Follower {
            let term = self.term;
            self.become_follower(term, message.from);
        }
        let last_index = self.log.last_index();
        if commit > last_index {
            // The leader believes we hold entries we do not: our data directory was rebuilt
            // since we acknowledged them. Tell it where our log really ends.
            let last_term = self.log.last_term();
            self.respond_append(message.from, commit, true, last_index, last_term);
        } else {
            self.log.commit_to(commit);
        }
        let counted = self.config.may_vote;
        self.send(
            message.from,
            MessageBody::HeartbeatResponse {
                read_round,
                counted,
            },
        );
    }

    pub(super) fn handle_heartbeat_response(
        &mut self,
        from: NodeId,
        read_round: u64,
        counted: bool,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        let Some(progress) = self.tracker.get_mut(from) else {
            return;
        };
        progress.recent_active = true;
        progress.counted = counted;
        progress.probe_sent = false;
        progress.read_round_acked = progress.read_round_acked.max(read_round);
        if progress.state == ProgressState::Snapshot {
            self.snapshot_heartbeat(from);
            self.release_confirmed_reads();
            return;
        }
        let stalled = progress.match_index == progress.match_at_last_heartbeat;
        progress.match_at_last_heartbeat = progress.match_index;
        if progress.state == ProgressState::Replicate
            && progress.match_index < last_index
            && stalled
        {
            // No acknowledgement for a whole heartbeat interval while entries are outstanding:
            // they (or their answers) were probably lost. Probe again from the match index;
            // re-sent entries that did arrive are harmless duplicates.
            progress.become_probe();
        }
        if progress.match_index < last_index {
            self.send_append(from, false);
        }
        self.release_confirmed_reads();
    }

    /// Advances the commit index to the highest index a quorum holds, if that entry is of the
    /// current term (Raft §5.4.2: earlier terms' entries commit only indirectly).
    pub(super) fn maybe_commit(&mut self) -> bool {
        let quorum_index = self.tracker.quorum_value(|p| p.match_index);
        if quorum_index <= self.log.committed || self.log.term(quorum_index) != Ok(self.term) {
            return false;
        }
        let newly_committed = self.log.committed + 1..=quorum_index;
        let mut released = 0usize;
        let mut scratch = std::mem::take(&mut self.append_scratch);
        scratch.clear();
        if self
            .log
            .entries(
                *newly_committed.start(),
                quorum_index + 1,
                usize::MAX,
                &mut scratch,
            )
            .is_ok()
        {
            released = scratch.iter().map(|e| e.data.len()).sum();
        }
        scratch.clear();
        self.append_scratch = scratch;
        self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(released);
        self.log.commit_to(quorum_index);
        // Reads waiting for the term's first commit are assigned a round at the next `Ready`.
        self.committed_in_term = true;
        self.leader_committed();
        true
    }

    /// The leader's own entries became durable through `index`.
    pub(super) fn leader_persisted(&mut self, index: Index) {
        let id = self.id;
        if let Some(own) = self.tracker.get_mut(id) {
            own.maybe_update(index);
        }
        if self.maybe_commit() {
            self.commit_broadcast_pending = true;
        }
    }
}
