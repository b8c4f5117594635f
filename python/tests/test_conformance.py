"""The conformance scenarios of ``tests/conformance`` (format in its README), run through the
Python API. The Rust, C and Go suites run the same files and must give the same results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import pytest

import accord

from conftest import free_ports

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "tests" / "conformance").glob("*.scn"))

# The result kind of each exception (the C result code's name in lower case); the most
# specific class first.
ERROR_KINDS: List[Tuple[type, str]] = [
    (accord.Timeout, "timeout"),
    (accord.Cancelled, "cancelled"),
    (accord.NotLeader, "unavailable"),
    (accord.Rejected, "rejected"),
    (accord.PermissionDenied, "permission_denied"),
    (accord.SessionLost, "session_lost"),
    (accord.Compacted, "compacted"),
    (accord.Shutdown, "shutdown"),
    (accord.InvalidArgument, "invalid_argument"),
    (accord.StorageError, "io"),
    (accord.ConfigError, "config"),
]

Handle = Union[accord.Lock, accord.Leadership, accord.Membership, accord.Claim, None]


class Step:
    def __init__(self, line: int, text: str) -> None:
        self.line = line
        self.text = text
        call, _, expected = text.partition("->")
        words = [_token(w) for w in call.split()]
        self.op = words[0]
        self.args = words[1:]
        self.expected = [_token(w) for w in expected.split()]


def _token(raw: str) -> str:
    return "" if raw == '""' else raw


def parse(path: Path) -> List[Step]:
    steps = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert "->" in line, f"{path}:{number}: no `->`"
        steps.append(Step(number, line))
    return steps


def check(bindings: Dict[str, str], expected: List[str], actual: List[str]) -> Optional[str]:
    """None when `actual` matches `expected` (binding variables), else why not."""
    if len(expected) != len(actual):
        return "a different number of tokens"
    for want, got in zip(expected, actual):
        if want == "*":
            continue
        if not want.startswith("$"):
            if want != got:
                return f"{got!r} where {want!r} was expected"
            continue
        name, _, above = want[1:].partition(">$")
        if above:
            if above not in bindings:
                return f"${above} is not bound"
            if not got.lstrip("-").isdigit() or int(got) <= int(bindings[above]):
                return f"{got!r} is not above ${above} = {bindings[above]}"
        if name in bindings and bindings[name] != got:
            return f"{got!r} is not ${name} = {bindings[name]!r}"
        bindings.setdefault(name, got)
    return None


def _txn(args: List[str]) -> Tuple[list, list, list]:
    then, otherwise = args.index("then"), args.index("else")

    def groups(part: List[str]) -> List[List[str]]:
        out: List[List[str]] = [[]]
        for word in part:
            if word == ",":
                out.append([])
            else:
                out[-1].append(word)
        return [g for g in out if g]

    compares = []
    for c in groups(args[:then]):
        kind, key = c[0], c[1]
        if kind == "value":
            compares.append((key, "value", c[2]))
        elif kind in ("exists", "absent"):
            compares.append((key, "exists", kind == "exists"))
        else:
            names = {"version": "version", "mod": "mod_revision", "lock": "lock_token",
                     "leader": "leader_token"}
            compares.append((key, names[kind], int(c[2])))

    def ops(part: List[str]) -> list:
        return [(o[1], o[2] if o[0] == "put" else None) for o in groups(part)]

    return compares, ops(args[then + 1:otherwise]), ops(args[otherwise + 1:])


def _text(data: bytes) -> str:
    return data.decode()


class World:
    """One single-member cluster, a client of it, and the handles the steps named."""

    def __init__(self, data_dir: Path) -> None:
        port = free_ports(1)[0]
        self.node: Optional[accord.Node] = accord.Node(
            1, f"127.0.0.1:{port}", {1: f"127.0.0.1:{port}"}, str(data_dir), tick=0.02
        )
        self.client = self.node.client()
        self.sessions: Dict[str, accord.Session] = {}
        self.held: Dict[str, Handle] = {}
        self.watches: Dict[str, Tuple[accord.Watch, List[accord.Event]]] = {}

    def run(self, op: str, a: List[str]) -> List[str]:
        kv = self.client.kv
        s = self.sessions
        if op == "put":
            return ["rev", str(kv.put(a[0], a[1]))]
        if op == "get":
            value = kv.get(a[0])
            return ["absent"] if value is None else ["value", _text(value)]
        if op == "delete":
            return ["deleted" if kv.delete(a[0]) else "absent"]
        if op == "range":
            pairs = kv.range(a[0])
            return ["kvs", str(len(pairs))] + [_text(x) for pair in pairs for x in pair]
        if op == "cas":
            swapped = kv.cas(a[0], None if a[1] == "-" else a[1], a[2])
            return ["swapped" if swapped else "unchanged"]
        if op == "txn":
            compares, success, failure = _txn(a)
            return ["succeeded" if kv.txn(compares, success, failure) else "failed"]
        if op == "session":
            s[a[0]] = self.client.session(ttl=int(a[1]) / 1000)
            return ["ok"]
        if op == "state":
            return [s[a[0]].state]
        if op == "await-lost":
            session = s[a[0]]
            deadline = time.monotonic() + int(a[1]) / 1000
            state = session.state
            while state != "lost" and time.monotonic() < deadline:
                state = session.wait_change(state, deadline - time.monotonic())
            return [state]
        if op == "close":
            s[a[0]].close()
            return ["ok"]
        if op in ("lock", "rlock", "wlock", "semaphore"):
            session = s[a[0]]
            if op == "lock":
                lock = session.lock(a[2], timeout=int(a[3]) / 1000)
            elif op == "semaphore":
                lock = session.semaphore(a[2], int(a[3]), timeout=int(a[4]) / 1000)
            else:
                lock = session.rwlock(a[2], write=op == "wlock", timeout=int(a[3]) / 1000)
            self.held[a[1]] = lock
            return ["token", str(lock.token)]
        if op == "release":
            lock = self.held[a[0]]
            assert isinstance(lock, accord.Lock)
            lock.release()
            return ["ok"]
        if op == "campaign":
            leadership = s[a[0]].election(a[2]).campaign(a[3], timeout=int(a[4]) / 1000)
            self.held[a[1]] = leadership
            return ["token", str(leadership.token)]
        if op == "proclaim":
            leadership = self.held[a[0]]
            assert isinstance(leadership, accord.Leadership)
            leadership.proclaim(a[1])
            return ["ok"]
        if op == "resign":
            leadership = self.held[a[0]]
            assert isinstance(leadership, accord.Leadership)
            leadership.resign()
            return ["ok"]
        if op == "leader":
            leader = self.client.leader(a[0])
            if leader is None:
                return ["none"]
            _session, token, value = leader
            return ["leader", _text(value), "token", str(token)]
        if op == "join":
            self.held[a[1]] = s[a[0]].group(a[2]).join(a[3], a[4])
            return ["ok"]
        if op == "leave":
            membership = self.held[a[0]]
            assert isinstance(membership, accord.Membership)
            membership.leave()
            return ["ok"]
        if op == "members":
            members = self.client.members(a[0])
            out = ["members", str(len(members))]
            for member, _session, metadata in members:
                out += [_text(member), _text(metadata)]
            return out
        if op == "enqueue":
            return ["item", str(self.client.enqueue(a[0], a[1]))]
        if op == "claim":
            claim = s[a[0]].queue(a[2]).claim(timeout=int(a[3]) / 1000)
            self.held[a[1]] = claim
            return ["item", str(claim.item), "payload", _text(claim.payload)]
        if op in ("ack", "nack"):
            claim = self.held[a[0]]
            assert isinstance(claim, accord.Claim)
            claim.ack() if op == "ack" else claim.release()
            return ["ok"]
        if op == "held":
            handle = self.held[a[0]]
            if isinstance(handle, accord.Leadership):
                return [str(handle.is_leader()).lower()]
            assert isinstance(handle, (accord.Lock, accord.Claim))
            return [str(handle.is_held()).lower()]
        if op == "barrier":
            s[a[0]].barrier(a[1], int(a[2]), timeout=int(a[3]) / 1000)
            return ["ok"]
        if op == "add":
            return ["value", str(self.client.counter_add(a[0], int(a[1])))]
        if op == "counter":
            return ["value", str(self.client.counter(a[0]))]
        if op == "watch":
            self.watches[a[0]] = (kv.watch(a[1], start_revision=int(a[2])), [])
            return ["ok"]
        if op == "events":
            watch, pending = self.watches[a[0]]
            deadline = time.monotonic() + int(a[2]) / 1000
            out: List[str] = []
            seen = 0
            while seen < int(a[1]):
                if pending:
                    event = pending.pop(0)
                    seen += 1
                    if event.kind == "put":
                        out += ["put", _text(event.key), _text(event.value), str(event.revision)]
                    else:
                        out += ["delete", _text(event.key), str(event.revision)]
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    out.append("timeout")
                    break
                pending.extend(watch.next(left))
            return out
        if op == "stop-node":
            assert self.node is not None
            self.node.stop()
            return ["ok"]
        raise AssertionError(f"unknown step {op!r}")


def error_kind(error: accord.AccordError) -> str:
    for cls, kind in ERROR_KINDS:
        if isinstance(error, cls):
            return kind
    return "other"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path, tmp_path: Path) -> None:
    assert SCENARIOS, "no scenarios in tests/conformance"
    world = World(tmp_path / "data")
    bindings: Dict[str, str] = {}
    try:
        for step in parse(path):
            args = []
            for arg in step.args:
                if arg.startswith("$"):
                    assert arg[1:] in bindings, f"{path}:{step.line}: {arg} is not bound"
                    arg = bindings[arg[1:]]
                args.append(arg)
            try:
                actual = world.run(step.op, args)
            except accord.AccordError as error:
                actual = ["error", error_kind(error)]
            why = check(bindings, step.expected, actual)
            assert why is None, f"{path}:{step.line}: {step.text}\n  got: {' '.join(actual)}\n  ({why})"
    finally:
        if world.node is not None:
            world.node.stop()
