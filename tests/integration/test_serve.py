"""``serve`` over real sockets (uvicorn), against the emulator and file targets: the page
and ``/v1/status`` show each stage of a rotation with no secret in them, ``/metrics``
reports it, a consumer written in shell acknowledges with ``curl`` and opens the gate, and
the endpoint refuses what it must without saying why."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from bridge.emulator.records import short_key
from bridge.payload import API_KEY
from bridge.serve.http_ack import REFUSED, Limiter
from tests.integration.conftest import Bridge, policy_toml
from tests.support.serving import Served, curl_ack, served

pytestmark = pytest.mark.integration

TOKEN = "a-test-token-of-some-length"


def metric(served_: Served, name: str, **labels: str) -> float | None:
    text = served_.client.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == (f"{name}{{{wanted}}}" if labels else name):
            return float(value)
    return None


def bridge_with_consumer(make_bridge: Callable[..., Bridge]) -> Bridge:
    return make_bridge(policy_toml("tracing", consumers=["api"], ack="explicit", min_overlap="0s"))


def test_the_page_status_and_metrics_follow_a_rotation_and_a_curl_ack_opens_the_gate(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = bridge_with_consumer(make_bridge)
    bridge.run()
    first = bridge.payload("tracing")[API_KEY]
    with served(bridge.config, bridge.emu.clock.now) as service:
        page = service.client.get("/")
        assert page.status_code == 200
        assert 'data-state="ok"' in page.text and short_key(first) in page.text
        assert metric(service, "langsmith_bridge_superseded_keys", policy="tracing") == 0

        bridge.run("tracing", force=True)
        second = bridge.payload("tracing")[API_KEY]
        service.fresh()
        page = service.client.get("/").text
        assert 'data-state="waiting"' in page and "api" in page
        (entry,) = service.client.get("/v1/status").json()["policies"]
        assert [s["waiting_for"] for s in entry["superseded"]] == [["api"]]
        assert metric(service, "langsmith_bridge_superseded_keys", policy="tracing") == 1

        code, said = curl_ack(service.url, second, "tracing", "api", "api-0")
        assert code == 200, said
        assert json.loads(said)["short_key"] == short_key(second)
        bridge.run()
        service.fresh()
        assert 'data-state="ok"' in service.client.get("/").text
        assert metric(service, "langsmith_bridge_superseded_keys", policy="tracing") == 0
        assert [k["short_key"] for k in live_keys(bridge)] == [short_key(second)]

        everything = [service.client.get(p).text for p in ("/", "/v1/status", "/metrics")]
    for text in everything:
        assert first not in text and second not in text
        assert not re.search(r"lsv2_(?:sk|pt)_[A-Za-z0-9]{32}", text)


def live_keys(bridge: Bridge) -> list[dict[str, Any]]:
    return [
        k
        for k in bridge.emu.state.inspect_keys()
        if "langsmith-bridge:" in (k["description"] or "") and not k["deleted"]
    ]


def test_an_ack_is_refused_alike_for_an_unknown_key_policy_or_consumer(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = bridge_with_consumer(make_bridge)
    bridge.run()
    key = bridge.payload("tracing")[API_KEY]
    unknown = "lsv2_sk_" + "0" * 32 + "_" + "0" * 10
    with served(bridge.config, bridge.emu.clock.now) as service:
        answers = [
            curl_ack(service.url, unknown, "tracing", "api", "r"),
            curl_ack(service.url, key, "nope", "api", "r"),
            curl_ack(service.url, key, "tracing", "intruder", "r"),
            curl_ack(service.url, "not-a-key", "tracing", "api", "r"),
        ]
        assert {(code, json.loads(text)["error"]) for code, text in answers} == {(401, REFUSED)}
        assert bridge.store().acks("tracing", ("api",)) == []
        malformed = service.client.post("/v1/ack", headers={"X-API-Key": key}, content=b"[1]")
        assert malformed.status_code == 400


def test_refusals_from_one_client_are_slowed_down(make_bridge: Callable[..., Bridge]) -> None:
    bridge = bridge_with_consumer(make_bridge)
    bridge.run()
    key = bridge.payload("tracing")[API_KEY]
    with served(bridge.config, bridge.emu.clock.now, limiter=Limiter(failures=3)) as service:
        codes = [curl_ack(service.url, key, "tracing", "x", "r")[0] for _ in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        assert curl_ack(service.url, key, "tracing", "api", "r")[0] == 429  # even a good one


def test_read_only_endpoints_need_the_token_and_the_probes_do_not(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = bridge_with_consumer(make_bridge)
    bridge.run()
    with served(bridge.config, bridge.emu.clock.now, token=TOKEN) as service:
        client = service.client
        for path in ("/", "/v1/status", "/metrics"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            good = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert good.status_code == 200
        assert client.get("/healthz").json() == {"ok": True}
        assert client.get("/readyz").json() == {"ready": True}


def test_metrics_report_keys_gates_targets_and_langsmith_calls(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = bridge_with_consumer(make_bridge)
    bridge.run()
    with served(bridge.config, bridge.emu.clock.now) as service:
        assert metric(service, "langsmith_bridge_key_age_seconds", policy="tracing") is not None
        expiry = metric(service, "langsmith_bridge_key_expiry_seconds", policy="tracing")
        assert expiry is not None and expiry > 0
        assert metric(service, "langsmith_bridge_gates_overdue", policy="tracing") == 0
        blocked = metric(
            service, "langsmith_bridge_targets_blocked", policy="tracing", store="file"
        )
        assert blocked == 0
        calls = metric(
            service,
            "langsmith_bridge_langsmith_calls_total",
            operation="create_service_key",
            status="200",
        )
        assert calls is not None and calls >= 1
