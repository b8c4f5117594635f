"""accord.aio: the same API for asyncio, never blocking the event loop; cancelling a task
cancels the wait it awaits."""

from __future__ import annotations

import asyncio
import time
from typing import List

import pytest

import accord

aio = pytest.importorskip("accord.aio")

pytestmark = pytest.mark.asyncio

TTL = 3.0


@pytest.fixture
def client(cluster_endpoints):
    return aio.connect(cluster_endpoints, timeout=10.0)


async def ticks_during(awaitable, interval: float = 0.01):
    """Awaits `awaitable` while a ticker runs on the loop; returns (result or exception,
    ticks counted)."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(interval)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    try:
        result = await awaitable
    except Exception as error:  # returned for the caller to check
        result = error
    finally:
        done.set()
        await tick_task
    return result, ticks


async def test_kv_calls_are_awaitable(client, name):
    key = name("k")
    revision = await client.kv.put(key, "v1")
    assert revision > 0
    assert await client.kv.get(key) == b"v1"
    assert await client.kv.get(key, serializable=True) in (None, b"v1")
    assert await client.kv.cas(key, "v1", "v2") is True
    assert await client.kv.cas(key, "v1", "v3") is False
    assert await client.kv.range(name("")) == [(key.encode(), b"v2")]
    assert await client.kv.txn([(key, "value", "v2")], [(key, "v4")]) is True
    assert await client.kv.get(key) == b"v4"
    assert await client.kv.delete(key) is True
    assert await client.kv.get(key) is None
    status = await client.status()
    assert status["leader"] in (1, 2, 3)


async def test_wrap_gives_the_async_face_of_a_client(cluster, name):
    wrapped = aio.wrap(cluster)
    await wrapped.kv.put(name("k"), "v")
    assert cluster.kv.get(name("k")) == b"v"


async def test_many_calls_run_concurrently(client, name):
    keys = [name(str(i)) for i in range(20)]
    revisions = await asyncio.gather(*(client.kv.put(k, k) for k in keys))
    assert len(set(revisions)) == 20
    values = await asyncio.gather(*(client.kv.get(k) for k in keys))
    assert values == [k.encode() for k in keys]


async def test_lock_with_async_with_and_a_fenced_write(client, name):
    m, data = name("m"), name("data")
    async with await client.session(ttl=TTL) as session:
        assert session.state == "held"
        async with await session.lock(m, timeout=5) as lock:
            assert lock.is_held()
            assert await client.kv.txn([(m, "lock_token", lock.token)], [(data, "x")]) is True
            assert await client.kv.txn([(m, "lock_token", lock.token - 1)], [(data, "y")]) is False
        assert not lock.is_held()
    assert await client.kv.get(data) == b"x"


async def test_a_lock_wait_does_not_block_the_event_loop(client, name):
    m = name("m")
    async with await client.session(ttl=TTL) as holder, await client.session(ttl=TTL) as waiter:
        held = await holder.lock(m, timeout=5)
        started = time.monotonic()
        result, ticks = await ticks_during(waiter.lock(m, timeout=1.0))
        elapsed = time.monotonic() - started
        assert isinstance(result, accord.Timeout), result
        assert 0.8 <= elapsed < 3.0
        # ~100 ticks of 10 ms fit in the second: the loop kept running.
        assert ticks > 30, ticks
        await held.release()


async def test_cancelling_a_task_withdraws_its_lock_wait(client, name):
    m = name("m")
    async with await client.session(ttl=TTL) as holder, await client.session(ttl=TTL) as waiter:
        held = await holder.lock(m, timeout=5)
        task = asyncio.create_task(waiter.lock(m, timeout=10))
        await asyncio.sleep(0.3)
        assert not task.done()
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=6)
        assert time.monotonic() - started < 2.0
        await held.release()
        # Not granted to the cancelled waiter behind its back: a third session gets it.
        async with await client.session(ttl=TTL) as third:
            async with await third.lock(m, timeout=3) as again:
                assert again.token > held.token


async def test_wait_for_timeout_cancels_a_claim_wait(client, name):
    q = name("queue")
    async with await client.session(ttl=TTL) as worker:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(worker.queue(q).claim(timeout=10), timeout=0.3)
        assert time.monotonic() - started < 2.0
        # The withdrawn wait did not take the next item.
        await worker.queue(q).put("job")
        async with await client.session(ttl=TTL) as other:
            claim = await other.queue(q).claim(timeout=3)
            assert claim.payload == b"job"
            await claim.ack()


async def test_rwlock_and_semaphore(client, name):
    rw, sem = name("rw"), name("sem")
    async with await client.session(ttl=TTL) as a, await client.session(ttl=TTL) as b:
        r1, r2 = await asyncio.gather(a.rwlock(rw, write=False, timeout=2), b.rwlock(rw, write=False, timeout=2))
        assert r1.is_held() and r2.is_held()
        async with await client.session(ttl=TTL) as c:
            with pytest.raises(accord.Timeout):
                await c.rwlock(rw, write=True, timeout=0.3)
            await r1.release()
            await r2.release()
            async with await c.rwlock(rw, write=True, timeout=2) as w:
                assert w.is_held()
            p1 = await a.semaphore(sem, 1, timeout=2)
            with pytest.raises(accord.Timeout):
                await c.semaphore(sem, 1, timeout=0.3)
            await p1.release()
            async with await c.semaphore(sem, 1, timeout=2) as p2:
                assert p2.token > p1.token


async def test_election_campaign_proclaim_resign(client, cluster, name):
    e = name("election")
    async with await client.session(ttl=TTL) as s1, await client.session(ttl=TTL) as s2:
        leadership = await s1.campaign(e, "a", timeout=2)
        assert leadership.is_leader()
        contender = asyncio.create_task(s2.campaign(e, "b", timeout=10))
        await asyncio.sleep(0.2)
        assert not contender.done()
        await leadership.proclaim("a2")
        with cluster.session(ttl=TTL) as observer_session:
            assert observer_session.election(e).leader() == (s1.id, leadership.token, b"a2")
        await leadership.resign()
        second = await asyncio.wait_for(contender, timeout=5)
        assert second.token > leadership.token
        async with second:
            assert second.is_leader()


async def test_group_join_through_the_async_session(client, cluster, name):
    g = name("group")
    async with await client.session(ttl=TTL) as session:
        membership = await session.join(g, "w1", "meta")
        with cluster.session(ttl=TTL) as other:
            assert other.group(g).members() == [(b"w1", session.id, b"meta")]
            membership.leave()
            assert other.group(g).members() == []


async def test_queue_claims_async_iteration_and_ack(client, name):
    q = name("queue")
    async with await client.session(ttl=TTL) as session:
        queue = session.queue(q)
        items = [await queue.put(f"job-{i}") for i in range(3)]
        payloads: List[bytes] = []
        async for claim in queue.claims(idle_timeout=0.3):
            assert claim.is_held()
            payloads.append(claim.payload)
            assert claim.item in items
            await claim.ack()
        assert payloads == [b"job-0", b"job-1", b"job-2"]


async def test_barrier_releases_two_sessions(client, name):
    b = name("barrier")
    async with await client.session(ttl=TTL) as s1, await client.session(ttl=TTL) as s2:
        first = asyncio.create_task(s1.barrier(b, 2, timeout=10))
        await asyncio.sleep(0.3)
        assert not first.done()
        await asyncio.wait_for(asyncio.gather(first, s2.barrier(b, 2, timeout=10)), timeout=5)


async def test_counters(client, name):
    c = name("counter")
    assert await client.counter(c) == 0
    values = await asyncio.gather(*(client.counter_add(c, 1) for _ in range(5)))
    assert sorted(values) == [1, 2, 3, 4, 5]
    assert await client.counter(c) == 5


async def test_watch_async_iteration_has_no_gap(client, name):
    prefix = name("w/")
    first = await client.kv.put(f"{prefix}00", "0")
    watch = await client.watch(prefix, start_revision=first)
    revisions = [first] + [await client.kv.put(f"{prefix}{i:02d}", str(i)) for i in range(1, 10)]
    events = []

    async def collect() -> None:
        async for event in watch:
            events.append(event)
            if len(events) == 10:
                return

    await asyncio.wait_for(collect(), timeout=5)
    assert [e.revision for e in events] == revisions
    assert [e.key for e in events] == [f"{prefix}{i:02d}".encode() for i in range(10)]
    assert await watch.next(0.2) == []


async def test_an_idle_watch_iteration_can_be_cancelled(client, name):
    watch = await client.watch(name("quiet/"))

    async def consume() -> None:
        async for _event in watch:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    assert time.monotonic() - started < 1.0


async def test_bad_input_raises_the_same_errors(client, name):
    with pytest.raises(TypeError):
        await client.kv.put(1, "v")
    with pytest.raises(accord.InvalidArgument):
        await client.kv.put("", "v")
    with pytest.raises(accord.InvalidArgument):
        await client.session(ttl=0.1)
    async with await client.session(ttl=TTL) as session:
        with pytest.raises(accord.InvalidArgument):
            await session.lock(name("m"), timeout=-1)
    with pytest.raises(accord.InvalidArgument):
        await client.watch("x", space="nope")
