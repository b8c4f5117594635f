"""Bad input gets a clear exception, never a crash or a hang: wrong types raise TypeError
naming what was wrong; out-of-range values raise accord.InvalidArgument; using a closed
session raises an accord.AccordError subclass."""

from __future__ import annotations

import math
import time

import pytest

import accord

TTL = 3.0
MIB = 1024 * 1024


@pytest.fixture
def session(cluster):
    with cluster.session(ttl=TTL) as s:
        yield s


# ---------------------------------------------------------------------------------------------
# Wrong types


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda c, s: c.kv.put(1, "v"), ["key", "bytes or str", "int"]),
        (lambda c, s: c.kv.put("k", 1.5), ["value", "bytes or str", "float"]),
        (lambda c, s: c.kv.put("k", None), ["value", "bytes or str", "NoneType"]),
        (lambda c, s: c.kv.get(["k"]), ["key", "bytes or str", "list"]),
        (lambda c, s: c.kv.delete(object()), ["key", "bytes or str", "object"]),
        (lambda c, s: c.kv.cas("k", 5, "v"), ["expected", "bytes or str", "int"]),
        (lambda c, s: c.kv.range(42), ["prefix", "bytes or str", "int"]),
        (lambda c, s: c.kv.txn([("k", "value", 7)], [("k", "v")]), ["value", "bytes or str", "int"]),
        (lambda c, s: c.kv.txn([], [("k", 3)]), ["value", "bytes or str", "int"]),
        (lambda c, s: c.kv.watch(3.0), ["prefix", "bytes or str", "float"]),
        (lambda c, s: c.counter_add(b"c", "1"), ["delta", "str"]),
        (lambda c, s: c.counter({"c": 1}), ["name", "bytes or str", "dict"]),
        (lambda c, s: c.enqueue("q", 7), ["payload", "bytes or str", "int"]),
        (lambda c, s: c.session(ttl="10"), ["ttl", "str"]),
        (lambda c, s: s.lock(5), ["name", "bytes or str", "int"]),
        (lambda c, s: s.lock("m", timeout="1"), ["timeout", "str"]),
        (lambda c, s: s.try_lock(None), ["name", "bytes or str", "NoneType"]),
        (lambda c, s: s.semaphore("sem", "2"), ["permits", "str"]),
        (lambda c, s: s.election(1), ["name", "bytes or str", "int"]),
        (lambda c, s: s.election("e").campaign(2), ["value", "bytes or str", "int"]),
        (lambda c, s: s.group(b"g").join(1), ["member", "bytes or str", "int"]),
        (lambda c, s: s.group(b"g").join("m", 1), ["bytes or str", "int"]),
        (lambda c, s: s.queue([]), ["queue", "bytes or str", "list"]),
        (lambda c, s: s.queue("q").put(3), ["payload", "bytes or str", "int"]),
        (lambda c, s: s.barrier(b"b", "2"), ["participants", "str"]),
        (lambda c, s: accord.connect([1, 2]), ["endpoints", "int"]),  # type: ignore[list-item]
    ],
)
def test_wrong_types_raise_type_error_with_a_clear_message(cluster, session, call, words):
    with pytest.raises(TypeError) as raised:
        call(cluster, session)
    message = str(raised.value)
    for word in words:
        assert word in message, f"{message!r} does not mention {word!r}"


def test_a_txn_compare_must_be_a_triple(cluster):
    with pytest.raises((TypeError, ValueError)):
        cluster.kv.txn([("k", "value")], [("k", "v")])


def test_a_lock_token_compare_needs_an_integer(cluster):
    with pytest.raises(TypeError):
        cluster.kv.txn([("k", "lock_token", "seven")], [("k", "v")])


# ---------------------------------------------------------------------------------------------
# Out-of-range values


@pytest.mark.parametrize("timeout", [-1.0, -0.001, math.nan, math.inf, -math.inf])
def test_a_bad_lock_timeout_is_invalid(session, name, timeout):
    with pytest.raises(accord.InvalidArgument, match="timeout"):
        session.lock(name("m"), timeout=timeout)


