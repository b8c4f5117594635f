//! The leader's clock of session deadlines. Sans-IO: the caller passes the time in.
//!
//! Only the leader keeps deadlines; they are not replicated. A new leader starts every live
//! session's deadline afresh at a full TTL, so a failover never expires sessions whose
//! keepalives simply had nowhere to go (the mass expiry of etcd #8382). A leader that could not
//! look at the clock for a while (a slow disk, a paused process) shifts every deadline by the
//! time it lost before expiring anything, because the keepalives sent meanwhile are still
//! waiting in its sockets (etcd #15247).

use std::collections::{BTreeMap, BTreeSet};

use crate::limits::EXPIRE_BATCH_MAX;

/// Deadlines of the live sessions, on the leader.
#[derive(Clone, Debug, Default)]
pub struct SessionClock {
    /// session → (deadline, ttl), in ms.
    deadlines: BTreeMap<u64, (u64, u64)>,
    /// (deadline, session), to find the due ones.
    by_deadline: BTreeSet<(u64, u64)>,
    /// Sessions whose expiry was proposed, with when (proposed again if still alive later).
    proposed: BTreeMap<u64, u64>,
    /// When the clock was last consulted.
    last_check_ms: Option<u64>,
}

impl SessionClock {
    /// An empty clock (a member that is not leader keeps it empty).
    pub fn new() -> SessionClock {
        SessionClock::default()
    }

    /// A member became leader at `now_ms`: every live session gets a full TTL from now.
    pub fn restart(&mut self, now_ms: u64, sessions: impl Iterator<Item = (u64, u64)>) {
        self.clear();
        for (session, ttl_ms) in sessions {
            self.set(session, now_ms.saturating_add(ttl_ms), ttl_ms);
        }
        self.last_check_ms = Some(now_ms);
    }

    /// Leadership was lost: the next leader keeps the deadlines.
    pub fn clear(&mut self) {
        self.deadlines.clear();
        self.by_deadline.clear();
        self.proposed.clear();
        self.last_check_ms = None;
    }

    /// Whether the clock is running (this member leads).
    pub fn is_running(&self) -> bool {
        self.last_check_ms.is_some()
    }

    /// A session was created (applied) while this member leads.
    pub fn created(&mut self, session: u64, ttl_ms: u64, now_ms: u64) {
        if self.is_running() {
            self.set(session, now_ms.saturating_add(ttl_ms), ttl_ms);
        }
    }

    /// A session ended (applied).
    pub fn ended(&mut self, session: u64) {
        if let Some((deadline, _)) = self.deadlines.remove(&session) {
            self.by_deadline.remove(&(deadline, session));
        }
        self.proposed.remove(&session);
    }

    /// A keepalive for `session` was confirmed at `now_ms` (this member was leader when it
    /// arrived); returns the session's TTL, or `None` if the session is not alive — or is
    /// about to end: once this leader proposed its expiry, the expiry is in the log and will
    /// apply, so the keepalive must not tell the client its session lives on.
    pub fn keepalive(&mut self, session: u64, now_ms: u64) -> Option<u64> {
        if self.proposed.contains_key(&session) {
            return None;
        }
        let (_, ttl_ms) = *self.deadlines.get(&session)?;
        self.set(session, now_ms.saturating_add(ttl_ms), ttl_ms);
        Some(ttl_ms)
    }

    /// The sessions to expire now, at most [`EXPIRE_BATCH_MAX`]. A gap since the last call
    /// longer than `stall_ms` first shifts every deadline by the gap's excess over `stall_ms`. A session proposed
    /// already is proposed again only after `retry_ms` (the proposal may have been lost).
    pub fn due(&mut self, now_ms: u64, stall_ms: u64, retry_ms: u64) -> Vec<u64> {
        let Some(last) = self.last_check_ms else {
            return Vec::new();
        };
        let gap = now_ms.saturating_sub(last);
        if gap > stall_ms {
            // Only the time beyond a normal interval is forgiven: a leader whose every turn
            // is slow (a loaded disk) still expires dead sessions, a little later.
            let lost = gap - stall_ms;
            let shifted: Vec<(u64, (u64, u64))> = self
                .deadlines
                .iter()
                .map(|(s, (d, ttl))| (*s, (d.saturating_add(lost), *ttl)))
                .collect();
            self.deadlines.clear();
            self.by_deadline.clear();
            for (session, (deadline, ttl)) in shifted {
                self.set(session, deadline, ttl);
            }
        }
        self.last_check_ms = Some(now_ms);
        let mut due = Vec::new();
        for &(deadline, session) in &self.by_deadline {
            if deadline > now_ms || due.len() >= EXPIRE_BATCH_MAX {
                break;
            }
            let fresh = self
                .proposed
                .get(&session)
                .is_none_or(|at| now_ms >= at.saturating_add(retry_ms));
            if fresh {
                due.push(session);
            }
        }
        for session in &due {
            self.proposed.insert(*session, now_ms);
        }
        due
    }

    /// The session's deadline in ms, if it has one.
    pub fn deadline(&self, session: u64) -> Option<u64> {
        self.deadlines.get(&session).map(|(d, _)| *d)
    }

    /// Number of sessions tracked.
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    fn set(&mut self, session: u64, deadline: u64, ttl_ms: u64) {
        if let Some((old, _)) = self.deadlines.insert(session, (deadline, ttl_ms)) {
            self.by_deadline.remove(&(old, session));
        }
        self.by_deadline.insert((deadline, session));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_leader_restarts_deadlines_and_expires_only_silent_sessions() {
        let mut clock = SessionClock::new();
        assert!(
            clock.due(0, 100, 1000).is_empty(),
            "a follower expires nothing"
        );
        clock.restart(1_000, [(1, 500), (2, 500)].into_iter());
        assert!(clock.due(1_400, 1_000, 1_000).is_empty());
        assert_eq!(clock.keepalive(1, 1_400), Some(500));
        assert_eq!(clock.due(1_501, 1_000, 1_000), vec![2]);
        assert_eq!(
            clock.keepalive(2, 1_520),
            None,
            "a keepalive after the expiry was proposed must not say the session lives"
        );
        assert!(clock.due(1_550, 1_000, 1_000).is_empty(), "proposed once");
        assert_eq!(
            clock.due(1_899, 1_000, 100),
            vec![2],
            "proposed again later"
        );
        assert_eq!(clock.due(1_901, 1_000, 1_000), vec![1]);
        clock.ended(2);
        assert_eq!(clock.keepalive(2, 1_950), None);
    }

    #[test]
    fn a_stall_shifts_every_deadline() {
        let mut clock = SessionClock::new();
        clock.restart(0, [(1, 1_000)].into_iter());
        // The loop could not look at the clock for 5 s: nothing expires at once.
        assert!(clock.due(5_000, 200, 1_000).is_empty());
        assert_eq!(clock.deadline(1), Some(5_800));
        assert_eq!(clock.due(5_801, 2_000, 1_000), vec![1]);
    }

    #[test]
    fn a_leader_whose_every_turn_is_slow_still_expires_sessions() {
        let mut clock = SessionClock::new();
        clock.restart(0, [(1, 1_000)].into_iter());
        let mut now = 0;
        let mut expired = false;
        // Every turn takes 250 ms, longer than the 200 ms stall threshold.
        for _ in 0..40 {
            now += 250;
            if !clock.due(now, 200, 10_000).is_empty() {
                expired = true;
                break;
            }
        }
        assert!(
            expired,
            "the session never expired (deadline {:?})",
            clock.deadline(1)
        );
    }
}
