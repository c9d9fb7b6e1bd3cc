"""Alerts over a real Slack-compatible webhook (a loopback HTTP server): one message when a
gate turns overdue, none while nothing changes, one when it is resolved, and a notice that
could not be delivered is sent again by the next run, once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bridge.payload import API_KEY
from tests.integration.conftest import Bridge, policy_toml

pytestmark = pytest.mark.integration

VARIABLE = "BRIDGE_TEST_WEBHOOK"


class Webhook:
    """A loopback stand-in for Slack's incoming webhook, recording each JSON body."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                hook.received.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        texts = [str(body["text"]) for body in self.received]
        self.received.clear()
        return texts


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def alerting_bridge(
    make_bridge: Callable[..., Bridge], webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> Bridge:
    monkeypatch.setenv(VARIABLE, webhook.url)
    policy = policy_toml(
        "tracing", consumers=["api"], ack="explicit", min_overlap="0s", max_wait="1h"
    )
    bridge = make_bridge(policy)
    text = bridge.config_path.read_text()
    bridge.config_path.write_text(f'{text}\n[alerts]\nwebhook_url_env = "{VARIABLE}"\n')
    return bridge


def test_one_message_per_problem_until_it_changes_and_one_when_resolved(
    make_bridge: Callable[..., Bridge], webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = alerting_bridge(make_bridge, webhook, monkeypatch)
    bridge.run()
    bridge.run("tracing", force=True)
    assert webhook.texts() == []  # waiting within max_wait is no problem

    bridge.emu.clock.advance(timedelta(hours=2))
    bridge.run()
    (overdue,) = webhook.texts()
    assert "policy tracing" in overdue and "overdue" in overdue
    bridge.emu.clock.advance(timedelta(minutes=30))
    bridge.run()
    bridge.run()
    assert webhook.texts() == []  # the same problem, later: no new message

    key = bridge.payload("tracing")[API_KEY]
    monkeypatch.setenv(API_KEY, key)
    assert bridge.cli("ack", "tracing", "--consumer", "api", "--from-env")[0] == 0
    webhook.status = 500  # the resolution cannot be delivered this time
    bridge.run()
    assert len(webhook.texts()) == 1
    webhook.status = 200
    bridge.run()
    (resolved,) = webhook.texts()
    assert "resolved" in resolved
    bridge.run()
    assert webhook.texts() == []
    for text in (overdue, resolved):
        assert key not in text and webhook.url not in text


def test_an_unset_webhook_variable_fails_the_run_loudly(
    make_bridge: Callable[..., Bridge], webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = alerting_bridge(make_bridge, webhook, monkeypatch)
    monkeypatch.delenv(VARIABLE)
    code, _out, err = bridge.cli("run")
    assert code == 2 and VARIABLE in err
    assert webhook.url not in err
