//! Sessions and the coordination primitives through the C ABI: locks (mutex, read-write,
//! semaphore), elections, groups, work queues, barriers, counters and watches.

use std::ffi::c_char;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::client::accord_client;
use super::{
    accord_buf, accord_result, bytes, free_handle, guard, handle, into_handle, millis, out, Failure,
};
use crate::api::{
    Claim, Event, EventKind, Leadership, Lock, Membership, Observer, Session, SessionStatus, Space,
    WatchItem, WatchStream,
};

/// How sure this process is that a session is alive.
pub type accord_session_state = u32;
/// Alive: a keepalive was acknowledged recently.
pub const ACCORD_SESSION_STATE_HELD: accord_session_state = 1;
/// A keepalive is overdue; still safe until the safety clock runs out.
pub const ACCORD_SESSION_STATE_SUSPECT: accord_session_state = 2;
/// Possibly expired: nothing the session held may be relied on.
pub const ACCORD_SESSION_STATE_LOST: accord_session_state = 3;

fn status_code(status: SessionStatus) -> accord_session_state {
    match status {
        SessionStatus::Held => ACCORD_SESSION_STATE_HELD,
        SessionStatus::Suspect => ACCORD_SESSION_STATE_SUSPECT,
        SessionStatus::Lost => ACCORD_SESSION_STATE_LOST,
    }
}

/// A session (opaque): kept alive by a thread of the library; everything it holds is
/// released when it ends.
pub struct accord_session {
    session: RwLock<Option<Arc<Session>>>,
}

impl accord_session {
    fn get(&self) -> Result<Arc<Session>, Failure> {
        self.session
            .read()
            .clone()
            .ok_or_else(|| Failure::shutdown("session"))
    }
}

/// Opens a session on the client's cluster with `ttl_ms` (1000 to 86,400,000; 10,000 is
/// typical).
#[no_mangle]
pub unsafe extern "C" fn accord_session_create(
    client: *const accord_client,
    ttl_ms: u32,
    session_out: *mut *mut accord_session,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let session_out = unsafe { out(session_out, "session_out") }?;
        let session = Session::create_on(client, millis(ttl_ms))?;
        *session_out = into_handle(accord_session {
            session: RwLock::new(Some(Arc::new(session))),
        });
        Ok(())
    })
}

/// The session's id.
#[no_mangle]
pub unsafe extern "C" fn accord_session_id(
    session: *const accord_session,
    id_out: *mut u64,
) -> accord_result {
    guard(|| {
        let session = unsafe { handle(session, "session") }?.get()?;
        *unsafe { out(id_out, "id_out") }? = session.id();
        Ok(())
    })
}

/// Renews the session now instead of at its next keepalive (the library sends one every
/// TTL / 3 by itself); returns once the cluster acknowledged it, `ACCORD_ERR_TIMEOUT` after
/// `timeout_ms` (0: the client's call timeout), `ACCORD_ERR_SESSION_LOST` if it is lost, or
/// `ACCORD_ERR_CANCELLED` after `accord_session_cancel`. Renewals asked for at the same time
/// by several sessions of one cluster travel in one request.
#[no_mangle]
pub unsafe extern "C" fn accord_session_keepalive(
    session: *const accord_session,
    timeout_ms: u32,
) -> accord_result {
    guard(|| {
        let session = unsafe { handle(session, "session") }?.get()?;
        let timeout = match timeout_ms {
            0 => session.client().config().timeout,
            ms => millis(ms),
        };
        session.keep_alive_once(timeout)?;
        Ok(())
    })
}

/// The session's state now (`ACCORD_SESSION_STATE_*`), checked against its safety clock;
/// `ACCORD_SESSION_STATE_LOST` once it was closed.
#[no_mangle]
pub unsafe extern "C" fn accord_session_status(
    session: *const accord_session,
    status_out: *mut accord_session_state,
) -> accord_result {
    guard(|| {
        let handle = unsafe { handle(session, "session") }?;
        let status_out = unsafe { out(status_out, "status_out") }?;
        // A closed session is lost, as every other binding reports it: the state says
        // what the session is, not whether the handle is open.
        *status_out = match handle.get() {
            Ok(session) => status_code(session.status()),
            Err(_) => ACCORD_SESSION_STATE_LOST,
        };
        Ok(())
    })
}

/// Waits up to `timeout_ms` for the status to differ from `from`; writes the status then
/// (equal to `from` if nothing changed in time; `ACCORD_SESSION_STATE_LOST` at once for a
/// closed session).
#[no_mangle]
pub unsafe extern "C" fn accord_session_wait_change(
    session: *const accord_session,
    from: accord_session_state,
    timeout_ms: u32,
    status_out: *mut accord_session_state,
) -> accord_result {
    guard(|| {
        let handle = unsafe { handle(session, "session") }?;
        let Ok(session) = handle.get() else {
            *unsafe { out(status_out, "status_out") }? = ACCORD_SESSION_STATE_LOST;
            return Ok(());
        };
        let status_out = unsafe { out(status_out, "status_out") }?;
        let from = match from {
            ACCORD_SESSION_STATE_HELD => SessionStatus::Held,
            ACCORD_SESSION_STATE_SUSPECT => SessionStatus::Suspect,
            ACCORD_SESSION_STATE_LOST => SessionStatus::Lost,
            other => return Err(Failure::invalid(format!("{other} is not a session status"))),
        };
        *status_out = status_code(session.wait_change(from, millis(timeout_ms)));
        Ok(())
    })
}

