"""Fixtures of the accord Python test suite.

- ``cluster``: a client of a 3-member cluster running in this process (``accord.Node``) on
  free loopback ports, tick 20 ms. Module-scoped for speed: tests take unique names from
  the ``name`` fixture so that they do not see each other's keys, locks or queues.
- ``inproc_nodes``: a function-scoped in-process cluster, as ``(nodes, endpoints)``, for the
  tests that stop members.
- ``server_cluster``: 3 ``accord server`` processes (``--tick-ms 20``) on free ports, waited
  for until one of them leads; yields ``(endpoints, processes)`` (``processes[i]`` is member
  ``i + 1``) and kills them afterwards, whatever happened.

Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

import accord

REPO = Path(__file__).resolve().parents[2]
TICK = 0.02


def free_ports(count: int) -> List[int]:
    """`count` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.02) -> object:
    """Polls `predicate` until it returns something truthy; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except accord.AccordError as error:  # a member not ready yet
            last_error = error
        time.sleep(step)
    pytest.fail(f"timed out after {timeout} s waiting for {what} (last error: {last_error!r})")


# ---------------------------------------------------------------------------------------------
# In-process clusters


def start_node(base: Path, endpoints: List[str], i: int, tick: float = TICK) -> accord.Node:
    """Starts member i + 1 of the cluster `endpoints` (again, after a stop: same address
    and data directory)."""
    peers = {j + 1: endpoints[j] for j in range(len(endpoints)) if j != i}
    data_dir = base / f"node{i + 1}-{endpoints[i].rsplit(':', 1)[1]}"
    return accord.Node(i + 1, endpoints[i], peers, str(data_dir), tick=tick)


def start_nodes(base: Path, tick: float = TICK) -> Tuple[List[accord.Node], List[str]]:
    """Starts 3 members in this process; retries on other ports if one was taken meanwhile."""
    last_error: Optional[BaseException] = None
    for _attempt in range(3):
        endpoints = [f"127.0.0.1:{p}" for p in free_ports(3)]
        nodes: List[accord.Node] = []
        try:
            for i in range(3):
                nodes.append(start_node(base, endpoints, i, tick))
            return nodes, endpoints
        except accord.AccordError as error:  # most likely a port taken by someone else
            last_error = error
            for node in nodes:
                node.stop()
    raise RuntimeError(f"could not start an in-process cluster: {last_error!r}")


def wait_ready(client: accord.Client, timeout: float = 10.0) -> None:
    """Waits until the cluster accepts a linearizable write and read."""

    def ready() -> bool:
        client.kv.put("__ready__", "1")
        return client.kv.get("__ready__") == b"1"

    wait_for(ready, timeout, "an in-process cluster to elect a leader")


def stop_all(nodes: List[accord.Node]) -> None:
    for node in nodes:
        try:
            node.stop()
        except accord.AccordError:
            pass


@pytest.fixture(scope="module")
def cluster_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[List[str]]:
    nodes, endpoints = start_nodes(tmp_path_factory.mktemp("cluster"))
    try:
        wait_ready(accord.connect(endpoints, timeout=5.0))
        yield endpoints
    finally:
        stop_all(nodes)


@pytest.fixture
def cluster(cluster_endpoints: List[str]) -> accord.Client:
    """A client of the module's in-process 3-member cluster."""
    return accord.connect(cluster_endpoints, timeout=10.0)


@pytest.fixture
def inproc_nodes(tmp_path: Path) -> Iterator[Tuple[List[accord.Node], List[str]]]:
    """A fresh in-process cluster of this test alone: (nodes, endpoints); stopped after
    (members the test restarts with `start_node(tmp_path, endpoints, i)` and puts back in
    `nodes` included)."""
    nodes, endpoints = start_nodes(tmp_path)
    try:
        wait_ready(accord.connect(endpoints, timeout=5.0))
        yield nodes, endpoints
    finally:
        stop_all(nodes)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """`name("lock")` gives a name unique to this test (tests share the module's cluster)."""
    base = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)

    def make(suffix: str = "") -> str:
        return f"{base}/{suffix}"

    return make


