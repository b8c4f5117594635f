"""Every coordination primitive through the Python API, on an in-process 3-member cluster:
sessions, mutexes with fencing, read-write locks, semaphores, elections, groups, queues,
barriers, counters and watches."""

from __future__ import annotations

import threading
import time
from typing import Callable, Dict, List, Set

import pytest

import accord

TTL = 3.0


def collect(watch: accord.Watch, until: Callable[[List[accord.Event]], bool], timeout: float = 5.0) -> List[accord.Event]:
    """Events of `watch` until `until(events)` holds (fails the test after `timeout`)."""
    events: List[accord.Event] = []
    deadline = time.monotonic() + timeout
    while not until(events):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"the watch did not deliver the expected events in {timeout} s; got {events}")
        events.extend(watch.next(min(left, 0.5)))
    return events


def kinds(events: List[accord.Event]) -> List[str]:
    return [e.kind for e in events]


# ---------------------------------------------------------------------------------------------
# Sessions


def test_many_sessions_stay_alive_and_renew_on_demand(cluster):
    sessions = [cluster.session(ttl=1.0) for _ in range(100)]
    try:
        # Three TTLs later the library's own keepalives have kept every one alive.
        time.sleep(3.0)
        assert [s.state for s in sessions] == ["held"] * len(sessions)
        for s in sessions:
            s.keep_alive_once(timeout=5.0)
        sessions[0].close()
        with pytest.raises(accord.SessionLost):
            sessions[0].keep_alive_once(timeout=5.0)
    finally:
        for s in sessions:
            s.close()


def test_a_new_session_is_held_and_has_an_id(cluster):
    with cluster.session(ttl=TTL) as session:
        assert isinstance(session.id, int) and session.id > 0
        assert session.state == "held"
        # No change within 0.2 s: wait_change returns the state it still is in.
        started = time.monotonic()
        assert session.wait_change("held", 0.2) == "held"
        assert 0.15 <= time.monotonic() - started < 2.0
    with cluster.session(ttl=TTL) as other:
        assert other.id != session.id


def test_a_closed_session_is_lost_at_once_and_its_handles_say_so(cluster, name):
    session = cluster.session(ttl=TTL)
    lock = session.lock(name("m"), timeout=2)
    cluster.enqueue(name("q"), "job")
    claim = session.queue(name("q")).claim(timeout=2)
    session.close()
    assert session.state == "lost"
    with cluster.session(ttl=TTL) as other:
        # The cluster released both at once: another session holds them now...
        new_lock = other.lock(name("m"), timeout=2)
        new_claim = other.queue(name("q")).claim(timeout=2)
        assert new_lock.is_held() and new_claim.item == claim.item
        # ...so the closed session's handles must no longer claim to hold them.
        assert not lock.is_held(), "two Lock handles of the same mutex both say is_held()"
        assert not claim.is_held(), "two Claim handles of the same item both say is_held()"
        new_lock.release()
        new_claim.ack()


def test_a_closed_session_becomes_lost_and_releases_what_it_held(cluster, name):
    session = cluster.session(ttl=TTL)
    lock = session.lock(name("m"), timeout=5)
    with cluster.session(ttl=TTL) as other:
        assert other.try_lock(name("m")) is None
        session.close()
        # Released by the cluster at once: the other session gets it without waiting a TTL.
        with other.lock(name("m"), timeout=2) as taken:
            assert taken.token > lock.token
    deadline = time.monotonic() + TTL
    while session.state != "lost" and time.monotonic() < deadline:
        session.wait_change(session.state, 0.2)
    assert session.state == "lost"
    assert not lock.is_held()