/// Cancels the blocking calls in progress on this session (from any thread): they withdraw
/// and return `ACCORD_ERR_CANCELLED` (within about 50 ms).
#[no_mangle]
pub unsafe extern "C" fn accord_session_cancel(session: *const accord_session) -> accord_result {
    guard(|| {
        let session = unsafe { handle(session, "session") }?.get()?;
        session.cancel_waits();
        Ok(())
    })
}

/// Ends the session now, releasing everything it holds; its state is then
/// `ACCORD_SESSION_STATE_LOST`, and later calls on it return `ACCORD_ERR_SHUTDOWN`.
#[no_mangle]
pub unsafe extern "C" fn accord_session_close(session: *const accord_session) -> accord_result {
    guard(|| {
        let handle = unsafe { handle(session, "session") }?;
        let session = handle
            .session
            .write()
            .take()
            .ok_or_else(|| Failure::shutdown("session"))?;
        session.end()?;
        Ok(())
    })
}

/// Frees the session handle (its keepalives stop; the cluster expires it after its TTL
/// unless it was closed). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn accord_session_free(session: *mut accord_session) {
    unsafe { free_handle(session) }
}

/// A kind of lock.
pub type accord_lock_kind = u32;
/// One holder at a time.
pub const ACCORD_LOCK_MUTEX: accord_lock_kind = 1;
/// The shared (read) side of a read-write lock.
pub const ACCORD_LOCK_READ: accord_lock_kind = 2;
/// The exclusive (write) side of a read-write lock.
pub const ACCORD_LOCK_WRITE: accord_lock_kind = 3;
/// One of a semaphore's permits.
pub const ACCORD_LOCK_SEMAPHORE: accord_lock_kind = 4;

/// A held lock (opaque).
pub struct accord_lock {
    lock: Mutex<Option<Lock>>,
    token: u64,
}

/// Takes the lock `name` of `kind` for the session (`permits` for a semaphore, else
/// ignored), waiting FIFO up to `timeout_ms`. With `try_only`, does not wait: `*lock_out`
/// is set to NULL when the lock is busy. The grant's fencing token is
/// `accord_lock_token`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn accord_lock_acquire(
    session: *const accord_session,
    name: *const u8,
    name_len: usize,
    kind: accord_lock_kind,
    permits: u32,
    timeout_ms: u32,
    try_only: bool,
    lock_out: *mut *mut accord_lock,
) -> accord_result {
    guard(|| {
        let session = unsafe { handle(session, "session") }?.get()?;
        let name = unsafe { bytes(name, name_len, "name") }?;
        let lock_out = unsafe { out(lock_out, "lock_out") }?;
        let timeout = millis(timeout_ms);
        let lock = match (kind, try_only) {
            (ACCORD_LOCK_MUTEX, true) => session.try_lock(name)?,
            (ACCORD_LOCK_MUTEX, false) => Some(session.lock(name, timeout)?),
            (ACCORD_LOCK_READ, false) => Some(session.read_lock(name, timeout)?),
            (ACCORD_LOCK_WRITE, false) => Some(session.write_lock(name, timeout)?),
            (ACCORD_LOCK_SEMAPHORE, false) => Some(session.acquire_permit(name, permits, timeout)?),
            (ACCORD_LOCK_READ | ACCORD_LOCK_WRITE | ACCORD_LOCK_SEMAPHORE, true) => {
                return Err(Failure::invalid("try_only is for mutexes"))
            }
            (other, _) => return Err(Failure::invalid(format!("{other} is not a lock kind"))),
        };
        *lock_out = match lock {
            Some(lock) => into_handle(accord_lock {
                token: lock.token(),
                lock: Mutex::new(Some(lock)),
            }),
            None => std::ptr::null_mut(),
        };
        Ok(())
    })
}

/// The lock's fencing token (the revision of its grant).
#[no_mangle]
pub unsafe extern "C" fn accord_lock_token(
    lock: *const accord_lock,
    token_out: *mut u64,
) -> accord_result {
    guard(|| {
        let lock = unsafe { handle(lock, "lock") }?;
        *unsafe { out(token_out, "token_out") }? = lock.token;
        Ok(())
    })
}

/// Whether the lock is surely still held (not released, session not lost by the safety
/// clock). False also for NULL.
#[no_mangle]
pub unsafe extern "C" fn accord_lock_is_held(lock: *const accord_lock) -> bool {
    let held = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        unsafe { lock.as_ref() }.is_some_and(|l| l.lock.lock().as_ref().is_some_and(Lock::is_held))
    }));
    held.unwrap_or(false)
}