# ---------------------------------------------------------------------------------------------
# Server processes


def accord_bin() -> Path:
    path = Path(os.environ.get("ACCORD_BIN", REPO / "target" / "release" / "accord"))
    if not path.is_file():
        pytest.skip(f"no accord binary at {path} (cargo build --release, or set ACCORD_BIN)")
    return path


def status_roles(
    binary: Path, endpoints: List[str], client_args: Sequence[str] = ()
) -> Dict[str, Tuple[int, str, int]]:
    """{endpoint: (id, role, leader id)} from `accord status` (unreachable members left out);
    `client_args` are its TLS and token options."""
    try:
        out = subprocess.run(
            [str(binary), "status", "--endpoints", ",".join(endpoints), "--timeout-ms", "500",
             *client_args],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except subprocess.TimeoutExpired:
        return {}
    roles = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] in endpoints and fields[1].isdigit():
            roles[fields[0]] = (int(fields[1]), fields[2], int(fields[4]))
    return roles


def leader_endpoint(
    binary: Path, endpoints: List[str], client_args: Sequence[str] = ()
) -> Optional[str]:
    """The endpoint of the member that says it leads (None while there is none)."""
    for endpoint, (_id, role, _leader) in status_roles(binary, endpoints, client_args).items():
        if role == "leader":
            return endpoint
    return None


def kill_processes(processes: List[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


@contextlib.contextmanager
def server_processes(
    base: Path,
    security: Callable[[int], List[str]] = lambda _id: ["--plaintext"],
    client_args: Sequence[str] = (),
) -> Iterator[Tuple[List[str], List[subprocess.Popen]]]:
    """3 `accord server` processes with a leader: (endpoints, processes), `processes[i]`
    being member i + 1. Killed (SIGKILL) on exit, whatever happened. `security(id)` gives
    member id's TLS or plaintext options; `client_args` those `accord status` needs."""
    binary = accord_bin()
    processes: List[subprocess.Popen] = []
    try:
        for attempt in range(3):
            ports = free_ports(3)
            endpoints = [f"127.0.0.1:{p}" for p in ports]
            processes = []
            logs = [base / f"server{attempt}-{i + 1}.log" for i in range(3)]
            for i in range(3):
                peers = ",".join(f"{j + 1}={endpoints[j]}" for j in range(3) if j != i)
                data_dir = base / f"attempt{attempt}" / f"data{i + 1}"
                with open(logs[i], "wb") as log:
                    processes.append(
                        subprocess.Popen(
                            [
                                str(binary), "server", *security(i + 1), "--id", str(i + 1),
                                "--listen", endpoints[i], "--peers", peers,
                                "--data-dir", str(data_dir), "--tick-ms", "20",
                            ],
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                        )
                    )
            deadline = time.monotonic() + 15
            leader = None
            while time.monotonic() < deadline and leader is None:
                if any(p.poll() is not None for p in processes):
                    break  # most likely a port taken meanwhile: try other ports
                leader = leader_endpoint(binary, endpoints, client_args)
                if leader is None:
                    time.sleep(0.05)
            if leader is not None and all(p.poll() is None for p in processes):
                yield endpoints, processes
                return
            kill_processes(processes)
            if attempt == 2:
                text = "\n".join(f"{log}:\n{log.read_text(errors='replace')[-2000:]}" for log in logs)
                pytest.fail(f"accord server processes elected no leader; their logs:\n{text}")
    finally:
        kill_processes(processes)


@pytest.fixture
def server_cluster(tmp_path: Path) -> Iterator[Tuple[List[str], List[subprocess.Popen]]]:
    """3 `accord server` processes with a leader: (endpoints, processes); killed after."""
    with server_processes(tmp_path) as running:
        yield running


@pytest.fixture
def python_child() -> Iterator[Callable[[str], subprocess.Popen]]:
    """Starts `python -c CODE` with this interpreter; every child is killed after the test."""
    children: List[subprocess.Popen] = []

    def start(code: str) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO / "python")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        child = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        children.append(child)
        return child

    try:
        yield start
    finally:
        kill_processes(children)
        for child in children:
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
