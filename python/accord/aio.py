"""accord for asyncio: the same API, awaitable, never blocking the event loop.

Each call runs the blocking call on a worker thread (``asyncio.to_thread``); cancelling the
awaiting task cancels the call itself (a lock wait is withdrawn, a claim wait too)::

    import accord.aio

    async def main() -> None:
        client = accord.aio.connect(["127.0.0.1:7101", "127.0.0.1:7102"])
        async with await client.session(ttl=10) as session:
            async with await session.lock("backups") as lock:
                await run_backup(lock.token)
            async for claim in session.queue("jobs").claims(idle_timeout=5):
                await handle(claim.payload)
                await claim.ack()
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, List, Optional, Sequence, Tuple, TypeVar, Union

from . import Bytes, Claim, Client, Event, Leadership, Lock, Membership, Session, Timeout, Watch
from . import connect as _connect

T = TypeVar("T")


async def _run(call: Callable[[], T], on_cancel: Optional[Callable[[], None]] = None) -> T:
    """Runs `call` on a worker thread; if the awaiting task is cancelled, asks the call to
    stop (`on_cancel`) before letting the cancellation through."""
    task = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=5)
        except BaseException:
            pass
        raise


class AsyncKV:
    """``client.kv``, awaitable."""

    def __init__(self, client: Client) -> None:
        self._kv = client.kv
        self._native = client._native

    async def put(self, key: Bytes, value: Bytes) -> int:
        """Sets `key` to `value`; returns the revision."""
        return await _run(lambda: self._kv.put(key, value), self._native.cancel)

    async def get(self, key: Bytes, *, serializable: bool = False) -> Optional[bytes]:
        """The value of `key`, or None (linearizable unless `serializable`)."""
        return await _run(lambda: self._kv.get(key, serializable=serializable), self._native.cancel)

    async def delete(self, key: Bytes) -> bool:
        """Deletes `key`; returns whether it existed."""
        return await _run(lambda: self._kv.delete(key), self._native.cancel)

    async def cas(self, key: Bytes, expected: Optional[Bytes], value: Bytes) -> bool:
        """Sets `key` to `value` if it holds `expected` (None: if absent); returns whether it
        did."""
        return await _run(lambda: self._kv.cas(key, expected, value), self._native.cancel)

    async def range(self, prefix: Bytes = b"", *, limit: int = 10_000) -> List[Tuple[bytes, bytes]]:
        """The (key, value) pairs under `prefix`, at most `limit`."""
        return await _run(lambda: self._kv.range(prefix, limit=limit), self._native.cancel)

    async def txn(
        self,
        compares: Sequence[Tuple[Bytes, str, object]] = (),
        success: Sequence[Tuple[Bytes, Optional[Bytes]]] = (),
        failure: Sequence[Tuple[Bytes, Optional[Bytes]]] = (),
    ) -> bool:
        """A transaction, as `KV.txn`: returns whether the compares held."""
        return await _run(lambda: self._kv.txn(compares, success, failure), self._native.cancel)


class AsyncWatch:
    """``async for event in watch``: events in revision order, none missed or repeated."""

    def __init__(self, watch: Watch) -> None:
        self._watch = watch

    async def next(self, timeout: Optional[float] = None) -> List[Event]:
        """The next events (an empty list when none came within `timeout` seconds)."""
        return await _run(lambda: self._watch.next(timeout))

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        while True:
            # Short slices: a cancelled consumer frees its thread within 200 ms.
            for event in await self.next(0.2):
                yield event


class AsyncLock:
    """A held lock; ``async with`` releases it on exit."""

    def __init__(self, lock: Lock) -> None:
        self._lock = lock

    @property
    def token(self) -> int:
        """The lock's fencing token."""
        return self._lock.token

    def is_held(self) -> bool:
        """Whether the lock surely still holds (its session is not lost)."""
        return self._lock.is_held()

    async def release(self) -> None:
        """Releases the lock."""
        await _run(self._lock.release)

    async def __aenter__(self) -> "AsyncLock":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class AsyncLeadership:
    """Leadership of an election; ``async with`` resigns on exit."""

    def __init__(self, leadership: Leadership) -> None:
        self._leadership = leadership

    @property
    def token(self) -> int:
        """The leadership's fencing token."""
        return self._leadership.token

    def is_leader(self) -> bool:
        """Whether this is surely still the leader."""
        return self._leadership.is_leader()

    async def proclaim(self, value: Bytes) -> None:
        """Changes the value the leader publishes."""
        await _run(lambda: self._leadership.proclaim(value))

    async def resign(self) -> None:
        """Gives up the leadership."""
        await _run(self._leadership.resign)

    async def __aenter__(self) -> "AsyncLeadership":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.resign()


class AsyncClaim:
    """A claimed work item."""

    def __init__(self, claim: Claim) -> None:
        self._claim = claim

    @property
    def item(self) -> int:
        """The item's id in its queue."""
        return self._claim.item

    @property
    def token(self) -> int:
        """The claim's fencing token."""
        return self._claim.token

    @property
    def payload(self) -> bytes:
        """The item's payload."""
        return self._claim.payload

    def is_held(self) -> bool:
        """Whether the claim surely still holds (its session is not lost)."""
        return self._claim.is_held()

    async def ack(self) -> None:
        """Acknowledges the item: it leaves the queue for good."""
        await _run(self._claim.ack)

    async def release(self) -> None:
        """Gives the item back to the queue."""
        await _run(self._claim.release)


