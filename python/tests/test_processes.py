"""The Python client against real `accord server` processes: the basics, lock safety when
the holder is a process killed with SIGKILL, and a watch with no gap across a leader kill."""

from __future__ import annotations

import select
import signal
import subprocess
import textwrap
import time
from typing import Dict, List, Set

import pytest

import accord

from conftest import accord_bin, leader_endpoint, server_processes, wait_for


def connect(endpoints: List[str]) -> accord.Client:
    client = accord.connect(endpoints, timeout=10.0)
    wait_for(lambda: client.kv.put("__ready__", "1"), 10, "the servers to accept a write")
    return client


def test_basics_against_server_processes(server_cluster):
    endpoints, processes = server_cluster
    client = connect(endpoints)
    revision = client.kv.put("greeting", "hello")
    assert client.kv.get("greeting") == b"hello"
    value, read_at = client.kv.get_with_revision("greeting")
    assert value == b"hello" and read_at >= revision
    assert client.kv.cas("greeting", "hello", "hi") is True
    assert client.kv.range("gr") == [(b"greeting", b"hi")]
    assert client.kv.delete("greeting") is True
    assert client.status()["leader"] in (1, 2, 3)

    with client.session(ttl=3) as s1, client.session(ttl=3) as s2:
        with s1.lock("m", timeout=5) as lock:
            assert s2.try_lock("m") is None
            assert client.kv.txn([("m", "lock_token", lock.token)], [("data", "x")]) is True
        with s2.election("e").campaign("b", timeout=5) as leadership:
            assert s1.election("e").leader() == (s2.id, leadership.token, b"b")
        with s1.group("g").join("w1", "meta"):
            assert s2.group("g").members() == [(b"w1", s1.id, b"meta")]
        item = client.enqueue("q", "job")
        claim = s2.queue("q").claim(timeout=5)
        assert (claim.item, claim.payload) == (item, b"job")
        claim.ack()
        assert client.counter_add("c", 3) == 3
    # Every member serves the same data (a client of each one alone).
    for endpoint in endpoints:
        single = accord.connect([endpoint], timeout=10.0)
        assert single.kv.get("data") == b"x"
    assert all(p.poll() is None for p in processes)


HOLDER = textwrap.dedent(
    """
    import sys, time
    import accord
    client = accord.connect(sys.argv[1].split(","), timeout=10.0)
    session = client.session(ttl=2)
    lock = session.lock("shared-lock", timeout=10)
    print(lock.token, session.id, flush=True)
    time.sleep(60)
    """
)


def read_line(process: subprocess.Popen, timeout: float) -> str:
    """One line of the child's stdout within `timeout` seconds."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        process.kill()
        _, err = process.communicate(timeout=5)
        pytest.fail(f"the child printed nothing in {timeout} s; stderr: {err}")
    line = process.stdout.readline()
    if not line:
        _, err = process.communicate(timeout=5)
        pytest.fail(f"the child exited ({process.returncode}) before printing; stderr: {err}")
    return line


def test_a_lock_held_by_a_killed_process_passes_on_and_fences_the_old_token(server_cluster, python_child):
    endpoints, _processes = server_cluster
    client = connect(endpoints)
    holder = python_child(HOLDER.replace("sys.argv[1]", repr(",".join(endpoints))))
    old_token, holder_session = (int(x) for x in read_line(holder, 20).split())
    assert old_token > 0

    # The lock is held, and the holder's fenced writes are accepted while it is alive.
    with client.session(ttl=3) as session:
        assert session.try_lock("shared-lock") is None
        assert client.kv.txn([("shared-lock", "lock_token", old_token)], [("resource", "old")]) is True

        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        killed = time.monotonic()

        # The holder's session expires a TTL (2 s) after its last keepalive: the lock passes.
        lock = session.lock("shared-lock", timeout=10)
        waited = time.monotonic() - killed
        assert waited < 10
        assert lock.token > old_token
        assert lock.is_held()

        # The dead holder's token is refused from now on; the new one is accepted.
        assert client.kv.txn([("shared-lock", "lock_token", old_token)], [("resource", "stale")]) is False
        assert client.kv.get("resource") == b"old"
        assert client.kv.txn([("shared-lock", "lock_token", lock.token)], [("resource", "new")]) is True
        assert client.kv.get("resource") == b"new"
        assert session.id != holder_session
        lock.release()


def test_a_watch_has_no_gap_across_a_leader_kill(server_cluster):
    endpoints, processes = server_cluster
    leader = leader_endpoint(accord_bin(), endpoints)
    assert leader is not None
    # The leader first: the client, and its watch, start on the member about to be killed.
    client = connect([leader] + [e for e in endpoints if e != leader])
    assert client.status()["role"] == "leader"
    watch = client.kv.watch("failover/")
    for i in range(20):
        client.kv.put(f"failover/{i:02d}", str(i))
    assert leader_endpoint(accord_bin(), endpoints) == leader

    victim = processes[endpoints.index(leader)]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)

    for i in range(20, 40):
        client.kv.put(f"failover/{i:02d}", str(i))  # retried until a new leader takes it
    survivors = [e for e in endpoints if e != leader]
    wait_for(lambda: leader_endpoint(accord_bin(), survivors), 10, "a new leader")

    events: List[accord.Event] = []
    seen: Set[bytes] = set()
    deadline = time.monotonic() + 20
    while len(seen) < 40 and time.monotonic() < deadline:
        for event in watch.next(0.5):
            events.append(event)
            seen.add(event.key)
    keys = [e.key for e in events]
    assert len(seen) == 40, f"missing: {sorted({f'failover/{i:02d}'.encode() for i in range(40)} - seen)}"
    assert len(keys) == 40, "an event was delivered twice"
    assert keys == [f"failover/{i:02d}".encode() for i in range(40)]
    revisions = [e.revision for e in events]
    assert all(a < b for a, b in zip(revisions, revisions[1:])), revisions
    assert [e.value for e in events] == [str(i).encode() for i in range(40)]
    assert watch.next(0.3) == []  # nothing repeated after the 40


def test_server_processes_are_killed_even_when_the_test_fails(tmp_path):
    with pytest.raises(RuntimeError, match="on purpose"):
        with server_processes(tmp_path) as (endpoints, processes):
            assert all(p.poll() is None for p in processes)
            raise RuntimeError("failing on purpose")
    assert all(p.poll() is not None for p in processes)