/// Releases the lock (the next waiter gets it). Later calls return `ACCORD_ERR_SHUTDOWN`.
#[no_mangle]
pub unsafe extern "C" fn accord_lock_release(lock: *const accord_lock) -> accord_result {
    guard(|| {
        let lock = unsafe { handle(lock, "lock") }?;
        let held = lock
            .lock
            .lock()
            .take()
            .ok_or_else(|| Failure::shutdown("lock"))?;
        held.release()?;
        Ok(())
    })
}

/// Frees the lock handle (without releasing: release first, or let the session end).
#[no_mangle]
pub unsafe extern "C" fn accord_lock_free(lock: *mut accord_lock) {
    unsafe { free_handle(lock) }
}

/// Leadership of an election (opaque).
pub struct accord_leadership {
    leadership: Mutex<Option<Leadership>>,
    token: u64,
}

/// Stands for election `name` with `value`; returns once elected, or fails after
/// `timeout_ms` (the candidacy is withdrawn).
#[no_mangle]
pub unsafe extern "C" fn accord_election_campaign(
    session: *const accord_session,
    name: *const u8,
    name_len: usize,
    value: *const u8,
    value_len: usize,
    timeout_ms: u32,
    leadership_out: *mut *mut accord_leadership,
) -> accord_result {
    guard(|| {
        let session = unsafe { handle(session, "session") }?.get()?;
        let name = unsafe { bytes(name, name_len, "name") }?;
        let value = unsafe { bytes(value, value_len, "value") }?;
        let leadership_out = unsafe { out(leadership_out, "leadership_out") }?;
        let leadership = session.campaign(name, value, millis(timeout_ms))?;
        *leadership_out = into_handle(accord_leadership {
            token: leadership.token(),
            leadership: Mutex::new(Some(leadership)),
        });
        Ok(())
    })
}

/// The leadership's fencing token.
#[no_mangle]
pub unsafe extern "C" fn accord_leadership_token(
    leadership: *const accord_leadership,
    token_out: *mut u64,
) -> accord_result {
    guard(|| {
        let leadership = unsafe { handle(leadership, "leadership") }?;
        *unsafe { out(token_out, "token_out") }? = leadership.token;
        Ok(())
    })
}

/// Whether this process surely still leads (false also for NULL).
#[no_mangle]
pub unsafe extern "C" fn accord_leadership_is_leader(leadership: *const accord_leadership) -> bool {
    let leads = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        unsafe { leadership.as_ref() }.is_some_and(|l| {
            l.leadership
                .lock()
                .as_ref()
                .is_some_and(Leadership::is_leader)
        })
    }));
    leads.unwrap_or(false)
}

/// Publishes a new value for observers.
#[no_mangle]
pub unsafe extern "C" fn accord_leadership_proclaim(
    leadership: *const accord_leadership,
    value: *const u8,
    value_len: usize,
) -> accord_result {
    guard(|| {
        let leadership = unsafe { handle(leadership, "leadership") }?;
        let value = unsafe { bytes(value, value_len, "value") }?;
        let held = leadership.leadership.lock();
        let held = held
            .as_ref()
            .ok_or_else(|| Failure::shutdown("leadership"))?;
        held.proclaim(value)?;
        Ok(())
    })
}

/// Steps down (the next candidate is elected). Later calls return `ACCORD_ERR_SHUTDOWN`.
#[no_mangle]
pub unsafe extern "C" fn accord_leadership_resign(
    leadership: *const accord_leadership,
) -> accord_result {
    guard(|| {
        let leadership = unsafe { handle(leadership, "leadership") }?;
        let held = leadership
            .leadership
            .lock()
            .take()
            .ok_or_else(|| Failure::shutdown("leadership"))?;
        held.resign()?;
        Ok(())
    })
}

/// Frees the leadership handle (without resigning). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn accord_leadership_free(leadership: *mut accord_leadership) {
    unsafe { free_handle(leadership) }
}

/// The leader of election `name` now (linearizable): `found_out` false when there is none;
/// else its session, token and value (free the value with `accord_buf_free`).
#[no_mangle]
pub unsafe extern "C" fn accord_election_leader(
    client: *const accord_client,
    name: *const u8,
    name_len: usize,
    found_out: *mut bool,
    session_out: *mut u64,
    token_out: *mut u64,
    value_out: *mut accord_buf,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let name = unsafe { bytes(name, name_len, "name") }?;
        let found_out = unsafe { out(found_out, "found_out") }?;
        let session_out = unsafe { out(session_out, "session_out") }?;
        let token_out = unsafe { out(token_out, "token_out") }?;
        let value_out = unsafe { out(value_out, "value_out") }?;
        let leader = client.leader(name)?;
        *found_out = leader.is_some();
        *session_out = leader.as_ref().map_or(0, |l| l.session);
        *token_out = leader.as_ref().map_or(0, |l| l.token);
        *value_out = leader.map_or_else(accord_buf::empty, |l| accord_buf::from_vec(l.value));
        Ok(())
    })
}