def test_a_session_without_quorum_goes_suspect_then_lost_within_its_ttl(inproc_nodes):
    nodes, endpoints = inproc_nodes
    client = accord.connect(endpoints, timeout=2.0)
    session = client.session(ttl=1.0)
    lock = session.lock("m", timeout=5)
    assert session.state == "held" and lock.is_held()
    for node in nodes:  # no member left to acknowledge a keepalive
        node.stop()
    started = time.monotonic()
    seen = [session.state]
    while seen[-1] != "lost" and time.monotonic() - started < 3.0:
        seen.append(session.wait_change(seen[-1], 3.0))
    elapsed = time.monotonic() - started
    assert seen[-1] == "lost", seen
    assert "suspect" in seen, seen
    # Safe until (send time of the last acknowledged keepalive) + TTL x 0.9: never later.
    assert elapsed <= 1.0 + 0.3
    assert not lock.is_held()


# ---------------------------------------------------------------------------------------------
# Mutexes


def test_mutex_token_fences_writes(cluster, name):
    m, data = name("m"), name("data")
    with cluster.session(ttl=TTL) as session:
        with session.lock(m, timeout=5) as lock:
            assert lock.is_held()
            assert lock.token > 0
            assert cluster.kv.txn([(m, "lock_token", lock.token)], [(data, "x")]) is True
            assert cluster.kv.get(data) == b"x"
            stale = lock.token - 1
            assert cluster.kv.txn([(m, "lock_token", stale)], [(data, "stale")]) is False
            assert cluster.kv.get(data) == b"x"
        assert not lock.is_held()
        # Released: the old token no longer fences anything.
        assert cluster.kv.txn([(m, "lock_token", lock.token)], [(data, "late")]) is False
        assert cluster.kv.get(data) == b"x"


def test_try_lock_is_none_while_another_session_holds_the_mutex(cluster, name):
    m = name("m")
    with cluster.session(ttl=TTL) as holder, cluster.session(ttl=TTL) as other:
        first = holder.try_lock(m)
        assert first is not None
        assert other.try_lock(m) is None
        with pytest.raises(accord.Timeout):
            other.lock(m, timeout=0.3)
        first.release()
        second = other.try_lock(m)
        assert second is not None
        assert second.token > first.token
        second.release()


def test_a_waiting_lock_is_granted_in_fifo_order_when_released(cluster, name):
    m = name("m")
    order: List[int] = []
    errors: List[BaseException] = []
    with cluster.session(ttl=TTL) as holder:
        lock = holder.lock(m, timeout=5)
        sessions = [cluster.session(ttl=TTL) for _ in range(2)]
        try:

            def wait(i: int) -> None:
                try:
                    with sessions[i].lock(m, timeout=10):
                        order.append(i)
                        time.sleep(0.05)
                except BaseException as error:  # reported below
                    errors.append(error)

            threads = []
            for i in range(2):
                threads.append(threading.Thread(target=wait, args=(i,)))
                threads[-1].start()
                time.sleep(0.3)  # the first waiter queues before the second
            assert order == []
            lock.release()
            for thread in threads:
                thread.join(15)
            assert not errors
            assert order == [0, 1]
        finally:
            for session in sessions:
                session.close()


def test_closing_a_session_ends_its_blocked_calls_at_once(cluster, name):
    m = name("m")
    with cluster.session(ttl=TTL) as holder:
        lock = holder.lock(m, timeout=5)
        waiter = cluster.session(ttl=TTL)
        outcome: Dict[str, object] = {}

        def wait() -> None:
            started = time.monotonic()
            try:
                outcome["result"] = waiter.lock(m, timeout=10)
            except BaseException as error:
                outcome["result"] = error
            outcome["waited"] = time.monotonic() - started

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.3)
        waiter.close()
        thread.join(5)
        assert not thread.is_alive()
        assert isinstance(outcome["result"], accord.SessionLost), outcome
        assert outcome["waited"] < 2.0  # type: ignore[operator]
        assert waiter.state == "lost"
        lock.release()
        with cluster.session(ttl=TTL) as third:  # the closed waiter did not get it
            assert third.try_lock(m) is not None


