"""Over a real socket: a server that limits requests per 10-second window and answers 429
*without* ``Retry-After`` (LangSmith documents no such header), and serves a fixed
``Date``. The window runs on a fake clock that the client's injected sleep moves, so
nothing really waits."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bridge import errors
from bridge.langsmith import LangSmithClient, RetryPolicy
from tests.unit.test_langsmith_fakes import ADMIN_KEY

DATE = "Fri, 27 Nov 2026 13:04:49 GMT"
WINDOW = 10.0


class WindowedServer(ThreadingHTTPServer):
    """``limit`` requests per fixed ``WINDOW`` on ``now``; the rest get a bare 429."""

    daemon_threads = True

    def __init__(self, limit: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.limit = limit
        self.now = 0.0
        self.answers: list[int] = []
        self._window: tuple[float, int] = (0.0, 0)
        self._lock = threading.Lock()

    def admit(self) -> bool:
        with self._lock:
            start, count = self._window
            if self.now >= start + WINDOW:
                start, count = self.now - (self.now - start) % WINDOW, 0
            admitted = count < self.limit
            self._window = (start, count + admitted)
            self.answers.append(200 if admitted else 429)
            return admitted


class _Handler(BaseHTTPRequestHandler):
    server: WindowedServer

    def do_GET(self) -> None:
        status, body = (200, []) if self.server.admit() else (429, {"detail": "Too Many Requests"})
        payload = json.dumps(body).encode()
        self.send_response(status)  # adds Date from date_time_string()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def date_time_string(self, timestamp: float | None = None) -> str:
        return DATE

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[WindowedServer]:
    srv = WindowedServer(limit=2)
    thread = threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def client_for(server: WindowedServer, sleeps: list[float], **kwargs: Any) -> LangSmithClient:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        server.now += seconds

    url = f"http://127.0.0.1:{server.server_address[1]}"
    return LangSmithClient(url, ADMIN_KEY, sleep=sleep, rand=lambda: 0.5, timeout=5.0, **kwargs)


def test_a_bare_429_is_waited_out_across_the_window_not_hammered(server: WindowedServer) -> None:
    sleeps: list[float] = []
    with client_for(server, sleeps) as client:
        for _ in range(3):
            client.list_service_keys()
    # One refusal, then a wait past the window: a 5xx-style backoff (0.25 s, 0.5 s, 1 s)
    # would have spent every attempt inside the refusing window and failed.
    assert server.answers == [200, 200, 429, 200]
    assert sleeps == [10.25]


def test_a_deadline_shorter_than_the_window_gives_up_without_waiting(
    server: WindowedServer,
) -> None:
    sleeps: list[float] = []
    with client_for(server, sleeps, retry=RetryPolicy(max_elapsed=5.0)) as client:
        client.list_workspaces()
        client.list_workspaces()
        with pytest.raises(errors.LangSmithRateLimited) as info:
            client.list_workspaces()
    assert sleeps == []
    assert info.value.retry_after is None
    assert server.answers == [200, 200, 429]


def test_the_listing_is_stamped_with_the_servers_date(server: WindowedServer) -> None:
    with client_for(server, []) as client:
        listing = client.list_service_keys()
    assert listing.served_at == datetime(2026, 11, 27, 13, 4, 49, tzinfo=UTC)
