"""accord: an embeddable coordination engine.

Join a cluster, elect a leader, take a lock that stays safe through pauses and partitions,
announce yourself in a group, hand out work exactly once, and replicate small state, with no
etcd, ZooKeeper or Consul beside your service.

Keys, names, values and payloads accept ``bytes`` or ``str`` (encoded as UTF-8); values come
back as ``bytes``. Every blocking call releases the GIL, takes ``timeout=`` in seconds, and is
cancelled by Ctrl-C within 100 ms (raising ``KeyboardInterrupt``).

The shortest useful program::

    import accord

    client = accord.connect(["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"])
    with client.session(ttl=10) as session:
        with session.lock("backups") as lock:
            run_backup(fencing_token=lock.token)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import _native
from ._native import (
    AccordError,
    Cancelled,
    Compacted,
    ConfigError,
    InvalidArgument,
    LockLost,
    NotLeader,
    PermissionDenied,
    Rejected,
    SessionLost,
    Shutdown,
    StorageError,
    Timeout,
)

__version__: str = _native.__version__

__all__ = [
    "AccordError",
    "Bytes",
    "Cancelled",
    "Claim",
    "Client",
    "Compacted",
    "ConfigError",
    "Election",
    "Event",
    "Group",
    "InvalidArgument",
    "KV",
    "Leadership",
    "Lock",
    "LockLost",
    "Membership",
    "Node",
    "NotLeader",
    "PermissionDenied",
    "Queue",
    "Rejected",
    "Session",
    "SessionLost",
    "Shutdown",
    "StorageError",
    "Timeout",
    "Watch",
    "connect",
]

Bytes = Union[bytes, str]


def _b(data: Bytes, what: str = "value") -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes or str, not {type(data).__name__}")


@dataclass(frozen=True)
class Event:
    """One change: its revision, space ("kv", "lock", ...), kind ("put", "delete",
    "granted", ...), key or name, value (or member id, payload, metadata), session, fencing
    token and item (queue item, counter value...)."""

    revision: int
    space: str
    kind: str
    key: bytes
    value: bytes
    session: int
    token: int
    item: int


class Watch:
    """Changes under a prefix, in revision order, none missed or repeated. Iterate over it,
    or call :meth:`next` with a timeout."""

    def __init__(self, native: _native.NativeWatch) -> None:
        self._native = native

    def next(self, timeout: Optional[float] = None) -> List[Event]:
        """The next events (an empty list when none came within `timeout` seconds)."""
        return [Event(*raw) for raw in self._native.next(timeout)]

    def __iter__(self) -> Iterator[Event]:
        while True:
            for event in self.next(1.0):
                yield event


class KV:
    """The key-value store: ``client.kv``."""

    def __init__(self, native: _native.NativeClient) -> None:
        self._native = native

    def put(self, key: Bytes, value: Bytes) -> int:
        """Sets `key` to `value`; returns the revision of the write."""
        return self._native.put(_b(key, "key"), _b(value))

    def get(self, key: Bytes, *, serializable: bool = False) -> Optional[bytes]:
        """The value of `key` (None if absent). Linearizable, unless `serializable` (served
        by the member connected to, possibly stale)."""
        value, _revision = self.get_with_revision(key, serializable=serializable)
        return value

    def get_with_revision(
        self, key: Bytes, *, serializable: bool = False
    ) -> Tuple[Optional[bytes], int]:
        """(value or None, revision it was read at)."""
        key_bytes = _b(key, "key")
        if not key_bytes:
            raise InvalidArgument("keys must be 1 to 4096 bytes, not empty")
        return self._native.get(key_bytes, serializable)

    def delete(self, key: Bytes) -> bool:
        """Deletes `key`; returns whether it existed."""
        deleted, _revision = self._native.delete(_b(key, "key"))
        return deleted

    def cas(self, key: Bytes, expected: Optional[Bytes], value: Bytes) -> bool:
        """Sets `key` to `value` if it holds `expected` (None: if it is absent)."""
        swapped, _revision = self._native.compare_and_swap(
            _b(key, "key"), None if expected is None else _b(expected, "expected"), _b(value)
        )
        return swapped

    def range(self, prefix: Bytes = b"", *, limit: int = 10_000) -> List[Tuple[bytes, bytes]]:
        """The (key, value) pairs under `prefix`, in key order (linearizable), at most
        `limit`. One reply holds at most 512 KiB of keys and values: a prefix holding more
        raises InvalidArgument (narrow the prefix) rather than returning part of it."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise InvalidArgument(f"limit must be 1 to 10000, not {limit!r}")
        pairs, more, _revision = self._native.range(_b(prefix, "prefix"), limit)
        if more and len(pairs) < limit:
            raise InvalidArgument(
                f"more than one reply (512 KiB) of keys and values is under {prefix!r}: "
                "narrow the prefix"
            )
        return pairs

    def txn(
        self,
        compares: Sequence[Tuple[Bytes, str, object]] = (),
        success: Sequence[Tuple[Bytes, Optional[Bytes]]] = (),
        failure: Sequence[Tuple[Bytes, Optional[Bytes]]] = (),
    ) -> bool:
        """Atomically: if every compare holds, apply `success`, else `failure`. A compare is
        (key, kind, operand) with kind "value", "exists", "version", "mod_revision",
        "lock_token" or "leader_token" (the last two make a fenced write); an operation is
        (key, value), or (key, None) for a delete. Returns whether the compares held."""
        compares_b: List[Tuple[bytes, str, object]] = []
        for key, kind, operand in compares:
            if kind == "value":
                if not isinstance(operand, (bytes, str)):
                    raise TypeError(f"a value compare needs bytes or str, not {type(operand).__name__}")
                operand = _b(operand)
            compares_b.append((_b(key, "key"), kind, operand))
        succeeded, _revision = self._native.txn(
            compares_b,
            [(_b(k, "key"), None if v is None else _b(v)) for k, v in success],
            [(_b(k, "key"), None if v is None else _b(v)) for k, v in failure],
        )
        return succeeded

    def watch(self, prefix: Bytes = b"", *, start_revision: Optional[int] = None) -> Watch:
        """Changes of keys under `prefix` from `start_revision` (default: from now)."""
        return _watch(self._native, "kv", prefix, start_revision)


