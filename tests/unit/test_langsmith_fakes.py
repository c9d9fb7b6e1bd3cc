"""A scripted fake LangSmith server for the client tests, and checks of the fake itself.

``FakeServer`` answers through ``httpx.MockTransport``: each request consumes the next
scripted reply (the last one repeats), and every request is recorded. A reply is a
``Reply``, an exception instance to raise, or a callable building a response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bridge.langsmith import LangSmithClient, RetryPolicy
from bridge.secrets import Secret

ADMIN_KEY_TEXT = "lsv2_sk_" + "a1" * 16 + "_" + "b2c3d4e5f6"
NEW_KEY_TEXT = "lsv2_sk_" + "c7" * 16 + "_" + "d8e9f0a1b2"
ADMIN_KEY = Secret(ADMIN_KEY_TEXT)
NEW_KEY = Secret(NEW_KEY_TEXT)
ORG_ID = "0b4c9a52-1111-4e2a-9a65-5d2f8a6a0001"
WS_ID = "7d0f3c21-2222-4b7e-8f10-6a1b2c3d0002"
KEY_ID = "5c5b7d43-3333-4d39-9d4f-2c4f0f4d0003"
ENDPOINT = "https://ls.example.test/api/v1/"
ORIGIN = "https://ls.example.test"

KEY_BODY: dict[str, Any] = {"id": KEY_ID, "short_key": "lsv2_sk_...b2", "description": "d"}


@dataclass
class Reply:
    """One scripted response."""

    status: int = 200
    json: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def build(self, request: httpx.Request) -> httpx.Response:
        if self.text is not None:
            return httpx.Response(self.status, text=self.text, headers=self.headers)
        return httpx.Response(self.status, json=self.json, headers=self.headers)


Script = Reply | BaseException | Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeServer:
    """Replies from ``script`` in order, repeating the last; records requests and sleeps."""

    script: list[Script]
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.script[min(len(self.requests), len(self.script)) - 1]
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, Reply):
            return reply.build(request)
        return reply(request)

    def client(self, **kwargs: Any) -> LangSmithClient:
        kwargs.setdefault("organization_id", ORG_ID)
        kwargs.setdefault("rand", lambda: 0.5)
        return LangSmithClient(
            kwargs.pop("endpoint", ENDPOINT),
            kwargs.pop("api_key", ADMIN_KEY),
            transport=httpx.MockTransport(self.handle),
            sleep=self.sleeps.append,
            **kwargs,
        )


def serve(*script: Script, **client_kwargs: Any) -> tuple[FakeServer, LangSmithClient]:
    """A fake server with ``script`` and a client wired to it."""
    server = FakeServer(list(script))
    return server, server.client(**client_kwargs)


NO_RETRY = RetryPolicy(max_attempts=1)


def test_fake_replays_script_in_order_and_repeats_the_last_reply() -> None:
    server, client = serve(Reply(500), Reply(200, json=[]))
    with client:
        assert list(client.list_service_keys()) == []
        assert list(client.list_service_keys()) == []
    assert len(server.requests) == 3
    assert len(server.sleeps) == 1