/// A stream of an election's leadership changes (opaque).
pub struct accord_observer {
    observer: Mutex<Observer>,
}

/// Observes election `name`: the first change reported is the leader now.
#[no_mangle]
pub unsafe extern "C" fn accord_election_observe(
    client: *const accord_client,
    name: *const u8,
    name_len: usize,
    observer_out: *mut *mut accord_observer,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let name = unsafe { bytes(name, name_len, "name") }?;
        let observer_out = unsafe { out(observer_out, "observer_out") }?;
        let observer = client.observe(name)?;
        *observer_out = into_handle(accord_observer {
            observer: Mutex::new(observer),
        });
        Ok(())
    })
}

/// The next leadership change, waiting up to `timeout_ms` (`ACCORD_ERR_TIMEOUT` if none):
/// `has_leader_out` false while there is no leader; else its session, token and value.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn accord_observer_next(
    observer: *const accord_observer,
    timeout_ms: u32,
    revision_out: *mut u64,
    has_leader_out: *mut bool,
    session_out: *mut u64,
    token_out: *mut u64,
    value_out: *mut accord_buf,
) -> accord_result {
    guard(|| {
        let observer = unsafe { handle(observer, "observer") }?;
        let revision_out = unsafe { out(revision_out, "revision_out") }?;
        let has_leader_out = unsafe { out(has_leader_out, "has_leader_out") }?;
        let session_out = unsafe { out(session_out, "session_out") }?;
        let token_out = unsafe { out(token_out, "token_out") }?;
        let value_out = unsafe { out(value_out, "value_out") }?;
        let change = observer
            .observer
            .lock()
            .next(millis(timeout_ms))?
            .ok_or_else(|| {
                Failure::new(super::ACCORD_ERR_TIMEOUT, "no leadership change in time")
            })?;
        *revision_out = change.revision;
        *has_leader_out = change.leader.is_some();
        *session_out = change.leader.as_ref().map_or(0, |l| l.session);
        *token_out = change.leader.as_ref().map_or(0, |l| l.token);
        *value_out = change
            .leader
            .map_or_else(accord_buf::empty, |l| accord_buf::from_vec(l.value));
        Ok(())
    })
}

/// Frees an observer (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn accord_observer_free(observer: *mut accord_observer) {
    unsafe { free_handle(observer) }
}

/// Presence in a group (opaque).
pub struct accord_membership {
    membership: Mutex<Option<Membership>>,
}

/// Joins `group` as `member` with `metadata`, for as long as the session lives.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn accord_group_join(
    session: *const accord_session,
    group: *const u8,
    group_len: usize,
    member: *const u8,
    member_len: usize,
    metadata: *const u8,
    metadata_len: usize,
    membership_out: *mut *mut accord_membership,
) -> accord_result {
    guard(|| {
        let session = unsafe { handle(session, "session") }?.get()?;
        let group = unsafe { bytes(group, group_len, "group") }?;
        let member = unsafe { bytes(member, member_len, "member") }?;
        let metadata = unsafe { bytes(metadata, metadata_len, "metadata") }?;
        let membership_out = unsafe { out(membership_out, "membership_out") }?;
        let membership = session.join(group, member, metadata)?;
        *membership_out = into_handle(accord_membership {
            membership: Mutex::new(Some(membership)),
        });
        Ok(())
    })
}

/// Leaves the group. Later calls return `ACCORD_ERR_SHUTDOWN`.
#[no_mangle]
pub unsafe extern "C" fn accord_membership_leave(
    membership: *const accord_membership,
) -> accord_result {
    guard(|| {
        let membership = unsafe { handle(membership, "membership") }?;
        let present = membership
            .membership
            .lock()
            .take()
            .ok_or_else(|| Failure::shutdown("membership"))?;
        present.leave()?;
        Ok(())
    })
}

/// Frees a membership handle (without leaving). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn accord_membership_free(membership: *mut accord_membership) {
    unsafe { free_handle(membership) }
}

/// A group's members (opaque); read with `accord_member_list_*`.
pub struct accord_member_list {
    members: Vec<crate::api::Member>,
}

/// The members of `group` (linearizable).
#[no_mangle]
pub unsafe extern "C" fn accord_group_members(
    client: *const accord_client,
    group: *const u8,
    group_len: usize,
    list_out: *mut *mut accord_member_list,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let group = unsafe { bytes(group, group_len, "group") }?;
        let list_out = unsafe { out(list_out, "list_out") }?;
        let (members, _) = client.members(group)?;
        *list_out = into_handle(accord_member_list { members });
        Ok(())
    })
}

/// Number of members in the list (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn accord_member_list_len(list: *const accord_member_list) -> usize {
    unsafe { list.as_ref() }.map_or(0, |l| l.members.len())
}

