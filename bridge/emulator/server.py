"""The HTTP layer: a threading HTTP/1.1 server with keep-alive, speaking JSON only.

It turns raw requests into ``Request`` values (``/api/v1`` prefix stripped, headers
lower-cased, the body read in full) and ``Response`` values back into bytes with an
exact ``Content-Length``, so clients can reuse connections.

Every response carries exactly one ``Date`` header, read from the emulator clock, not
the wall clock: a client measuring time on LangSmith's clock (how long a key has been
quiet, say) then sees the time a test moved the clock to. ``http.server`` writes
``Date`` itself in ``send_response``; ``date_time_string`` is what it asks, so that is
what the handler overrides (there is no second server layer, such as uvicorn, that
would add its own).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import selectors
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bridge.emulator.api import Api
from bridge.emulator.clock import EmulatorClock
from bridge.emulator.responses import Request, Response

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
IDLE_TIMEOUT_S = 60.0
MAX_BODY = 24 << 20  # the 20 MiB trace batches /info advertises, plus multipart framing
NO_BODY = (204, 304)


def route_of(path: str) -> str:
    """The route for a request path: no query, no ``/api/v1`` prefix, no trailing slash."""
    route = unquote(urlsplit(path).path) or "/"
    if route == API_PREFIX or route.startswith(API_PREFIX + "/"):
        route = route[len(API_PREFIX) :] or "/"
    return route.rstrip("/") or "/"


class _BadRequest(Exception):
    """The request framing is broken; answer 400 and drop the connection."""


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that knows its ``Api`` and can drop open connections.

    Keep-alive connections would otherwise keep their handler threads blocked in a read
    after ``shutdown()``; ``close_connections()`` ends them.
    """

    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 resets bursts of new connections

    def __init__(self, address: tuple[str, int], api: Api, clock: EmulatorClock) -> None:
        self.api = api
        self.clock = clock
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        super().__init__(address, EmulatorRequestHandler)

    def serve_until_stopped(self) -> None:
        """Accept connections until ``stop_serving()``.

        Unlike ``serve_forever()``, which polls for its shutdown flag, this loop also
        waits on a wake-up socket, so stopping takes no poll interval.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_reader in ready:
                    return
                self.handle_request()

    def stop_serving(self) -> None:
        """Make ``serve_until_stopped()`` return (from any thread)."""
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open client connection."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("emulator connection error from %s", client_address, exc_info=True)


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    """Reads one request at a time off a keep-alive connection and answers it."""

    protocol_version = "HTTP/1.1"
    server_version = "LangSmithEmulator/0.1"
    timeout = IDLE_TIMEOUT_S
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            self._send(Response(400, {"detail": str(exc)}))
            return
        request = Request(
            method=self.command,
            route=route_of(self.path),
            query=parse_qs(urlsplit(self.path).query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            client_ip=self.client_address[0],
        )
        self._send(self.server.api.handle(request))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise _BadRequest("Invalid Content-Length") from exc
        if not 0 <= length <= MAX_BODY:
            raise _BadRequest("Invalid Content-Length")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError as exc:
                raise _BadRequest("Invalid chunk size") from exc
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise _BadRequest("Request body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header's value: the emulator clock's now, as an HTTP-date."""
        instant = self.server.clock.now().timestamp() if timestamp is None else timestamp
        return email.utils.formatdate(instant, usegmt=True)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        payload = b""
        if response.status not in NO_BODY:
            payload = json.dumps(response.body, separators=(",", ":")).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line never carries a key (keys travel in headers), so it is safe.
        log.debug("emulator %s - %s", self.address_string(), format % args)
