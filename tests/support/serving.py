"""``langsmith-bridge serve``'s app on a real uvicorn server, on a free loopback port, in a
thread of the test process: the same app ``bridge.serve.serve`` builds, with the clock and
the snapshot interval the test gives."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import httpx
import uvicorn

from bridge.config import BridgeConfig
from bridge.secrets import Secret
from bridge.serve.app import Service, create_app
from bridge.serve.http_ack import Limiter
from bridge.serve.metrics import RunMetrics, registry_for
from bridge.serve.snapshot import Watcher
from bridge.wiring import connections_for, open_state, open_target


@dataclass
class Served:
    url: str
    watcher: Watcher
    metrics: RunMetrics
    client: httpx.Client

    def fresh(self) -> None:
        """Take a snapshot now, as the background thread would after a change."""
        self.watcher.take()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def served(
    config: BridgeConfig,
    clock: Callable[[], datetime],
    *,
    token: str | None = None,
    limiter: Limiter | None = None,
    refresh: float = 3600.0,
) -> Iterator[Served]:
    """The service for ``config``; its snapshot is taken at start and on ``fresh``."""
    connections = connections_for(config)
    store = open_state(config.state, connections)
    watcher = Watcher(config, store, lambda t, p: open_target(t, p, connections), clock, refresh)
    registry, metrics = registry_for(lambda: watcher.latest, clock)
    service = Service(
        config,
        store,
        watcher,
        registry,
        clock,
        token=Secret(token) if token else None,
        limiter=limiter,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    watcher.take()
    watcher.start()
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield Served(url, watcher, metrics, client)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        watcher.stop()
        store.close()
        connections.close()


def curl_ack(url: str, key: str, policy: str, consumer: str, replica: str) -> tuple[int, str]:
    """The shell consumer's one line: ``curl`` with the key it now uses."""
    body = json.dumps({"policy": policy, "consumer": consumer, "replica": replica})
    done = subprocess.run(
        [
            "curl", "-sS", "-o", "-", "-w", "\\n%{http_code}", "-X", "POST", f"{url}/v1/ack",
            "-H", f"X-API-Key: {key}", "-H", "Content-Type: application/json", "-d", body,
        ],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    text, _, code = done.stdout.rpartition("\n")
    return int(code), text