/// The `index`-th member's id, session and metadata, borrowed from the list.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn accord_member_list_entry(
    list: *const accord_member_list,
    index: usize,
    id_out: *mut *const u8,
    id_len_out: *mut usize,
    session_out: *mut u64,
    metadata_out: *mut *const u8,
    metadata_len_out: *mut usize,
) -> accord_result {
    guard(|| {
        let list = unsafe { handle(list, "list") }?;
        let id_out = unsafe { out(id_out, "id_out") }?;
        let id_len_out = unsafe { out(id_len_out, "id_len_out") }?;
        let session_out = unsafe { out(session_out, "session_out") }?;
        let metadata_out = unsafe { out(metadata_out, "metadata_out") }?;
        let metadata_len_out = unsafe { out(metadata_len_out, "metadata_len_out") }?;
        let member = list.members.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} is past the list's {} members",
                list.members.len()
            ))
        })?;
        *id_out = member.id.as_ptr();
        *id_len_out = member.id.len();
        *session_out = member.session;
        *metadata_out = member.metadata.as_ptr();
        *metadata_len_out = member.metadata.len();
        Ok(())
    })
}

/// Frees a member list (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn accord_member_list_free(list: *mut accord_member_list) {
    unsafe { free_handle(list) }
}

/// Adds an item to `queue`; `item_out` receives its id.
#[no_mangle]
pub unsafe extern "C" fn accord_queue_enqueue(
    client: *const accord_client,
    queue: *const u8,
    queue_len: usize,
    payload: *const u8,
    payload_len: usize,
    item_out: *mut u64,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let queue = unsafe { bytes(queue, queue_len, "queue") }?;
        let payload = unsafe { bytes(payload, payload_len, "payload") }?;
        let item_out = unsafe { out(item_out, "item_out") }?;
        *item_out = client.enqueue(queue, payload)?;
        Ok(())
    })
}

/// A claimed work item (opaque).
pub struct accord_claim {
    claim: Mutex<Option<Claim>>,
    item: u64,
    token: u64,
    payload: Vec<u8>,
}

/// Claims the oldest unclaimed item of `queue` for the session, waiting up to `timeout_ms`
/// for one (with `try_only`, not waiting: `*claim_out` is NULL when the queue is empty).
#[no_mangle]
pub unsafe extern "C" fn accord_queue_claim(
    session: *const accord_session,
    queue: *const u8,
    queue_len: usize,
    timeout_ms: u32,
    try_only: bool,
    claim_out: *mut *mut accord_claim,
) -> accord_result {
    guard(|| {
        let session = unsafe { handle(session, "session") }?.get()?;
        let queue = unsafe { bytes(queue, queue_len, "queue") }?;
        let claim_out = unsafe { out(claim_out, "claim_out") }?;
        let claim = if try_only {
            session.try_claim(queue)?
        } else {
            Some(session.claim(queue, millis(timeout_ms))?)
        };
        *claim_out = match claim {
            Some(claim) => into_handle(accord_claim {
                item: claim.item,
                token: claim.token,
                payload: claim.payload.clone(),
                claim: Mutex::new(Some(claim)),
            }),
            None => std::ptr::null_mut(),
        };
        Ok(())
    })
}

/// The claim's item id, fencing token and payload (borrowed from the claim).
#[no_mangle]
pub unsafe extern "C" fn accord_claim_item(
    claim: *const accord_claim,
    item_out: *mut u64,
    token_out: *mut u64,
    payload_out: *mut *const u8,
    payload_len_out: *mut usize,
) -> accord_result {
    guard(|| {
        let claim = unsafe { handle(claim, "claim") }?;
        let item_out = unsafe { out(item_out, "item_out") }?;
        let token_out = unsafe { out(token_out, "token_out") }?;
        let payload_out = unsafe { out(payload_out, "payload_out") }?;
        let payload_len_out = unsafe { out(payload_len_out, "payload_len_out") }?;
        *item_out = claim.item;
        *token_out = claim.token;
        *payload_out = claim.payload.as_ptr();
        *payload_len_out = claim.payload.len();
        Ok(())
    })
}

/// Whether the claim surely still holds: not settled, and its session not lost by the
/// safety clock (false also for NULL). When false, stop working on the item: it will be
/// redelivered to another claimer.
#[no_mangle]
pub unsafe extern "C" fn accord_claim_is_held(claim: *const accord_claim) -> bool {
    let held = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        unsafe { claim.as_ref() }
            .is_some_and(|c| c.claim.lock().as_ref().is_some_and(Claim::is_held))
    }));
    held.unwrap_or(false)
}

/// Acknowledges the item (`ack`: it leaves the queue for good) or gives it back. Later calls
/// return `ACCORD_ERR_SHUTDOWN`.
#[no_mangle]
pub unsafe extern "C" fn accord_claim_settle(
    claim: *const accord_claim,
    ack: bool,
) -> accord_result {
    guard(|| {
        let claim = unsafe { handle(claim, "claim") }?;
        let held = claim
            .claim
            .lock()
            .take()
            .ok_or_else(|| Failure::shutdown("claim"))?;
        if ack {
            held.ack()?;
        } else {
            held.release()?;
        }
        Ok(())
    })
}

