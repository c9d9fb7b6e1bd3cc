"""The service's HTTP surface (starlette): the status page, ``/v1/status``, ``/metrics``,
``/healthz``, ``/readyz`` and ``POST /v1/ack``.

Read-only endpoints need ``Authorization: Bearer <token>`` when a token is configured
(``--token-file``; required to bind beyond loopback). The probes need nothing. The ack
endpoint authenticates with the consumer's own key (``bridge.serve.http_ack``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bridge.config import BridgeConfig
from bridge.render import status_json
from bridge.secrets import Secret
from bridge.serve import http_ack, metrics, page
from bridge.serve.snapshot import Watcher
from bridge.state import StateStore

Handler = Callable[[Request], Awaitable[Response]]
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


@dataclass
class Service:
    """Everything the routes read: built once by ``bridge.serve.serve``."""

    config: BridgeConfig
    store: StateStore
    watcher: Watcher
    registry: CollectorRegistry
    clock: Callable[[], datetime]
    token: Secret | None = None
    limiter: http_ack.Limiter | None = None


def create_app(service: Service) -> Starlette:
    limiter = service.limiter or http_ack.Limiter()

    def read_only(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if service.token is not None and not _bearer_matches(request, service.token):
                return JSONResponse(
                    {"error": "unauthorized"},
                    401,
                    headers={"WWW-Authenticate": "Bearer", **SECURITY_HEADERS},
                )
            return await handler(request)

        return guarded

    async def status_page(request: Request) -> Response:
        html = page.render(service.watcher.latest, service.clock())
        return HTMLResponse(html, headers=SECURITY_HEADERS)

    async def status(request: Request) -> Response:
        snapshot = service.watcher.latest
        if snapshot is None:
            return JSONResponse({"error": "the first status is being read"}, 503)
        body: dict[str, Any] = {
            "generated_at": snapshot.taken_at.isoformat().replace("+00:00", "Z"),
            "policies": [
                status_json(v.status) if v.status else {"name": v.name, "error": v.error}
                for v in snapshot.policies
            ],
        }
        return JSONResponse(body, headers=SECURITY_HEADERS)

    async def scrape(request: Request) -> Response:
        body = metrics.exposition(service.registry)
        return Response(body, headers={"Content-Type": metrics.CONTENT_TYPE})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(request: Request) -> Response:
        snapshot = service.watcher.latest
        readable = snapshot is not None and (
            not snapshot.policies or any(v.status is not None for v in snapshot.policies)
        )
        return JSONResponse({"ready": readable}, 200 if readable else 503)

    async def ack(request: Request) -> Response:
        client = request.client.host if request.client else "-"
        if not limiter.allow(client):
            return JSONResponse({"error": "too many requests"}, 429, headers={"Retry-After": "60"})
        body = await request.body()
        try:
            key, policy, consumer, replica = http_ack.parse(body, request.headers.get("x-api-key"))
            acked = await run_in_threadpool(
                http_ack.record,
                service.config,
                service.store,
                key,
                policy,
                consumer,
                replica,
                service.clock(),
            )
        except http_ack.AckRefused as refused:
            if refused.status == 401:
                limiter.refused(client)
            return JSONResponse({"error": refused.message}, refused.status)
        service.watcher.poke()
        return JSONResponse(
            {
                "policy": acked.policy,
                "consumer": acked.consumer,
                "replica": acked.replica,
                "rotation_id": acked.rotation_id,
                "short_key": acked.short_key,
                "fingerprint": acked.fingerprint,
                "current": acked.current,
            }
        )

    routes = [
        Route("/", read_only(status_page), methods=["GET"]),
        Route("/v1/status", read_only(status), methods=["GET"]),
        Route("/metrics", read_only(scrape), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/v1/ack", ack, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _bearer_matches(request: Request, token: Secret) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.reveal().encode()
    )


__all__ = ["Service", "create_app"]
