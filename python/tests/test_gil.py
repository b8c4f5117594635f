"""Blocking calls release the GIL, and Ctrl-C (a KeyboardInterrupt of the main thread)
cancels them promptly."""

from __future__ import annotations

import _thread
import signal
import threading
import time
from typing import Callable, Dict, List, Tuple

import pytest

import accord

TTL = 3.0


def count_for(seconds: float, stop_early: Callable[[], bool] = lambda: False) -> int:
    """A pure-Python loop: how many iterations it made in `seconds`."""
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(1000):
            count += 1
        if stop_early():
            break
    return count


def test_a_blocked_lock_wait_lets_other_python_threads_run(cluster, name):
    m = name("m")
    baseline = count_for(0.3) / 0.3  # iterations per second with nothing else going on
    with cluster.session(ttl=TTL) as holder, cluster.session(ttl=TTL) as waiter:
        lock = holder.lock(m, timeout=5)
        outcome: Dict[str, object] = {}

        def wait_for_lock() -> None:
            started = time.monotonic()
            try:
                waiter.lock(m, timeout=3)
                outcome["result"] = "granted"
            except BaseException as error:
                outcome["result"] = error
            outcome["waited"] = time.monotonic() - started

        counted: Dict[str, float] = {}

        def counter() -> None:
            time.sleep(0.1)  # let the waiter block first
            counted["count"] = count_for(1.0)
            counted["waiter_still_blocked"] = waiter_thread.is_alive()

        waiter_thread = threading.Thread(target=wait_for_lock)
        counter_thread = threading.Thread(target=counter)
        waiter_thread.start()
        counter_thread.start()
        counter_thread.join(10)
        waiter_thread.join(10)
        assert not waiter_thread.is_alive() and not counter_thread.is_alive()
        lock.release()

    assert counted["waiter_still_blocked"], "the lock wait ended before the counting did"
    assert isinstance(outcome["result"], accord.Timeout), outcome
    assert 2.5 <= outcome["waited"] < 5.0  # type: ignore[operator]
    # While a thread waited on the lock, the counting thread ran at a good fraction of its
    # unhindered speed (a held GIL would have stopped it dead).
    assert counted["count"] > 0.1 * baseline, (counted, baseline)
    assert counted["count"] > 10_000


def test_many_blocked_waits_at_once_do_not_hold_the_gil(cluster, name):
    m = name("m")
    baseline = count_for(0.3) / 0.3
    with cluster.session(ttl=TTL) as holder:
        lock = holder.lock(m, timeout=5)
        waiters = [cluster.session(ttl=TTL) for _ in range(4)]
        try:
            errors: List[BaseException] = []

            def wait(session: accord.Session) -> None:
                try:
                    session.lock(m, timeout=1.5)
                except accord.Timeout:
                    pass
                except BaseException as error:
                    errors.append(error)

            threads = [threading.Thread(target=wait, args=(s,)) for s in waiters]
            watch = cluster.kv.watch(name("quiet"))
            watch_thread = threading.Thread(target=watch.next, args=(1.5,))
            for thread in threads + [watch_thread]:
                thread.start()
            time.sleep(0.1)
            count = count_for(0.8)
            for thread in threads + [watch_thread]:
                thread.join(10)
            assert not errors, errors
            assert count > 0.1 * baseline * 0.8, (count, baseline)
        finally:
            lock.release()
            for session in waiters:
                session.close()


def interrupt_main_after(delay: float) -> threading.Timer:
    # A shell starting a job in the background starts it with SIGINT ignored, and Python
    # then leaves it ignored, so the simulated Ctrl-C would be too: these tests need Python's
    # own handler whatever launched them.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(delay, _thread.interrupt_main)
    timer.start()
    return timer


def interrupted(call: Callable[[], object], after: float = 0.3, grace: float = 4.0) -> Tuple[float, object]:
    """Runs `call` in the main thread and simulates Ctrl-C `after` seconds later. Returns
    (seconds from the start until KeyboardInterrupt was raised, what the call did before it:
    None if the KeyboardInterrupt came out of the call itself, else its result or exception).

    A KeyboardInterrupt the call did not raise lands here, within `grace` seconds, instead
    of escaping into pytest and ending the whole run."""
    assert threading.current_thread() is threading.main_thread()
    timer = interrupt_main_after(after)
    started = time.monotonic()
    outcome: object = None
    try:
        try:
            outcome = ("returned", call())
        except KeyboardInterrupt:
            return time.monotonic() - started, None
        except Exception as error:  # the call ended otherwise: the interrupt is still due
            outcome = error
        while time.monotonic() - started < grace:
            time.sleep(0.01)
        pytest.fail(f"no KeyboardInterrupt at all within {grace} s (the call gave {outcome!r})")
    except KeyboardInterrupt:
        return time.monotonic() - started, outcome
    finally:
        timer.cancel()
        timer.join()