def test_one_session_used_from_many_threads_for_different_locks(cluster, name):
    tokens: List[int] = []
    errors: List[BaseException] = []
    with cluster.session(ttl=TTL) as session:

        def work(i: int) -> None:
            try:
                for _ in range(5):
                    with session.lock(name(f"m{i}"), timeout=5) as lock:
                        tokens.append(lock.token)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    assert len(tokens) == 30 and len(set(tokens)) == 30


def test_a_session_takes_the_same_lock_only_once(cluster, name):
    with cluster.session(ttl=TTL) as session:
        with session.lock(name("m"), timeout=2):
            with pytest.raises(accord.InvalidArgument, match="one session per holder"):
                session.lock(name("m"), timeout=1)


def test_locks_of_a_dropped_session_pass_on_after_its_ttl(cluster, name):
    m = name("m")
    session = cluster.session(ttl=1.0)
    lock = session.lock(m, timeout=2)
    del session  # never closed: its keepalives stop, the cluster expires it after its TTL
    import gc

    gc.collect()
    with cluster.session(ttl=TTL) as other:
        started = time.monotonic()
        taken = other.lock(m, timeout=5)
        assert time.monotonic() - started < 3.0
        assert taken.token > lock.token
        assert not lock.is_held()
        taken.release()


# ---------------------------------------------------------------------------------------------
# Read-write locks and semaphores


def test_readers_share_a_rwlock_and_a_writer_excludes_them(cluster, name):
    rw = name("rw")
    with cluster.session(ttl=TTL) as a, cluster.session(ttl=TTL) as b, cluster.session(ttl=TTL) as w:
        read_a = a.rwlock(rw, write=False, timeout=2)
        read_b = b.rwlock(rw, write=False, timeout=2)  # shared: granted at once
        assert read_a.is_held() and read_b.is_held()
        with pytest.raises(accord.Timeout):
            w.rwlock(rw, write=True, timeout=0.3)
        read_a.release()
        with pytest.raises(accord.Timeout):
            w.rwlock(rw, write=True, timeout=0.3)
        read_b.release()
        write = w.rwlock(rw, write=True, timeout=2)
        assert write.is_held()
        assert write.token > max(read_a.token, read_b.token)
        with pytest.raises(accord.Timeout):
            a.rwlock(rw, write=False, timeout=0.3)
        write.release()
        with a.rwlock(rw, write=False, timeout=2) as again:
            assert again.is_held()


def test_a_semaphore_grants_at_most_its_permits(cluster, name):
    sem = name("sem")
    with cluster.session(ttl=TTL) as a, cluster.session(ttl=TTL) as b, cluster.session(ttl=TTL) as c:
        first = a.semaphore(sem, 2, timeout=2)
        second = b.semaphore(sem, 2, timeout=2)
        assert first.is_held() and second.is_held()
        assert first.token != second.token
        with pytest.raises(accord.Timeout):
            c.semaphore(sem, 2, timeout=0.3)
        first.release()
        third = c.semaphore(sem, 2, timeout=2)
        assert third.is_held()
        third.release()
        second.release()


# ---------------------------------------------------------------------------------------------
# Elections