@pytest.mark.parametrize("timeout", [-1.0, math.nan])
def test_bad_timeouts_are_invalid_for_every_blocking_call(cluster, session, name, timeout):
    calls = [
        lambda: session.lock(name("m"), timeout=timeout),
        lambda: session.rwlock(name("rw"), write=True, timeout=timeout),
        lambda: session.rwlock(name("rw"), write=False, timeout=timeout),
        lambda: session.semaphore(name("sem"), 2, timeout=timeout),
        lambda: session.election(name("e")).campaign("v", timeout=timeout),
        lambda: session.queue(name("q")).claim(timeout=timeout),
        lambda: session.barrier(name("b"), 2, timeout=timeout),
        lambda: session.wait_change("held", timeout),
        lambda: cluster.kv.watch(name("w")).next(timeout),
        lambda: accord.connect(["127.0.0.1:1"], timeout=timeout),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(accord.InvalidArgument):
            call()
            pytest.fail(f"call {i} accepted timeout={timeout}")


def test_a_zero_timeout_does_not_wait(cluster, session, name):
    with cluster.session(ttl=TTL) as holder:
        with holder.lock(name("m"), timeout=2):
            started = time.monotonic()
            with pytest.raises(accord.Timeout):
                session.lock(name("m"), timeout=0)
            assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("size", [MIB + 1, 2 * MIB])
def test_an_oversize_value_is_invalid(cluster, name, size):
    with pytest.raises(accord.InvalidArgument):
        cluster.kv.put(name("big"), b"x" * size)
    assert cluster.kv.get(name("big")) is None
    # The client and the cluster are fine afterwards.
    cluster.kv.put(name("small"), "ok")
    assert cluster.kv.get(name("small")) == b"ok"


def test_an_oversize_value_is_invalid_in_txn_cas_and_queue(cluster, session, name):
    big = b"x" * (MIB + 1)
    with pytest.raises(accord.InvalidArgument):
        cluster.kv.cas(name("k"), None, big)
    with pytest.raises(accord.InvalidArgument):
        cluster.kv.txn([], [(name("k"), big)])
    with pytest.raises(accord.InvalidArgument):
        cluster.enqueue(name("q"), big)
    assert cluster.kv.get(name("k")) is None


def test_an_oversize_key_is_invalid(cluster):
    with pytest.raises(accord.InvalidArgument):
        cluster.kv.put(b"k" * 5000, "v")


@pytest.mark.parametrize(
    "call",
    [
        lambda c, s: c.kv.put("", "v"),
        lambda c, s: c.kv.put(b"", "v"),
        pytest.param(lambda c, s: c.kv.get(""), id="get"),
        lambda c, s: c.kv.delete(""),
        lambda c, s: c.kv.cas("", None, "v"),
        lambda c, s: c.kv.txn([], [("", "v")]),
        lambda c, s: c.counter_add("", 1),
        lambda c, s: c.enqueue("", "job"),
        lambda c, s: s.lock("", timeout=1),
        lambda c, s: s.try_lock(""),
        lambda c, s: s.election("").campaign("v", timeout=1),
        lambda c, s: s.group("g").join(""),
        lambda c, s: s.group("").join("m"),
        lambda c, s: s.queue("").claim(timeout=1),
        lambda c, s: s.barrier("", 2, timeout=1),
    ],
)
def test_an_empty_key_or_name_is_invalid(cluster, session, call):
    with pytest.raises(accord.InvalidArgument):
        call(cluster, session)


@pytest.mark.parametrize("ttl", [0.1, 0.0, 0.999, 86_400 * 2])
def test_a_session_ttl_out_of_range_is_invalid(cluster, ttl):
    with pytest.raises(accord.InvalidArgument, match="TTL"):
        cluster.session(ttl=ttl)


@pytest.mark.parametrize("ttl", [-1.0, math.nan, math.inf])
def test_a_negative_or_nan_session_ttl_is_invalid(cluster, ttl):
    with pytest.raises(accord.InvalidArgument):
        cluster.session(ttl=ttl)


def test_the_error_for_a_negative_ttl_names_the_ttl(cluster):
    with pytest.raises(accord.InvalidArgument, match="(?i)ttl"):
        cluster.session(ttl=-1.0)


@pytest.mark.parametrize("space", ["nope", "", "KV", "locks"])
def test_an_unknown_watch_space_is_invalid(cluster, space):
    with pytest.raises(accord.InvalidArgument, match="space"):
        cluster.watch("x", space=space)


@pytest.mark.parametrize("permits", [0, 10_001])
def test_semaphore_permits_out_of_range_are_invalid(session, name, permits):
    with pytest.raises(accord.InvalidArgument):
        session.semaphore(name("sem"), permits, timeout=1)


@pytest.mark.parametrize("participants", [0, 10_001])
def test_barrier_participants_out_of_range_are_invalid(session, name, participants):
    with pytest.raises(accord.InvalidArgument):
        session.barrier(name("b"), participants, timeout=1)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c, s: s.semaphore("sem", -1, timeout=1), id="permits"),
        pytest.param(lambda c, s: s.barrier("b", -2, timeout=1), id="participants"),
        pytest.param(lambda c, s: c.kv.range("", limit=-1), id="limit"),
        pytest.param(lambda c, s: c.kv.watch("", start_revision=-1), id="start_revision"),
        pytest.param(lambda c, s: c.counter_add("c", 2**64), id="delta"),
        pytest.param(lambda c, s: c.kv.txn([("k", "version", -1)], []), id="version"),
    ],
)
def test_negative_or_huge_integers_are_refused_cleanly(cluster, session, call):
    with pytest.raises((accord.InvalidArgument, OverflowError, ValueError)):
        call(cluster, session)