/// Frees a claim handle (without settling it: the item is redelivered when the session
/// ends). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn accord_claim_free(claim: *mut accord_claim) {
    unsafe { free_handle(claim) }
}

/// Arrives at barrier `name` of `participants` and waits until all arrived, up to
/// `timeout_ms` (then this session leaves the barrier and `ACCORD_ERR_TIMEOUT` is returned).
#[no_mangle]
pub unsafe extern "C" fn accord_barrier_wait(
    session: *const accord_session,
    name: *const u8,
    name_len: usize,
    participants: u32,
    timeout_ms: u32,
) -> accord_result {
    guard(|| {
        let session = unsafe { handle(session, "session") }?.get()?;
        let name = unsafe { bytes(name, name_len, "name") }?;
        session.barrier(name, participants, millis(timeout_ms))?;
        Ok(())
    })
}

/// Adds `delta` to counter `name`; `value_out` receives the new value.
#[no_mangle]
pub unsafe extern "C" fn accord_counter_add(
    client: *const accord_client,
    name: *const u8,
    name_len: usize,
    delta: i64,
    value_out: *mut i64,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let name = unsafe { bytes(name, name_len, "name") }?;
        let value_out = unsafe { out(value_out, "value_out") }?;
        *value_out = client.add(name, delta)?;
        Ok(())
    })
}

/// Counter `name`'s value (linearizable; 0 if never added to).
#[no_mangle]
pub unsafe extern "C" fn accord_counter_get(
    client: *const accord_client,
    name: *const u8,
    name_len: usize,
    value_out: *mut i64,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let name = unsafe { bytes(name, name_len, "name") }?;
        let value_out = unsafe { out(value_out, "value_out") }?;
        *value_out = client.counter(name)?;
        Ok(())
    })
}

/// A namespace of the replicated state, for watches.
pub type accord_space = u32;
/// Keys and values.
pub const ACCORD_SPACE_KV: accord_space = 1;
/// Locks.
pub const ACCORD_SPACE_LOCK: accord_space = 2;
/// Elections.
pub const ACCORD_SPACE_ELECTION: accord_space = 3;
/// Groups.
pub const ACCORD_SPACE_GROUP: accord_space = 4;
/// Work queues.
pub const ACCORD_SPACE_QUEUE: accord_space = 5;
/// Barriers.
pub const ACCORD_SPACE_BARRIER: accord_space = 6;
/// Counters.
pub const ACCORD_SPACE_COUNTER: accord_space = 7;
/// Sessions.
pub const ACCORD_SPACE_SESSION: accord_space = 8;

/// A watch (opaque): changes under a prefix, in revision order, none missed or repeated.
pub struct accord_watch {
    stream: Mutex<WatchStream>,
}

/// Watches the keys (or names) of `space` under `prefix` from revision `from` (1: as far back
/// as the member's history goes). `ACCORD_ERR_COMPACTED` when `from` left the history.
#[no_mangle]
pub unsafe extern "C" fn accord_watch_open(
    client: *const accord_client,
    space: accord_space,
    prefix: *const u8,
    prefix_len: usize,
    from: u64,
    watch_out: *mut *mut accord_watch,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let prefix = unsafe { bytes(prefix, prefix_len, "prefix") }?;
        let watch_out = unsafe { out(watch_out, "watch_out") }?;
        let space = u8::try_from(space)
            .ok()
            .and_then(|code| Space::from_code(code).ok())
            .ok_or_else(|| Failure::invalid(format!("{space} is not a space")))?;
        let (stream, _) = client
            .watch(space, prefix, from)
            .map_err(|error| match error {
                crate::Error::Rejected(why) if why.contains("history") => {
                    Failure::new(super::ACCORD_ERR_COMPACTED, why)
                }
                other => Failure::from(other),
            })?;
        *watch_out = into_handle(accord_watch {
            stream: Mutex::new(stream),
        });
        Ok(())
    })
}

/// A batch of events (opaque); read with `accord_event_list_*`.
pub struct accord_event_list {
    events: Vec<Event>,
}

/// The next events, waiting up to `timeout_ms` (`ACCORD_ERR_TIMEOUT` if none came;
/// `ACCORD_ERR_COMPACTED` if the watch fell behind the history — list again;
/// `ACCORD_ERR_REJECTED` if the member cancelled it as a slow consumer).
#[no_mangle]
pub unsafe extern "C" fn accord_watch_next(
    watch: *const accord_watch,
    timeout_ms: u32,
    events_out: *mut *mut accord_event_list,
) -> accord_result {
    guard(|| {
        let watch = unsafe { handle(watch, "watch") }?;
        let events_out = unsafe { out(events_out, "events_out") }?;
        let next = watch.stream.lock().next(millis(timeout_ms))?;
        match next {
            None => Err(Failure::new(super::ACCORD_ERR_TIMEOUT, "no event in time")),
            Some((_, WatchItem::Events(events))) => {
                *events_out = into_handle(accord_event_list { events });
                Ok(())
            }
            Some((_, WatchItem::Compacted { revision })) => Err(Failure::new(
                super::ACCORD_ERR_COMPACTED,
                format!("the watch fell behind the history; list again at revision {revision}"),
            )),
            Some((_, WatchItem::Cancelled(why))) => {
                Err(Failure::new(super::ACCORD_ERR_REJECTED, why))
            }
        }
    })
}