class AsyncQueue:
    """A work queue of a session."""

    def __init__(self, session: Session, name: Bytes) -> None:
        self._session = session
        self._queue = session.queue(name)

    async def put(self, payload: Bytes) -> int:
        """Adds `payload` to the queue; returns the item's id."""
        return await _run(lambda: self._queue.put(payload))

    async def claim(self, *, timeout: Optional[float] = None) -> AsyncClaim:
        """Claims the oldest unclaimed item, waiting up to `timeout` seconds."""
        claim = await _run(lambda: self._queue.claim(timeout=timeout), self._session.cancel)
        return AsyncClaim(claim)

    async def claims(self, *, idle_timeout: Optional[float] = None) -> AsyncIterator[AsyncClaim]:
        """``async for claim in queue.claims()``; stops once none came for `idle_timeout`."""
        while True:
            try:
                yield await self.claim(timeout=idle_timeout)
            except Timeout:
                if idle_timeout is not None:
                    return


class AsyncSession:
    """A session; ``async with`` closes it on exit."""

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def id(self) -> int:
        """The session's id."""
        return self._session.id

    @property
    def state(self) -> str:
        """The safety clock's verdict: "held", "suspect" or "lost"."""
        return self._session.state

    async def lock(self, name: Bytes, *, timeout: Optional[float] = None) -> AsyncLock:
        """Takes mutex `name`, waiting up to `timeout` seconds (cancelling the task withdraws
        the wait)."""
        lock = await _run(lambda: self._session.lock(name, timeout=timeout), self._session.cancel)
        return AsyncLock(lock)

    async def rwlock(self, name: Bytes, *, write: bool, timeout: Optional[float] = None) -> AsyncLock:
        """Takes read-write lock `name` (exclusive if `write`), waiting up to `timeout` seconds."""
        lock = await _run(
            lambda: self._session.rwlock(name, write=write, timeout=timeout), self._session.cancel
        )
        return AsyncLock(lock)

    async def semaphore(self, name: Bytes, permits: int, *, timeout: Optional[float] = None) -> AsyncLock:
        """Takes one of the `permits` of semaphore `name`, waiting up to `timeout` seconds."""
        lock = await _run(
            lambda: self._session.semaphore(name, permits, timeout=timeout), self._session.cancel
        )
        return AsyncLock(lock)

    async def campaign(
        self, name: Bytes, value: Bytes, *, timeout: Optional[float] = None
    ) -> AsyncLeadership:
        """Campaigns in election `name` with `value`; returns once elected."""
        election = self._session.election(name)
        leadership = await _run(lambda: election.campaign(value, timeout=timeout), self._session.cancel)
        return AsyncLeadership(leadership)

    async def join(self, group: Bytes, member: Bytes, metadata: Bytes = b"") -> Membership:
        """Joins group `group` as `member` with `metadata`."""
        return await _run(lambda: self._session.group(group).join(member, metadata))

    def queue(self, name: Bytes) -> AsyncQueue:
        """The work queue `name`."""
        return AsyncQueue(self._session, name)

    async def barrier(self, name: Bytes, participants: int, *, timeout: Optional[float] = None) -> None:
        """Waits until `participants` sessions have entered barrier `name`."""
        await _run(
            lambda: self._session.barrier(name, participants, timeout=timeout), self._session.cancel
        )

    async def keep_alive_once(self, *, timeout: Optional[float] = None) -> None:
        """Renews the session now; returns once the cluster acknowledged it."""
        await _run(lambda: self._session.keep_alive_once(timeout=timeout), self._session.cancel)

    async def close(self) -> None:
        """Ends the session: everything it holds is released."""
        await _run(self._session.close)

    async def __aenter__(self) -> "AsyncSession":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncClient:
    """A connection to a cluster, awaitable."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.kv = AsyncKV(client)

    async def session(self, *, ttl: float = 10.0) -> AsyncSession:
        """Opens a session with `ttl` seconds."""
        return AsyncSession(await _run(lambda: self._client.session(ttl=ttl)))

    async def counter_add(self, name: Bytes, delta: int = 1) -> int:
        """Adds `delta` to counter `name`; returns the new value."""
        return await _run(lambda: self._client.counter_add(name, delta))

    async def counter(self, name: Bytes) -> int:
        """The value of counter `name`."""
        return await _run(lambda: self._client.counter(name))

    async def watch(
        self, prefix: Bytes = b"", *, space: str = "kv", start_revision: Optional[int] = None
    ) -> AsyncWatch:
        """Changes under `prefix` in `space` from `start_revision` (default: from now)."""
        watch = await _run(
            lambda: self._client.watch(prefix, space=space, start_revision=start_revision)
        )
        return AsyncWatch(watch)

    async def status(self) -> Any:
        """The view of the member this client talks to."""
        return await _run(self._client.status)


def connect(
    endpoints: Union[str, Sequence[str]],
    *,
    cluster_id: int = 1,
    timeout: float = 10.0,
    tls_ca: Optional[str] = None,
    tls_cert: Optional[str] = None,
    tls_key: Optional[str] = None,
    token: Optional[str] = None,
) -> AsyncClient:
    """Like :func:`accord.connect` (connecting happens at the first call, off the loop)."""
    return AsyncClient(
        _connect(
            endpoints,
            cluster_id=cluster_id,
            timeout=timeout,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            token=token,
        )
    )


def wrap(client: Client) -> AsyncClient:
    """The asyncio face of an existing client (``node.client()``, for instance)."""
    return AsyncClient(client)
