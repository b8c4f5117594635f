"""The key-value store through the Python API, on an in-process 3-member cluster."""

from __future__ import annotations

import pytest

import accord


def test_put_returns_increasing_revisions_and_get_reads_the_value(cluster, name):
    key = name("k")
    first = cluster.kv.put(key, "one")
    second = cluster.kv.put(key, b"two")
    assert isinstance(first, int) and isinstance(second, int)
    assert second > first > 0
    assert cluster.kv.get(key) == b"two"
    value, revision = cluster.kv.get_with_revision(key)
    assert value == b"two"
    assert revision >= second


def test_str_and_bytes_keys_are_the_same_key_and_values_come_back_as_bytes(cluster, name):
    key = name("ключ")  # non-ASCII: encoded as UTF-8
    cluster.kv.put(key, "значение")
    assert cluster.kv.get(key.encode("utf-8")) == "значение".encode("utf-8")
    cluster.kv.put(key.encode(), bytearray(b"\x00\xff"))
    assert cluster.kv.get(key) == b"\x00\xff"
    assert isinstance(cluster.kv.get(key), bytes)


def test_get_of_an_absent_key_is_none(cluster, name):
    assert cluster.kv.get(name("absent")) is None
    value, revision = cluster.kv.get_with_revision(name("absent"))
    assert value is None
    assert revision > 0


def test_serializable_get_sees_an_acknowledged_write_eventually(cluster, name):
    key = name("k")
    cluster.kv.put(key, "v")
    # Served by the member connected to: possibly stale, never torn; it catches up.
    reads = [cluster.kv.get(key, serializable=True) for _ in range(200)]
    assert set(reads) <= {None, b"v"}
    assert cluster.kv.get(key) == b"v"


def test_delete_says_whether_the_key_existed(cluster, name):
    key = name("k")
    cluster.kv.put(key, "v")
    assert cluster.kv.delete(key) is True
    assert cluster.kv.get(key) is None
    assert cluster.kv.delete(key) is False


def test_cas_swaps_only_on_the_expected_value(cluster, name):
    key = name("k")
    assert cluster.kv.cas(key, None, "v1") is True  # absent -> create
    assert cluster.kv.cas(key, None, "v2") is False  # no longer absent
    assert cluster.kv.cas(key, "wrong", "v2") is False
    assert cluster.kv.get(key) == b"v1"
    assert cluster.kv.cas(key, b"v1", "v2") is True
    assert cluster.kv.get(key) == b"v2"


def test_range_lists_a_prefix_in_key_order_with_a_limit(cluster, name):
    prefix = name("r/")
    for i in (3, 1, 2, 0):
        cluster.kv.put(f"{prefix}{i}", f"v{i}")
    cluster.kv.put(name("r-outside"), "x")
    pairs = cluster.kv.range(prefix)
    assert pairs == [(f"{prefix}{i}".encode(), f"v{i}".encode()) for i in range(4)]
    assert cluster.kv.range(prefix, limit=2) == pairs[:2]
    assert cluster.kv.range(name("nothing-here/")) == []


def test_txn_applies_success_or_failure_atomically(cluster, name):
    a, b, c = name("a"), name("b"), name("c")
    cluster.kv.put(a, "1")
    cluster.kv.put(b, "doomed")
    held = cluster.kv.txn([(a, "value", "1"), (c, "exists", False)], [(c, "new"), (b, None)], [(c, "failure")])
    assert held is True
    assert cluster.kv.get(c) == b"new"
    assert cluster.kv.get(b) is None
    held = cluster.kv.txn([(a, "value", b"2")], [(c, "success")], [(c, "failure")])
    assert held is False
    assert cluster.kv.get(c) == b"failure"


def test_txn_compares_version_and_mod_revision(cluster, name):
    key = name("k")
    cluster.kv.put(key, "1")
    revision = cluster.kv.put(key, "2")
    assert cluster.kv.txn([(key, "version", 2)], [(key, "v3")]) is True
    assert cluster.kv.txn([(key, "version", 2)], [(key, "v4")]) is False
    assert cluster.kv.txn([(key, "mod_revision", revision)], [(key, "v5")]) is False
    _value, now = cluster.kv.get_with_revision(key)
    modified = cluster.kv.put(key, "v6")
    assert modified > now
    assert cluster.kv.txn([(key, "mod_revision", modified)], [(key, "v7")]) is True
    assert cluster.kv.get(key) == b"v7"


def test_values_up_to_the_limit_round_trip(cluster, name):
    key = name("big")
    value = bytes(range(256)) * 2048  # 512 KiB
    cluster.kv.put(key, value)
    assert cluster.kv.get(key) == value


def test_a_second_client_sees_the_first_ones_writes(cluster, cluster_endpoints, name):
    key = name("k")
    revision = cluster.kv.put(key, "shared")
    other = accord.connect(",".join(cluster_endpoints))  # the comma-separated form
    value, read_at = other.kv.get_with_revision(key)
    assert value == b"shared"
    assert read_at >= revision


def test_status_describes_the_member(cluster):
    status = cluster.status()
    assert set(status) == {"id", "role", "term", "leader", "commit", "applied", "revision"}
    assert status["id"] in (1, 2, 3)
    assert status["leader"] in (1, 2, 3)
    assert status["role"] in ("leader", "follower")
    assert status["term"] >= 1
    assert status["commit"] >= 1 and status["applied"] >= 1
    assert status["revision"] >= 1
    assert isinstance(accord.__version__, str) and accord.__version__


def test_range_returns_every_pair_even_when_they_exceed_one_reply(cluster, name):
    # One range reply carries at most 512 KiB of keys and values: the rest must still come
    # back (or the truncation be visible), never be dropped silently.
    prefix = name("big/")
    value = b"v" * (300 * 1024)
    for i in range(3):
        cluster.kv.put(f"{prefix}{i}", value)
    try:
        pairs = cluster.kv.range(prefix)
    except accord.InvalidArgument as refused:
        assert "narrow" in str(refused)  # the truncation is visible
        return
    assert [k for k, _ in pairs] == [f"{prefix}{i}".encode() for i in range(3)]


def test_range_with_limit_zero_is_not_one_pair(cluster, name):
    prefix = name("r/")
    cluster.kv.put(f"{prefix}a", "1")
    cluster.kv.put(f"{prefix}b", "2")
    try:
        pairs = cluster.kv.range(prefix, limit=0)
    except accord.InvalidArgument:
        return
    assert len(pairs) in (0, 2), pairs  # nothing, or "no limit": never one of the two