def assert_prompt(elapsed: float, outcome: object, limit: float = 1.3) -> None:
    assert outcome is None, f"the call was not interrupted: it gave {outcome!r} after {elapsed:.2f} s"
    assert elapsed < limit, f"KeyboardInterrupt came {elapsed:.2f} s after the call began"


def test_ctrl_c_interrupts_a_lock_wait_promptly_and_withdraws_it(cluster, name):
    m = name("m")
    with cluster.session(ttl=TTL) as holder, cluster.session(ttl=TTL) as waiter:
        lock = holder.lock(m, timeout=5)
        assert_prompt(*interrupted(lambda: waiter.lock(m, timeout=10)))
        # The interrupted wait was withdrawn: when the holder releases, the lock is free for
        # a third session (not granted to the waiter behind its back).
        lock.release()
        with cluster.session(ttl=TTL) as third:
            again = third.lock(m, timeout=3)
            assert again.token > lock.token
            again.release()
        # And the interrupted session is still usable.
        with waiter.lock(m, timeout=3) as mine:
            assert mine.is_held()


def test_ctrl_c_interrupts_a_watch_wait(cluster, name):
    watch = cluster.kv.watch(name("quiet/"))
    assert_prompt(*interrupted(lambda: watch.next(10)))
    # The watch still works afterwards.
    cluster.kv.put(name("quiet/k"), "v")
    events = watch.next(3)
    assert [e.key for e in events] == [name("quiet/k").encode()]


def test_ctrl_c_interrupts_a_claim_wait(cluster, name):
    q = name("queue")
    with cluster.session(ttl=TTL) as worker:
        assert_prompt(*interrupted(lambda: worker.queue(q).claim(timeout=10)))
        # The withdrawn claim does not swallow the next item.
        item = cluster.enqueue(q, "job")
        with cluster.session(ttl=TTL) as other:
            claim = other.queue(q).claim(timeout=3)
            assert claim.item == item
            claim.ack()


def test_ctrl_c_interrupts_a_barrier_and_a_campaign_wait(cluster, name):
    with cluster.session(ttl=TTL) as session, cluster.session(ttl=TTL) as leader:
        assert_prompt(*interrupted(lambda: session.barrier(name("barrier"), 2, timeout=10)))
        with leader.election(name("e")).campaign("a", timeout=2):
            assert_prompt(*interrupted(lambda: session.election(name("e")).campaign("b", timeout=10)))


def test_session_cancel_from_another_thread_ends_a_lock_wait(cluster, name):
    m = name("m")
    with cluster.session(ttl=TTL) as holder, cluster.session(ttl=TTL) as waiter:
        lock = holder.lock(m, timeout=5)
        timer = threading.Timer(0.3, waiter.cancel)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(accord.Cancelled):
                waiter.lock(m, timeout=10)
        finally:
            timer.cancel()
            timer.join()
        assert time.monotonic() - started < 2.0
        lock.release()


def unreachable_client() -> accord.Client:
    from conftest import free_ports

    # Nothing listens there: every call retries until the client's timeout (1.6 s).
    return accord.connect([f"127.0.0.1:{free_ports(1)[0]}"], timeout=1.6)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.kv.put("k", "v"), id="put"),
        pytest.param(lambda c: c.kv.get("k"), id="get"),
        pytest.param(lambda c: c.status(), id="status"),
        pytest.param(lambda c: c.session(ttl=3), id="session"),
        pytest.param(lambda c: c.kv.watch("k"), id="watch"),
    ],
)
def test_ctrl_c_interrupts_a_call_to_an_unreachable_cluster(call):
    # "Every blocking call ... is cancelled by Ctrl-C within 100 ms": calls that wait for an
    # unreachable cluster (up to the client's timeout) included.
    client = unreachable_client()
    assert_prompt(*interrupted(lambda: call(client)))


def test_an_interrupted_write_leaves_the_client_usable(inproc_nodes, tmp_path):
    from conftest import start_node

    nodes, endpoints = inproc_nodes
    client = accord.connect(endpoints, timeout=10.0)
    client.kv.put("before", "1")
    leader = client.status()["leader"]
    followers = [i for i in range(3) if i + 1 != leader]
    for i in followers:  # no quorum: writes wait
        nodes[i].stop()
    assert_prompt(*interrupted(lambda: client.kv.put("during", "2")))
    for i in followers:
        nodes[i] = start_node(tmp_path, endpoints, i)
    # The cancellation does not stick to the client: its next calls work.
    assert client.kv.put("after", "3") > 0
    assert client.kv.get("after") == b"3"
    assert client.kv.get("before") == b"1"
