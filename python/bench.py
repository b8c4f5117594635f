"""The Python package's benchmark (make bench-python).

1. Call overhead: a local serializable get (one member in this process, its own client),
   made from Python and looped in Rust on the same client, alternating blocks; prints ns per
   call for each and the difference (target: at most 2 us per call).
2. Puts per second from one Python thread against 3 `accord server` processes (fsync on).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List

import accord
from accord import _native

BLOCK = 2_000
PAIRS = 31


def free_ports(count: int) -> List[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def call_overhead() -> None:
    port = free_ports(1)[0]
    with tempfile.TemporaryDirectory() as data:
        node = accord.Node(1, f"127.0.0.1:{port}", {}, data, tick=0.02)
        client = node.client()
        client.kv.put(b"bench-key", b"value")
        get = client.kv.get
        python_ns: List[float] = []
        rust_ns: List[float] = []
        for _ in range(PAIRS):
            start = time.perf_counter_ns()
            for _ in range(BLOCK):
                get(b"bench-key", serializable=True)
            python_ns.append((time.perf_counter_ns() - start) / BLOCK)
            rust_ns.append(_native.bench_rust_get(client._native, b"bench-key", BLOCK))
        node.stop()
    extra = statistics.median(p - r for p, r in zip(python_ns, rust_ns))
    print(
        f"bench python: call=get-serializable-local python_ns_per_call={statistics.median(python_ns):.0f} "
        f"rust_ns_per_call={statistics.median(rust_ns):.0f} extra_ns={extra:.0f} pairs={PAIRS} "
        f"calls_per_block={BLOCK}"
    )


def puts_per_second(binary: str) -> None:
    ports = free_ports(3)
    with tempfile.TemporaryDirectory() as data:
        members = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports)}
        processes = []
        for id, address in members.items():
            peers = ",".join(f"{j}={a}" for j, a in members.items() if j != id)
            processes.append(
                subprocess.Popen(
                    [binary, "server", "--plaintext", "--id", str(id), "--listen", address, "--peers", peers,
                     "--data-dir", os.path.join(data, f"n{id}")],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        try:
            client = accord.connect(list(members.values()))
            client.kv.put(b"warm-up", b"x")  # waits for a leader
            value = b"v" * 256
            count = 3_000
            start = time.perf_counter()
            for n in range(count):
                client.kv.put(b"k%07d" % n, value)
            elapsed = time.perf_counter() - start
            print(
                f"bench python: workload=put clients=1 ops_per_s={count / elapsed:.0f} "
                f"us_per_put={elapsed / count * 1e6:.0f}"
            )
        finally:
            for process in processes:
                process.kill()
                process.wait()


def main() -> None:
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/accord"
    call_overhead()
    puts_per_second(binary)


if __name__ == "__main__":
    main()