def _watch(
    native: _native.NativeClient, space: str, prefix: Bytes, start_revision: Optional[int]
) -> Watch:
    if start_revision is None:
        start_revision = native.status()[6] + 1
    return Watch(native.watch(space, _b(prefix, "prefix"), start_revision))


class Lock:
    """A held lock: a context manager that releases it on exit. `token` is the fencing token
    to give to the resource it protects."""

    def __init__(self, native: _native.NativeLock) -> None:
        self._native = native

    @property
    def token(self) -> int:
        """The lock's fencing token: pass it to whatever the lock protects."""
        return self._native.token

    def is_held(self) -> bool:
        """Whether the lock is surely still held (checked against the session's safety
        clock now). False means: stop touching the protected resource."""
        return self._native.is_held()

    def release(self) -> None:
        """Releases the lock; the next waiter gets it."""
        self._native.release()

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Leadership:
    """Leadership of an election (a context manager that resigns on exit)."""

    def __init__(self, native: _native.NativeLeadership) -> None:
        self._native = native

    @property
    def token(self) -> int:
        """The leadership's fencing token."""
        return self._native.token

    def is_leader(self) -> bool:
        """Whether this is surely still the leader (its session is not lost)."""
        return self._native.is_leader()

    def proclaim(self, value: Bytes) -> None:
        """Changes the value the leader publishes, keeping the leadership."""
        self._native.proclaim(_b(value))

    def resign(self) -> None:
        """Gives up the leadership; the next candidate is elected."""
        self._native.resign()

    def __enter__(self) -> "Leadership":
        return self

    def __exit__(self, *exc: object) -> None:
        self.resign()


class Election:
    """An election: ``session.election("name")``."""

    def __init__(self, session: "Session", name: Bytes) -> None:
        self._session = session
        self._name = _b(name, "name")

    def campaign(self, value: Bytes, *, timeout: Optional[float] = None) -> Leadership:
        """Blocks until elected (or `timeout`: raises Timeout, the candidacy withdrawn)."""
        return Leadership(self._session._native.campaign(self._name, _b(value), timeout))

    def leader(self) -> Optional[Tuple[int, int, bytes]]:
        """(session, token, value) of the leader now, or None."""
        return self._session._client.leader(self._name)

    def observe(self) -> Watch:
        """Leadership changes from now on (events "granted", "proclaimed", "ended")."""
        return _watch(self._session._client._native, "election", self._name, None)


class Membership:
    """Presence in a group (a context manager that leaves on exit)."""

    def __init__(self, native: _native.NativeMembership) -> None:
        self._native = native

    def leave(self) -> None:
        """Leaves the group."""
        self._native.leave()

    def __enter__(self) -> "Membership":
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()


