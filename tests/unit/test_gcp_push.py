"""The SECRET_ROTATE push entry's own logic: reading the envelope, routing an event to its
policy, and the answer each outcome gets (what Pub/Sub retries). The whole path, with a
real functions-framework server and signed tokens: tests/integration/test_gcp_done_when.py.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.config import BridgeConfig
from bridge.engine import RotateRequest
from bridge.engine.runner import PolicyOutcome, RunReport
from bridge.errors import RequestRefused
from bridge.gcp_push import Reply, Runtime, _answer, handle, route
from bridge.gcp_push.messages import MalformedPush, parse_push
from bridge.state import Generation, Phase, PolicyRecord

WORKSPACE = "00000000-0000-4000-8000-000000000001"


def envelope(
    attributes: dict[str, str], data: dict[str, Any] | None = None, **message: Any
) -> bytes:
    body: dict[str, Any] = {
        "attributes": attributes,
        "messageId": "17",
        "publishTime": "2026-12-02T09:00:00.123456789Z",
        **message,
    }
    if data is not None:
        body["data"] = base64.b64encode(json.dumps(data).encode()).decode()
    return json.dumps({"message": body, "subscription": "projects/p/subscriptions/s"}).encode()


ALPHA = "projects/123/secrets/alpha"


def rotate(secret: str = ALPHA, **data: Any) -> bytes:
    return envelope({"eventType": "SECRET_ROTATE", "secretId": secret}, data or None)


def config(*policies: tuple[str, str, str]) -> BridgeConfig:
    return BridgeConfig.model_validate(
        {
            "langsmith": {"admin_key_env": "LANGSMITH_ADMIN_KEY"},
            "policy": [
                {
                    "name": name,
                    "default_workspace": WORKSPACE,
                    "ack": "grace",
                    "target": [{"provider": "gcp", "project": project, "secret": secret}],
                }
                for name, project, secret in policies
            ],
        }
    )


def test_a_push_is_read_with_its_nanosecond_publish_time_and_numbered_project() -> None:
    event = parse_push(rotate(annotations={"langsmith-bridge.policy": "a"}))

    assert (event.message_id, event.event_type) == ("17", "SECRET_ROTATE")
    assert event.published_at == datetime(2026, 12, 2, 9, 0, 0, 123456, tzinfo=UTC)
    assert (event.project, event.secret_id) == ("123", "alpha")
    assert event.annotations == {"langsmith-bridge.policy": "a"}


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"message": "x"}).encode(),
        envelope({"eventType": "SECRET_ROTATE"}),  # no secretId
        envelope({"eventType": "SECRET_ROTATE", "secretId": "projects/p/secrets/a/versions/1"}),
        envelope({"eventType": "SECRET_ROTATE", "secretId": "x"}, messageId=""),
        envelope({"eventType": "SECRET_ROTATE", "secretId": "x"}, publishTime="yesterday"),
    ],
)
def test_a_body_that_is_no_secret_manager_push_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedPush):
        parse_push(body)


def test_unreadable_data_only_loses_the_annotations() -> None:
    body = json.loads(rotate())
    body["message"]["data"] = "%%% not base64"
    assert parse_push(json.dumps(body).encode()).annotations == {}


def test_an_event_routes_by_secret_id_with_the_project_as_a_number_or_the_configured_id() -> None:
    bridge = config(("a", "proj-a", "alpha"), ("b", "proj-b", "beta"))

    assert route(bridge, parse_push(rotate("projects/123/secrets/alpha"))).name == "a"  # type: ignore[union-attr]
    assert route(bridge, parse_push(rotate("projects/proj-b/secrets/beta"))).name == "b"  # type: ignore[union-attr]
    assert route(bridge, parse_push(rotate("projects/proj-a/secrets/beta"))) is None
    assert route(bridge, parse_push(rotate("projects/123/secrets/gamma"))) is None


def test_two_policies_on_one_secret_id_are_told_apart_by_the_policy_annotation() -> None:
    bridge = config(("a", "proj-a", "shared"), ("b", "proj-b", "shared"))
    numbered = "projects/123/secrets/shared"

    assert route(bridge, parse_push(rotate(numbered))) is None  # ambiguous: nothing rotates
    named = parse_push(rotate(numbered, annotations={"langsmith-bridge.policy": "b"}))
    assert route(bridge, named).name == "b"  # type: ignore[union-attr]


class Store:
    def __init__(self, record: PolicyRecord) -> None:
        self.record = record

    def load(self, name: str) -> PolicyRecord:
        return self.record


class Engine:
    def __init__(self, record: PolicyRecord) -> None:
        self.store = Store(record)


REQUEST = RotateRequest("pubsub:17", datetime(2026, 12, 2, 9, tzinfo=UTC), "SECRET_ROTATE")
MINTED = Generation(
    rotation_id="r2", phase=Phase.CURRENT, started_at=REQUEST.made_at, request=REQUEST.id
)


def answer(
    outcome: PolicyOutcome, *, listing_error: str | None = None, minted: bool = True
) -> Reply:
    record = PolicyRecord(policy="p", generations=(MINTED,) if minted else ())
    report = RunReport([outcome], listing_error=listing_error)
    return _answer(Engine(record), report, REQUEST)  # type: ignore[arg-type]


def test_each_outcome_gets_the_answer_that_makes_pubsub_retry_only_what_can_succeed() -> None:
    cases = {
        "rotated": answer(PolicyOutcome("p")),
        "duplicate": answer(PolicyOutcome("p", answered_by="r2")),
        "held": answer(PolicyOutcome("p", skipped="lease held")),
        "listing": answer(PolicyOutcome("p", error="blind"), listing_error="503"),
        "outage": answer(PolicyOutcome("p", error="unavailable", retryable=True)),
        "foreign": answer(PolicyOutcome("p", error="target is foreign")),
        "unfinished first": answer(PolicyOutcome("p"), minted=False),
    }

    assert {name: reply.status for name, reply in cases.items()} == {
        "rotated": 200,
        "duplicate": 200,
        "held": 503,
        "listing": 503,
        "outage": 503,
        "foreign": 200,
        "unfinished first": 503,
    }
    assert cases["rotated"].body["outcome"] == "rotated"
    assert cases["foreign"].body["outcome"] == "failed"


def test_a_refused_token_is_told_only_unauthorized_and_nothing_is_read(tmp_path: Path) -> None:
    def refuse(authorization: str | None) -> str:
        raise RequestRefused("wrong audience 'https://elsewhere'")

    runtime = Runtime(config(("a", "proj-a", "alpha")), engine=None, verify=refuse)  # type: ignore[arg-type]
    reply = handle("Bearer x.y.z", b"garbage", runtime)

    assert (reply.status, reply.body) == (401, {"error": "unauthorized"})
    assert reply.headers == {"WWW-Authenticate": "Bearer"}


def test_other_events_and_unknown_secrets_are_acknowledged_not_retried() -> None:
    runtime = Runtime(config(("a", "proj-a", "alpha")), engine=None, verify=lambda _: "ok")  # type: ignore[arg-type]

    added = handle(None, envelope({"eventType": "SECRET_VERSION_ADD"}), runtime)
    unknown = handle(None, rotate("projects/123/secrets/zeta"), runtime)
    malformed = handle(None, b"{}", runtime)

    assert (added.status, added.body["outcome"]) == (200, "ignored")
    assert (unknown.status, unknown.body["outcome"]) == (200, "ignored")
    assert malformed.status == 400