def test_an_unknown_txn_compare_kind_is_invalid(cluster):
    with pytest.raises(accord.InvalidArgument, match="bogus"):
        cluster.kv.txn([("k", "bogus", 1)], [("k", "v")])


def test_an_unknown_session_state_is_invalid(session):
    with pytest.raises(accord.InvalidArgument):
        session.wait_change("alive", 0.1)


def test_an_unreachable_cluster_is_not_reported_as_damaged_storage():
    from conftest import free_ports

    client = accord.connect([f"127.0.0.1:{free_ports(1)[0]}"], timeout=0.5)  # nothing listens
    with pytest.raises(accord.AccordError) as raised:
        client.kv.put("k", "v")
    # StorageError means "storage failed or is damaged": a refused connection is neither.
    assert not isinstance(raised.value, accord.StorageError), repr(raised.value)


def test_bad_endpoints_are_refused_or_fail_cleanly():
    with pytest.raises(accord.ConfigError):
        accord.connect([])
    with pytest.raises(accord.AccordError):
        accord.Node(1, "not-an-address", {}, "/nonexistent/never-created")
    client = accord.connect(["127.0.0.1:1"], timeout=0.5)  # nothing listens there
    started = time.monotonic()
    with pytest.raises(accord.AccordError):
        client.kv.put("k", "v")
    assert time.monotonic() - started < 3.0


# ---------------------------------------------------------------------------------------------
# Use after close


def test_every_call_on_a_closed_session_raises_an_accord_error(cluster, name):
    session = cluster.session(ttl=TTL)
    session.close()
    calls = [
        lambda: session.lock(name("m"), timeout=1),
        lambda: session.try_lock(name("m")),
        lambda: session.rwlock(name("rw"), write=False, timeout=1),
        lambda: session.semaphore(name("sem"), 2, timeout=1),
        lambda: session.election(name("e")).campaign("v", timeout=1),
        lambda: session.group(name("g")).join("m"),
        lambda: session.queue(name("q")).claim(timeout=1),
        lambda: session.queue(name("q")).try_claim(),
        lambda: session.barrier(name("b"), 1, timeout=1),
    ]
    for i, call in enumerate(calls):
        started = time.monotonic()
        with pytest.raises(accord.AccordError):
            call()
            pytest.fail(f"call {i} succeeded on a closed session")
        assert time.monotonic() - started < 3.0
    session.close()  # closing again is harmless
    assert cluster.kv.put(name("still-fine"), "v") > 0


def test_handles_of_a_closed_session_fail_cleanly(cluster, name):
    session = cluster.session(ttl=TTL)
    lock = session.lock(name("m"), timeout=2)
    leadership = session.election(name("e")).campaign("v", timeout=2)
    membership = session.group(name("g")).join("m")
    cluster.enqueue(name("q"), "job")
    claim = session.queue(name("q")).claim(timeout=2)
    session.close()
    try:
        lock.release()
    except accord.AccordError:
        pass
    try:
        membership.leave()
    except accord.AccordError:
        pass
    try:
        leadership.resign()
    except accord.AccordError:
        pass
    with pytest.raises(accord.AccordError):
        leadership.proclaim("again")
    with pytest.raises(accord.AccordError):
        claim.ack()  # the item went back to the queue with the session: not acknowledged
    assert not lock.is_held()
    assert not claim.is_held()
    with cluster.session(ttl=TTL) as other:
        redelivered = other.queue(name("q")).claim(timeout=2)
        assert redelivered.item == claim.item
        redelivered.ack()


def test_a_stopped_node_raises_shutdown(tmp_path):
    from conftest import free_ports

    port = free_ports(1)[0]
    node = accord.Node(1, f"127.0.0.1:{port}", {}, str(tmp_path / "solo"), tick=0.02)
    client = node.client()
    deadline = time.monotonic() + 5
    while True:  # a single member elects itself
        try:
            client.kv.put("k", "v")
            break
        except accord.NotLeader:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    node.stop()
    node.stop()  # twice is fine
    with pytest.raises(accord.Shutdown):
        node.client()
