"""TLS, tokens and per-prefix rights against real `accord server` processes."""

import subprocess
from pathlib import Path
from typing import List

import pytest

import accord
from conftest import accord_bin, server_processes

ALICE = "alice-token-0123456789abcdef"


def make_certificates(directory: Path) -> None:
    names = ["node1", "node2", "node3", "client"]
    subprocess.run(
        [str(accord_bin()), "certs", "--dir", str(directory), *names],
        check=True,
        capture_output=True,
    )


def test_tls_tokens_and_prefix_rights(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    make_certificates(tls)
    access = tmp_path / "access.conf"
    access.write_text(
        "role app write:kv:app/ read:kv:shared/\n"
        f"user alice token:{ALICE} app\n"
        "user reader cert:client read-only\n"
        + "".join(f"user node{i} cert:node{i} member\n" for i in (1, 2, 3))
    )

    def security(id: int) -> List[str]:
        return [
            "--tls-ca", str(tls / "ca.pem"),
            "--tls-cert", str(tls / f"node{id}.pem"),
            "--tls-key", str(tls / f"node{id}-key.pem"),
            "--access", str(access),
        ]

    client_args = [
        "--tls-ca", str(tls / "ca.pem"),
        "--tls-cert", str(tls / "client.pem"),
        "--tls-key", str(tls / "client-key.pem"),
    ]
    with server_processes(tmp_path, security, client_args) as (endpoints, _processes):
        alice = accord.connect(endpoints, tls_ca=str(tls / "ca.pem"), token=ALICE, timeout=5)
        alice.kv.put(b"app/x", b"1")
        with pytest.raises(accord.PermissionDenied, match="alice may not write"):
            alice.kv.put(b"other/x", b"1")
        with pytest.raises(accord.PermissionDenied, match="alice may not read"):
            alice.watch(b"other/")
        reader = accord.connect(
            endpoints,
            tls_ca=str(tls / "ca.pem"),
            tls_cert=str(tls / "client.pem"),
            tls_key=str(tls / "client-key.pem"),
            timeout=5,
        )
        assert reader.kv.get(b"app/x") == b"1"
        with pytest.raises(accord.PermissionDenied, match="reader may not write"):
            reader.kv.put(b"app/x", b"2")
        stranger = accord.connect(endpoints, tls_ca=str(tls / "ca.pem"), timeout=5)
        with pytest.raises(accord.PermissionDenied, match="authentication failed"):
            stranger.kv.get(b"app/x")
        with pytest.raises(accord.ConfigError):
            accord.connect(endpoints, tls_ca=str(tmp_path / "missing.pem"))
