//! Elections: pre-vote, vote, counting, and leader transfer (TimeoutNow).

use super::message::{Message, MessageBody};
use super::node::{Raft, Role};
use super::storage::Storage;
use crate::error::{Error, Result};
use crate::types::{NodeId, NO_NODE};

impl<S: Storage> Raft<S> {
    /// Starts an election: a pre-vote round first when enabled, unless `transfer` (asked by the
    /// leader through TimeoutNow) says to campaign at once.
    pub(super) fn start_election(&mut self, transfer: bool) {
        if !self.may_campaign() || !self.config.may_vote {
            return;
        }
        if self.config.pre_vote && !transfer {
            self.become_pre_candidate();
        } else {
            self.become_candidate(transfer);
        }
    }

    fn become_pre_candidate(&mut self) {
        // A pre-candidate keeps its term and vote: it only asks whether it could win.
        self.role = Role::PreCandidate;
        self.leader = NO_NODE;
        self.votes.clear();
        self.votes.push((self.id, true));
        self.reset_election_timer();
        self.election_elapsed = 0;
        if self.tracker.tally(&self.votes) == Some(true) {
            self.become_candidate(false);
            return;
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let term = self.term + 1;
        for to in self.voter_peers() {
            self.send_with_term(
                to,
                term,
                MessageBody::PreVote {
                    last_index,
                    last_term,
                },
            );
        }
    }

    fn become_candidate(&mut self, transfer: bool) {
        let term = self.term + 1;
        self.reset_to_term(term);
        self.role = Role::Candidate;
        self.vote = self.id;
        // Our own vote counts once it is durable (see `advance`), so that a crash before the
        // sync cannot let this node vote twice in one term.
        self.self_vote_pending = true;
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        for to in self.voter_peers() {
            self.send(
                to,
                MessageBody::Vote {
                    last_index,
                    last_term,
                    transfer,
                },
            );
        }
    }

    /// Counts the candidate's own vote once its term and vote are durable.
    pub(super) fn count_self_vote(&mut self) {
        if !self.self_vote_pending || self.role != Role::Candidate {
            return;
        }
        self.self_vote_pending = false;
        self.record_vote(self.id, true);
    }

    fn voter_peers(&self) -> Vec<NodeId> {
        self.tracker
            .iter()
            .filter(|p| !p.is_learner && p.id != self.id)
            .map(|p| p.id)
            .collect()
    }

    pub(super) fn handle_vote_request(&mut self, message: &Message) {
        let (last_index, last_term, pre_vote) = match message.body {
            MessageBody::PreVote {
                last_index,
                last_term,
            } => (last_index, last_term, true),
            MessageBody::Vote {
                last_index,
                last_term,
                ..
            } => (last_index, last_term, false),
            _ => return,
        };
        let can_vote = self.vote == message.from
            || (self.vote == NO_NODE && self.leader == NO_NODE)
            || (pre_vote && message.term > self.term);
        let granted =
            can_vote && self.config.may_vote && self.log.is_up_to_date(last_index, last_term);
        if pre_vote {
            // A granted pre-vote answers in the term asked about; a refusal in our own term,
            // so that a pre-candidate that is behind learns the newer term.
            let term = if granted { message.term } else { self.term };
            self.send_with_term(message.from, term, MessageBody::PreVoteResponse { granted });
            return;
        }
        if granted {
            self.election_elapsed = 0;
            self.vote = message.from;
        }
        self.send(message.from, MessageBody::VoteResponse { granted });
    }

    pub(super) fn handle_vote_response(&mut self, message: &Message, granted: bool) {
        let expected = match message.body {
            MessageBody::PreVoteResponse { .. } => Role::PreCandidate,
            _ => Role::Candidate,
        };
        if self.role != expected {
            return;
        }
        self.record_vote(message.from, granted);
    }

    fn record_vote(&mut self, from: NodeId, granted: bool) {
        if !self.votes.iter().any(|(id, _)| *id == from) {
            self.votes.push((from, granted));
        }
        match self.tracker.tally(&self.votes) {
            Some(true) if self.role == Role::PreCandidate => self.become_candidate(false),
            Some(true) => self.become_leader(),
            Some(false) => {
                let term = self.term;
                self.become_follower(term, NO_NODE);
            }
            None => {}
        }
    }

    /// The transport saw the connection `from` opened to us break (its process died, or the
    /// network between us failed). When `from` is our leader, its lease is over at once: we
    /// grant votes again, and campaign after a random part of one election timeout instead of
    /// a whole one. A leader that is in fact alive loses nothing: its next heartbeat restarts
    /// our timer, and until then pre-vote keeps us from raising the term unless a majority
    /// lost it too. This is what makes a crashed leader's replacement quicker than the
    /// election timeout alone would allow.
    pub fn leader_connection_lost(&mut self, from: NodeId) {
        if self.role != Role::Leader && from != NO_NODE && self.leader == from {
            self.election_elapsed = self.election_elapsed.max(self.config.election_ticks);
        }
    }

    /// Asks the leader to hand leadership to `target`, which campaigns as soon as its log is
    /// up to date. New proposals are refused until the transfer completes or times out.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<()> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader(),
            });
        }
        if !self.tracker.is_voter(target) {
            return Err(Error::UnknownNode(target));
        }
        if target == self.id || self.transfer_target == target {
            return Ok(());
        }
        self.transfer_target = target;
        self.election_elapsed = 0;
        let caught_up = self
            .tracker
            .get(target)
            .is_some_and(|p| p.match_index == self.log.last_index());
        if caught_up {
            self.send(target, MessageBody::TimeoutNow);
        } else {
            self.broadcast_pending = true;
        }
        Ok(())
    }

    /// The transfer target is up to date: tell it to campaign.
    pub(super) fn maybe_finish_transfer(&mut self, from: NodeId) {
        if self.transfer_target != from {
            return;
        }
        let caught_up = self
            .tracker
            .get(from)
            .is_some_and(|p| p.match_index == self.log.last_index());
        if caught_up {
            self.send(from, MessageBody::TimeoutNow);
        }
    }

    pub(super) fn handle_timeout_now(&mut self) {
        if self.role == Role::Leader {
            return;
        }
        self.start_election(true);
    }
}