class Group:
    """A group: ``session.group("name")``."""

    def __init__(self, session: "Session", name: Bytes) -> None:
        self._session = session
        self._name = _b(name, "group")

    def join(self, member: Bytes, metadata: Bytes = b"") -> Membership:
        """Joins the group as `member` with `metadata` until `leave()` or the session's end (a
        context manager)."""
        native = self._session._native.join(self._name, _b(member, "member"), _b(metadata))
        return Membership(native)

    def members(self) -> List[Tuple[bytes, int, bytes]]:
        """[(member id, session, metadata)]."""
        return self._session._client.members(self._name)


class Claim:
    """A claimed work item: process it, then :meth:`ack` (or :meth:`release`)."""

    def __init__(self, native: _native.NativeClaim) -> None:
        self._native = native

    @property
    def item(self) -> int:
        """The item's id in its queue."""
        return self._native.item

    @property
    def token(self) -> int:
        """The claim's fencing token: pass it along with the work's effects."""
        return self._native.token

    @property
    def payload(self) -> bytes:
        """The item's payload."""
        return self._native.payload

    def is_held(self) -> bool:
        """Whether the claim surely still holds (its session is not lost); when False, stop:
        the item goes to another worker."""
        return self._native.is_held()

    def ack(self) -> None:
        """Acknowledges the item: it leaves the queue for good (refused if the claim was lost)."""
        self._native.settle(True)

    def release(self) -> None:
        """Gives the item back to the queue for another worker."""
        self._native.settle(False)


class Queue:
    """A work queue: ``session.queue("name")``."""

    def __init__(self, session: "Session", name: Bytes) -> None:
        self._session = session
        self._name = _b(name, "queue")

    def put(self, payload: Bytes) -> int:
        """Enqueues `payload`; returns the item's id."""
        return self._session._client._native.enqueue(self._name, _b(payload, "payload"))

    def claim(self, *, timeout: Optional[float] = None) -> Claim:
        """Claims the oldest unclaimed item, waiting up to `timeout` seconds (forever if None)."""
        native = self._session._native.claim(self._name, timeout, True)
        assert native is not None
        return Claim(native)

    def try_claim(self) -> Optional[Claim]:
        """Claims the oldest unclaimed item if there is one now, else returns None."""
        native = self._session._native.claim(self._name, None, False)
        return None if native is None else Claim(native)

    def claims(self, *, idle_timeout: Optional[float] = None) -> Iterator[Claim]:
        """Claims one item after another; stops once none came for `idle_timeout` seconds
        (None: never)."""
        while True:
            try:
                yield self.claim(timeout=idle_timeout)
            except Timeout:
                if idle_timeout is not None:
                    return