/// Frees a watch (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn accord_watch_free(watch: *mut accord_watch) {
    unsafe { free_handle(watch) }
}

/// A callback for a subscription: called with `ACCORD_OK` and an event (borrowed for the call
/// only) for each change, and once more with the error and NULL when the subscription ends on
/// its own (`ACCORD_ERR_COMPACTED`, `ACCORD_ERR_REJECTED`...). It runs on the subscription's
/// thread and must not block; `userdata` is the pointer given to `accord_watch_subscribe`.
pub type accord_event_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut std::ffi::c_void,
        result: accord_result,
        event: *const accord_event,
    ),
>;

/// A watch delivering its events to a callback (opaque).
pub struct accord_subscription {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The callback's user data, handed to the subscription's thread (the caller keeps it valid
/// until `accord_subscription_free` returns).
struct UserData(*mut std::ffi::c_void);
// SAFETY: the pointer is only passed back to the caller's callback, as the ABI documents.
unsafe impl Send for UserData {}

/// Like `accord_watch_open`, but the events go to `callback` on a thread of the library
/// until `accord_subscription_free`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn accord_watch_subscribe(
    client: *const accord_client,
    space: accord_space,
    prefix: *const u8,
    prefix_len: usize,
    from: u64,
    callback: accord_event_callback,
    userdata: *mut std::ffi::c_void,
    subscription_out: *mut *mut accord_subscription,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let prefix = unsafe { bytes(prefix, prefix_len, "prefix") }?;
        let subscription_out = unsafe { out(subscription_out, "subscription_out") }?;
        let callback = callback.ok_or_else(|| Failure::null("callback"))?;
        let space = u8::try_from(space)
            .ok()
            .and_then(|code| Space::from_code(code).ok())
            .ok_or_else(|| Failure::invalid(format!("{space} is not a space")))?;
        let (mut stream, _) = client.watch(space, prefix, from)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let userdata = UserData(userdata);
        let thread = std::thread::Builder::new()
            .name("accord-subscription".into())
            .spawn(move || {
                let userdata = userdata;
                let deliver = |result: accord_result, event: Option<&accord_event>| {
                    let event = event.map_or(std::ptr::null(), |e| e as *const accord_event);
                    // SAFETY: the caller's callback, with the caller's pointer; the event
                    // lives for the duration of the call.
                    let _ =
                        std::panic::catch_unwind(|| unsafe { callback(userdata.0, result, event) });
                };
                // Bounded by the stop flag, checked every 100 ms.
                while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    match stream.next(std::time::Duration::from_millis(100)) {
                        Ok(None) => {}
                        Ok(Some((_, WatchItem::Events(events)))) => {
                            for event in &events {
                                deliver(super::ACCORD_OK, Some(&c_event(event)));
                            }
                        }
                        Ok(Some((_, WatchItem::Compacted { .. }))) => {
                            return deliver(super::ACCORD_ERR_COMPACTED, None);
                        }
                        Ok(Some((_, WatchItem::Cancelled(_)))) => {
                            return deliver(super::ACCORD_ERR_REJECTED, None);
                        }
                        Err(error) => return deliver(Failure::from(error).code, None),
                    }
                }
            })
            .map_err(|e| Failure::new(super::ACCORD_ERR_IO, format!("starting a thread: {e}")))?;
        *subscription_out = into_handle(accord_subscription {
            stop,
            thread: Mutex::new(Some(thread)),
        });
        Ok(())
    })
}

/// Stops a subscription and frees it (NULL is ignored): once this returns, the callback is
/// not running and will not be called again. Must not be called from the callback.
#[no_mangle]
pub unsafe extern "C" fn accord_subscription_free(subscription: *mut accord_subscription) {
    if let Some(handle) = unsafe { subscription.as_ref() } {
        handle.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = handle.thread.lock().take() {
            let _ = thread.join();
        }
    }
    unsafe { free_handle(subscription) }
}