def test_election_campaign_leader_proclaim_resign_and_observe(cluster, name):
    e = name("election")
    with cluster.session(ttl=TTL) as s1, cluster.session(ttl=TTL) as s2:
        observer = s1.election(e).observe()
        assert s1.election(e).leader() is None
        leadership = s1.election(e).campaign("node-a", timeout=2)
        assert leadership.is_leader()
        assert s2.election(e).leader() == (s1.id, leadership.token, b"node-a")
        with pytest.raises(accord.Timeout):
            s2.election(e).campaign("node-b", timeout=0.3)  # withdrawn after the timeout
        leadership.proclaim("node-a/v2")
        assert s2.election(e).leader() == (s1.id, leadership.token, b"node-a/v2")
        # The fencing token of a leadership guards writes like a lock's.
        assert cluster.kv.txn([(e, "leader_token", leadership.token)], [(name("data"), "a")]) is True
        leadership.resign()
        assert not leadership.is_leader()
        with s2.election(e).campaign("node-b", timeout=2) as second:
            assert second.token > leadership.token
            assert cluster.kv.txn([(e, "leader_token", leadership.token)], [(name("data"), "x")]) is False
            assert s1.election(e).leader() == (s2.id, second.token, b"node-b")

            def seen_second_grant(events: List[accord.Event]) -> bool:
                return any(ev.kind == "granted" and ev.session == s2.id for ev in events)

            events = collect(observer, seen_second_grant)
        assert all(ev.space == "election" and ev.key == e.encode() for ev in events)
        revisions = [ev.revision for ev in events]
        assert revisions == sorted(set(revisions))
        relevant = [(ev.kind, ev.session) for ev in events if ev.kind in ("granted", "proclaimed", "ended")]
        granted_first = relevant.index(("granted", s1.id))
        assert relevant[granted_first:] == [
            ("granted", s1.id),
            ("ended", s2.id),  # the candidacy that timed out
            ("proclaimed", s1.id),
            ("ended", s1.id),
            ("granted", s2.id),
        ] or relevant[granted_first:] == [
            ("granted", s1.id),
            ("proclaimed", s1.id),
            ("ended", s1.id),
            ("granted", s2.id),
        ], relevant
        grant = events[[(ev.kind, ev.session) for ev in events].index(("granted", s1.id))]
        assert grant.token == leadership.token
        assert grant.value == b"node-a"


def test_leadership_passes_when_the_leaders_session_closes(cluster, name):
    e = name("election")
    s1 = cluster.session(ttl=TTL)
    with cluster.session(ttl=TTL) as s2:
        first = s1.election(e).campaign("a", timeout=2)
        result: Dict[str, object] = {}

        def campaign() -> None:
            try:
                result["leadership"] = s2.election(e).campaign("b", timeout=10)
            except BaseException as error:
                result["error"] = error

        thread = threading.Thread(target=campaign)
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive()
        s1.close()
        thread.join(10)
        assert "error" not in result, result
        second = result["leadership"]
        assert isinstance(second, accord.Leadership)
        assert second.token > first.token
        assert s2.election(e).leader() == (s2.id, second.token, b"b")
        second.resign()


# ---------------------------------------------------------------------------------------------
# Groups


def test_group_join_members_leave_and_expiry_with_the_session(cluster, name):
    g = name("group")
    watch = cluster.watch(g, space="group")
    s1 = cluster.session(ttl=TTL)
    with cluster.session(ttl=TTL) as s2:
        assert s2.group(g).members() == []
        m1 = s1.group(g).join("w1", "host=a")
        with s2.group(g).join("w2", b"host=b"):
            members = s2.group(g).members()
            assert sorted(members) == sorted([(b"w1", s1.id, b"host=a"), (b"w2", s2.id, b"host=b")])
            m1.leave()
            assert s2.group(g).members() == [(b"w2", s2.id, b"host=b")]
            m1 = s1.group(g).join("w1", "host=a2")
            assert len(s2.group(g).members()) == 2
            s1.close()  # w1 leaves with its session
            assert s2.group(g).members() == [(b"w2", s2.id, b"host=b")]
        assert s2.group(g).members() == []
    events = collect(watch, lambda evs: kinds(evs).count("left") >= 3)
    assert kinds(events) == ["joined", "joined", "left", "joined", "left", "left"]
    assert [e.session for e in events] == [s1.id, s2.id, s1.id, s1.id, s1.id, s2.id]
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions))


# ---------------------------------------------------------------------------------------------
# Queues


