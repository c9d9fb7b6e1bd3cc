"""A moto server in its own process that counts the requests it serves, for ``bench_run.py``.

The server is built as ``moto.server.ThreadedMotoServer`` builds it (the same dispatcher
application, threaded werkzeug server and request handler), with one WSGI middleware in
front that counts every request by its ``X-Amz-Target`` header (``secretsmanager.
DescribeSecret``, ``DynamoDB_20120810.GetItem``), else by method and path. ``GET /_counts``
answers the counts so far as JSON. Listens on 127.0.0.1 only; stops on SIGTERM.

    .venv/bin/python benchmarks/moto_counting.py --port-file /tmp/moto.port
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
COUNTS_PATH = "/_counts"


class CountingMiddleware:
    """Counts requests by action before handing them to ``app``."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == COUNTS_PATH:
            with self.lock:
                body = json.dumps(dict(self.counts)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        action = environ.get("HTTP_X_AMZ_TARGET") or (
            f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        )
        with self.lock:
            self.counts[action] += 1
        return self.app(environ, start_response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = CountingMiddleware(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]), encoding="utf-8")
    tmp.replace(args.port_file)  # the parent sees the whole port or nothing
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