/// What an event says happened.
pub type accord_event_kind = u32;
/// A key was written.
pub const ACCORD_EVENT_PUT: accord_event_kind = 1;
/// A key was deleted.
pub const ACCORD_EVENT_DELETE: accord_event_kind = 2;
/// A lock, leadership or queue item was granted (`session`, `token`).
pub const ACCORD_EVENT_GRANTED: accord_event_kind = 3;
/// A session started waiting.
pub const ACCORD_EVENT_WAITING: accord_event_kind = 4;
/// A session stopped holding or waiting (released, closed or expired).
pub const ACCORD_EVENT_ENDED: accord_event_kind = 5;
/// An election's leader set a new value.
pub const ACCORD_EVENT_PROCLAIMED: accord_event_kind = 6;
/// A member joined a group.
pub const ACCORD_EVENT_JOINED: accord_event_kind = 7;
/// A member left a group (or its session ended).
pub const ACCORD_EVENT_LEFT: accord_event_kind = 8;
/// An item was enqueued.
pub const ACCORD_EVENT_ENQUEUED: accord_event_kind = 9;
/// An item was acknowledged.
pub const ACCORD_EVENT_ACKED: accord_event_kind = 10;
/// A claimed item went back to its queue.
pub const ACCORD_EVENT_REQUEUED: accord_event_kind = 11;
/// A session arrived at a barrier.
pub const ACCORD_EVENT_ARRIVED: accord_event_kind = 12;
/// A barrier opened.
pub const ACCORD_EVENT_OPENED: accord_event_kind = 13;
/// A counter changed.
pub const ACCORD_EVENT_COUNTED: accord_event_kind = 14;
/// A session was created.
pub const ACCORD_EVENT_SESSION_CREATED: accord_event_kind = 15;
/// A session ended.
pub const ACCORD_EVENT_SESSION_ENDED: accord_event_kind = 16;

fn kind_code(kind: &EventKind) -> accord_event_kind {
    match kind {
        EventKind::Put => ACCORD_EVENT_PUT,
        EventKind::Delete => ACCORD_EVENT_DELETE,
        EventKind::Granted => ACCORD_EVENT_GRANTED,
        EventKind::Waiting => ACCORD_EVENT_WAITING,
        EventKind::Ended(_) => ACCORD_EVENT_ENDED,
        EventKind::Proclaimed => ACCORD_EVENT_PROCLAIMED,
        EventKind::Joined => ACCORD_EVENT_JOINED,
        EventKind::Left(_) => ACCORD_EVENT_LEFT,
        EventKind::Enqueued => ACCORD_EVENT_ENQUEUED,
        EventKind::Acked => ACCORD_EVENT_ACKED,
        EventKind::Requeued => ACCORD_EVENT_REQUEUED,
        EventKind::Arrived => ACCORD_EVENT_ARRIVED,
        EventKind::Opened => ACCORD_EVENT_OPENED,
        EventKind::Counted => ACCORD_EVENT_COUNTED,
        EventKind::SessionCreated => ACCORD_EVENT_SESSION_CREATED,
        EventKind::SessionEnded(_) => ACCORD_EVENT_SESSION_ENDED,
    }
}

/// One event as C sees it; the byte fields are borrowed from the event list.
#[repr(C)]
pub struct accord_event {
    /// Revision of the change.
    pub revision: u64,
    /// Its space (`ACCORD_SPACE_*`).
    pub space: accord_space,
    /// What happened (`ACCORD_EVENT_*`).
    pub kind: accord_event_kind,
    /// The key or name.
    pub key: *const u8,
    /// Its length.
    pub key_len: usize,
    /// The value, election value, payload or metadata (may be empty).
    pub value: *const u8,
    /// Its length.
    pub value_len: usize,
    /// The session concerned (0: none).
    pub session: u64,
    /// The grant's fencing token (0: none).
    pub token: u64,
    /// Queue item, barrier count or counter value (as the bits of an int64).
    pub item: u64,
}

/// The C view of an event (its bytes borrowed from `event`).
fn c_event(event: &Event) -> accord_event {
    accord_event {
        revision: event.revision,
        space: event.space as u32,
        kind: kind_code(&event.kind),
        key: event.key.as_ptr(),
        key_len: event.key.len(),
        value: event.value.as_ptr(),
        value_len: event.value.len(),
        session: event.session,
        token: event.token,
        item: event.item,
    }
}

/// Number of events in the list (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn accord_event_list_len(list: *const accord_event_list) -> usize {
    unsafe { list.as_ref() }.map_or(0, |l| l.events.len())
}

/// The `index`-th event (its bytes borrowed from the list, valid until it is freed).
#[no_mangle]
pub unsafe extern "C" fn accord_event_list_get(
    list: *const accord_event_list,
    index: usize,
    event_out: *mut accord_event,
) -> accord_result {
    guard(|| {
        let list = unsafe { handle(list, "list") }?;
        let event_out = unsafe { out(event_out, "event_out") }?;
        let event = list.events.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} is past the list's {} events",
                list.events.len()
            ))
        })?;
        *event_out = c_event(event);
        Ok(())
    })
}

/// Frees an event list (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn accord_event_list_free(list: *mut accord_event_list) {
    unsafe { free_handle(list) }
}

/// Text for a session state ("held", "suspect", "lost"; "unknown" for others).
#[no_mangle]
pub extern "C" fn accord_session_state_str(state: accord_session_state) -> *const c_char {
    match state {
        ACCORD_SESSION_STATE_HELD => c"held".as_ptr(),
        ACCORD_SESSION_STATE_SUSPECT => c"suspect".as_ptr(),
        ACCORD_SESSION_STATE_LOST => c"lost".as_ptr(),
        _ => c"unknown".as_ptr(),
    }
}