class Session:
    """A session (a context manager that closes it on exit). Everything it holds is released
    when it ends; its state ("held", "suspect", "lost") follows the safety clock."""

    def __init__(self, client: "Client", native: _native.NativeSession) -> None:
        self._client = client
        self._native = native

    @property
    def id(self) -> int:
        """The session's id."""
        return self._native.id

    @property
    def state(self) -> str:
        """The safety clock's verdict: "held", "suspect" or "lost"."""
        return self._native.state()

    def wait_change(self, current: str, timeout: float) -> str:
        """Waits up to `timeout` seconds for the state to differ from `current`; returns the
        state then."""
        return self._native.wait_change(current, timeout)

    def lock(self, name: Bytes, *, timeout: Optional[float] = None) -> Lock:
        """Takes the mutex `name` (FIFO), waiting up to `timeout` seconds."""
        native = self._native.lock(_b(name, "name"), "mutex", 1, timeout, True)
        assert native is not None
        return Lock(native)

    def try_lock(self, name: Bytes) -> Optional[Lock]:
        """Takes mutex `name` if it is free now, else returns None."""
        native = self._native.lock(_b(name, "name"), "mutex", 1, None, False)
        return None if native is None else Lock(native)

    def rwlock(self, name: Bytes, *, write: bool, timeout: Optional[float] = None) -> Lock:
        """The write (exclusive) or read (shared) side of the read-write lock `name`."""
        kind = "write" if write else "read"
        native = self._native.lock(_b(name, "name"), kind, 1, timeout, True)
        assert native is not None
        return Lock(native)

    def semaphore(self, name: Bytes, permits: int, *, timeout: Optional[float] = None) -> Lock:
        """One of the `permits` permits of the semaphore `name`."""
        native = self._native.lock(_b(name, "name"), "semaphore", permits, timeout, True)
        assert native is not None
        return Lock(native)

    def election(self, name: Bytes) -> Election:
        """The election `name`, to campaign in or observe."""
        return Election(self, name)

    def group(self, name: Bytes) -> Group:
        """The group `name`, to join."""
        return Group(self, name)

    def queue(self, name: Bytes) -> Queue:
        """The work queue `name`, to put items in and claim them."""
        return Queue(self, name)

    def barrier(self, name: Bytes, participants: int, *, timeout: Optional[float] = None) -> None:
        """Waits until `participants` sessions arrived at barrier `name`."""
        self._native.barrier(_b(name, "name"), participants, timeout)

    def keep_alive_once(self, *, timeout: Optional[float] = None) -> None:
        """Renews the session now instead of at its next keepalive (sent every TTL/3 by the
        library itself); returns once the cluster acknowledged it. Raises SessionLost once
        the session is lost."""
        self._native.keep_alive_once(timeout)

    def cancel(self) -> None:
        """Cancels the blocking calls in progress on this session (they raise Cancelled)."""
        self._native.cancel()

    def close(self) -> None:
        """Ends the session: everything it holds is released at once (idempotent)."""
        self._native.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """A connection to a cluster: ``accord.connect(endpoints)`` or ``node.client()``."""

    def __init__(self, native: _native.NativeClient) -> None:
        self._native = native
        self.kv = KV(native)

    def session(self, *, ttl: float = 10.0) -> Session:
        """Opens a session with `ttl` seconds (1 to 86,400; 10 is typical)."""
        return Session(self, self._native.session(ttl))

    def counter_add(self, name: Bytes, delta: int = 1) -> int:
        """Adds `delta` to counter `name` atomically; returns the new value."""
        return self._native.counter_add(_b(name, "name"), delta)

    def counter(self, name: Bytes) -> int:
        """The value of counter `name` (0 if it was never added to)."""
        return self._native.counter(_b(name, "name"))

    def enqueue(self, queue: Bytes, payload: Bytes) -> int:
        """Adds `payload` to the work queue `queue`; returns the item's id (no session needed)."""
        return self._native.enqueue(_b(queue, "queue"), _b(payload, "payload"))

    def leader(self, election: Bytes) -> Optional[Tuple[int, int, bytes]]:
        """(session, token, value) of `election`'s leader now, or None; no session needed."""
        return self._native.leader(_b(election, "name"))

    def members(self, group: Bytes) -> List[Tuple[bytes, int, bytes]]:
        """[(member id, session, metadata)] of `group` now, in member order; no session needed."""
        return self._native.members(_b(group, "group"))

    def watch(
        self, prefix: Bytes = b"", *, space: str = "kv", start_revision: Optional[int] = None
    ) -> Watch:
        """Changes under `prefix` in `space` ("kv", "lock", "election", "group", "queue",
        "barrier", "counter", "session"), from `start_revision` (default: from now)."""
        return _watch(self._native, space, prefix, start_revision)

    def status(self) -> Dict[str, object]:
        """The view of the member this client talks to: id, role, term, leader, commit and
        applied index, revision."""
        id, role, term, leader, commit, applied, revision = self._native.status()
        return {
            "id": id,
            "role": role,
            "term": term,
            "leader": leader,
            "commit": commit,
            "applied": applied,
            "revision": revision,
        }


def connect(
    endpoints: Union[str, Sequence[str]],
    *,
    cluster_id: int = 1,
    timeout: float = 10.0,
    tls_ca: Optional[str] = None,
    tls_cert: Optional[str] = None,
    tls_key: Optional[str] = None,
    token: Optional[str] = None,
) -> Client:
    """Connects to a cluster (`endpoints`: addresses "host:port", a list or a comma-separated
    string); `timeout` bounds each call, retries included.

    With `tls_ca` (the cluster CA's PEM file) every connection uses TLS; `tls_cert` and
    `tls_key` are this client's certificate and key when the members require one. `token`
    is the shared secret the members' access file knows this client by. Refused credentials
    raise `PermissionDenied`; unusable TLS files raise `ConfigError`."""
    if isinstance(endpoints, str):
        endpoints = [e.strip() for e in endpoints.split(",") if e.strip()]
    return Client(
        _native.NativeClient(
            list(endpoints), cluster_id, timeout, tls_ca, tls_cert, tls_key, token
        )
    )


class Node:
    """A cluster member in this process (a context manager that stops it on exit)."""

    def __init__(
        self,
        id: int,
        listen: str,
        peers: Dict[int, str],
        data_dir: str,
        *,
        tick: float = 0.05,
    ) -> None:
        self._native = _native.NativeNode(id, listen, peers, data_dir, tick)

    def client(self) -> Client:
        """A client of this member (its requests skip the network)."""
        return Client(self._native.client())

    @property
    def address(self) -> str:
        """The address this member listens on, "host:port" (the one the system chose when
        `listen` asked for port 0)."""
        return self._native.address

    def stop(self) -> None:
        """Stops the member (idempotent); its peers elect a new leader if it led."""
        self._native.stop()

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