def test_queue_put_claims_ack_and_redelivery_after_session_close(cluster, name):
    q = name("queue")
    with cluster.session(ttl=TTL) as producer:
        items = [producer.queue(q).put(f"job-{i}") for i in range(4)]
    assert items == sorted(set(items))
    worker = cluster.session(ttl=TTL)
    claims = list(worker.queue(q).claims(idle_timeout=0.3))
    assert [c.item for c in claims] == items  # FIFO, each once
    assert [c.payload for c in claims] == [f"job-{i}".encode() for i in range(4)]
    assert all(c.is_held() for c in claims)
    claims[0].ack()
    claims[1].ack()
    assert not claims[0].is_held()
    with pytest.raises(accord.AccordError):
        claims[0].ack()  # settled once
    with cluster.session(ttl=TTL) as other:
        assert other.queue(q).try_claim() is None  # the rest are still claimed by `worker`
        worker.close()  # its claims go back to the queue at once
        again = list(other.queue(q).claims(idle_timeout=0.5))
        assert [c.item for c in again] == items[2:]
        assert [c.payload for c in again] == [b"job-2", b"job-3"]
        for old, new in zip(claims[2:], again):
            assert new.token > old.token
        again[0].release()  # given back: claimable again
        third = other.queue(q).claim(timeout=2)
        assert third.item == items[2]
        third.ack()
        again[1].ack()
        assert other.queue(q).try_claim() is None


def test_queue_claim_waits_for_an_item(cluster, name):
    q = name("queue")
    with cluster.session(ttl=TTL) as worker:
        with pytest.raises(accord.Timeout):
            worker.queue(q).claim(timeout=0.3)
        timer = threading.Timer(0.3, lambda: cluster.enqueue(q, "late"))
        timer.start()
        try:
            started = time.monotonic()
            claim = worker.queue(q).claim(timeout=5)
            assert claim.payload == b"late"
            assert time.monotonic() - started < 3
            claim.ack()
        finally:
            timer.cancel()
            timer.join()


# ---------------------------------------------------------------------------------------------
# Barriers and counters


def test_a_barrier_releases_both_threads_once_both_arrived(cluster, name):
    b = name("barrier")
    arrived: List[float] = []
    errors: List[BaseException] = []
    sessions = [cluster.session(ttl=TTL) for _ in range(2)]
    try:

        def arrive(i: int) -> None:
            try:
                sessions[i].barrier(b, 2, timeout=10)
                arrived.append(time.monotonic())
            except BaseException as error:
                errors.append(error)

        first = threading.Thread(target=arrive, args=(0,))
        first.start()
        time.sleep(0.4)
        assert first.is_alive() and arrived == []  # alone at the barrier: waits
        started = time.monotonic()
        second = threading.Thread(target=arrive, args=(1,))
        second.start()
        first.join(10)
        second.join(10)
        assert not errors, errors
        assert len(arrived) == 2
        assert all(t - started < 3 for t in arrived)
    finally:
        for session in sessions:
            session.close()


def test_a_barrier_times_out_when_too_few_arrive(cluster, name):
    with cluster.session(ttl=TTL) as session:
        with pytest.raises(accord.Timeout):
            session.barrier(name("barrier"), 2, timeout=0.3)


def test_counters_add_and_read(cluster, name):
    c = name("counter")
    assert cluster.counter(c) == 0
    assert cluster.counter_add(c) == 1
    assert cluster.counter_add(c, 10) == 11
    assert cluster.counter_add(c, -4) == 7
    assert cluster.counter(c) == 7
    first = cluster.watch(c, space="counter")  # from now: nothing yet
    assert first.next(0.1) == []
    watch = cluster.watch(c, space="counter", start_revision=cluster.status()["revision"] - 5)
    events = collect(watch, lambda evs: len(evs) >= 3)
    assert kinds(events) == ["counted"] * 3


def test_counter_increments_from_threads_are_all_counted(cluster, name):
    c = name("counter")
    errors: List[BaseException] = []

    def add() -> None:
        try:
            for _ in range(10):
                cluster.counter_add(c, 1)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors
    assert cluster.counter(c) == 40


# ---------------------------------------------------------------------------------------------
# Watches


def test_watch_from_a_start_revision_has_no_gap_and_no_duplicate(cluster, name):
    prefix = name("w/")
    revisions = [cluster.kv.put(f"{prefix}{i:02d}", str(i)) for i in range(10)]
    cluster.kv.put(name("elsewhere"), "ignored")
    watch = cluster.kv.watch(prefix, start_revision=revisions[0])
    # Writes after the watch opened come after the history, without a gap.
    revisions += [cluster.kv.put(f"{prefix}{i:02d}", str(i)) for i in range(10, 20)]
    cluster.kv.delete(f"{prefix}00")
    events = collect(watch, lambda evs: len(evs) >= 21)
    assert [e.revision for e in events[:20]] == revisions
    assert [e.key for e in events[:20]] == [f"{prefix}{i:02d}".encode() for i in range(20)]
    assert [e.value for e in events[:20]] == [str(i).encode() for i in range(20)]
    assert kinds(events) == ["put"] * 20 + ["delete"]
    assert events[20].key == f"{prefix}00".encode()
    assert all(e.space == "kv" for e in events)
    assert watch.next(0.2) == []  # nothing more, nothing repeated


def test_watch_from_a_middle_revision_starts_there(cluster, name):
    prefix = name("w/")
    revisions = [cluster.kv.put(f"{prefix}{i}", "v") for i in range(6)]
    watch = cluster.kv.watch(prefix, start_revision=revisions[3])
    events = collect(watch, lambda evs: len(evs) >= 3)
    assert [e.revision for e in events] == revisions[3:]
    assert watch.next(0.2) == []


def test_a_default_watch_starts_now_and_iterates(cluster, name):
    prefix = name("w/")
    cluster.kv.put(f"{prefix}before", "old")
    watch = cluster.kv.watch(prefix)
    cluster.kv.put(f"{prefix}after", "new")
    got: List[accord.Event] = []
    # Iteration never ends by itself: take the first event on a thread, bounded by a join.
    thread = threading.Thread(target=lambda: got.append(next(iter(watch))), daemon=True)
    thread.start()
    thread.join(5)
    assert got, "iterating over the watch gave no event in 5 s"
    event = got[0]
    assert (event.kind, event.key, event.value) == ("put", f"{prefix}after".encode(), b"new")


def test_watch_of_locks_shows_grants_with_their_tokens(cluster, name):
    m = name("m")
    watch = cluster.watch(m, space="lock")
    with cluster.session(ttl=TTL) as session:
        with session.lock(m, timeout=2) as lock:
            token = lock.token
    events = collect(watch, lambda evs: "ended" in kinds(evs))
    granted = [e for e in events if e.kind == "granted"]
    assert len(granted) == 1
    assert granted[0].token == token
    assert granted[0].session == session.id
    assert granted[0].key == m.encode()


def test_a_watch_from_a_revision_out_of_the_history_is_compacted(inproc_nodes):
    _nodes, endpoints = inproc_nodes
    client = accord.connect(endpoints)
    first = client.kv.put("cp/0", "x")
    for i in range(1, 4):  # 3 MB of events: more than a member's 2 MiB history
        client.kv.put(f"cp/{i}", b"y" * 1_000_000)
    with pytest.raises(accord.Compacted):
        client.kv.watch("cp/", start_revision=first).next(1.0)
    # A watch from now works.
    watch = client.kv.watch("cp/")
    client.kv.put("cp/4", "z")
    assert [e.key for e in collect(watch, lambda evs: len(evs) >= 1)] == [b"cp/4"]


def test_many_concurrent_watchers_each_see_every_event(cluster, name):
    prefix = name("w/")
    watches = [cluster.kv.watch(prefix) for _ in range(5)]
    written: Set[bytes] = set()
    for i in range(15):
        cluster.kv.put(f"{prefix}{i}", "v")
        written.add(f"{prefix}{i}".encode())
    for watch in watches:
        events = collect(watch, lambda evs: len(evs) >= 15)
        assert {e.key for e in events} == written
        assert len(events) == 15
