"""LangSmithClient retries: which failures, how many tries, how long between them."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable

import httpx
import pytest

from bridge import errors
from bridge.langsmith import LangSmithClient, LangSmithConflict, LangSmithTooEarly, RetryPolicy
from tests.unit.test_langsmith_fakes import (
    KEY_BODY,
    KEY_ID,
    NEW_KEY,
    NEW_KEY_TEXT,
    WS_ID,
    Reply,
    serve,
)

OK_LIST = Reply(200, json=[])


def test_server_error_then_success_retries_once_with_jittered_backoff() -> None:
    server, client = serve(Reply(503), OK_LIST, rand=lambda: 0.5)
    with client:
        assert list(client.list_service_keys()) == []
    assert len(server.requests) == 2
    assert server.sleeps == [0.25]


def test_persistent_server_error_gives_up_after_max_attempts() -> None:
    server, client = serve(Reply(500, json={"detail": "boom"}), rand=lambda: 0.5)
    with client, pytest.raises(errors.LangSmithServerError, match="HTTP 500"):
        client.list_service_keys()
    assert len(server.requests) == 4
    assert server.sleeps == [0.25, 0.5, 1.0]


def test_backoff_ceiling_is_capped_at_max_delay() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=10.0, max_delay=15.0)
    server, client = serve(Reply(502), retry=policy, rand=lambda: 1.0)
    with client, pytest.raises(errors.LangSmithServerError):
        client.list_workspaces()
    assert server.sleeps == [10.0, 15.0, 15.0, 15.0]


def test_max_attempts_one_means_no_retry() -> None:
    server, client = serve(Reply(503), retry=RetryPolicy(max_attempts=1))
    with client, pytest.raises(errors.LangSmithServerError):
        client.list_workspaces()
    assert len(server.requests) == 1
    assert server.sleeps == []


@pytest.mark.parametrize(
    ("headers", "sleeps"),
    [
        ({"Retry-After": "7"}, [7.0]),
        ({"Retry-After": "0"}, [0.0]),
        ({"Retry-After-Ms": "1500"}, [1.5]),
        ({"Retry-After-Ms": "250", "Retry-After": "9"}, [0.25]),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, [0.0]),
        ({"Retry-After": "60"}, [60.0]),
        ({}, [10.25]),
        ({"Retry-After": "whenever"}, [10.25]),
    ],
)
def test_429_honours_the_server_hint(headers: dict[str, str], sleeps: list[float]) -> None:
    server, client = serve(Reply(429, headers=headers), OK_LIST, rand=lambda: 0.5)
    with client:
        client.list_service_keys()
    assert len(server.requests) == 2
    assert server.sleeps == sleeps


def test_429_honours_a_future_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server, client = serve(Reply(429, headers={"Retry-After": when}), OK_LIST)
    with client:
        client.list_service_keys()
    (slept,) = server.sleeps
    assert 27.0 <= slept <= 30.0


@pytest.mark.parametrize(
    "headers", [{"Retry-After": "120"}, {"Retry-After-Ms": "60001"}, {"Retry-After": "61"}]
)
def test_429_asking_for_longer_than_max_retry_after_raises_at_once(
    headers: dict[str, str],
) -> None:
    server, client = serve(Reply(429, headers=headers), OK_LIST)
    with client, pytest.raises(errors.LangSmithRateLimited) as info:
        client.list_service_keys()
    assert len(server.requests) == 1
    assert server.sleeps == []
    assert info.value.retry_after is not None
    assert info.value.retry_after > 60.0


def test_persistent_429_gives_up_with_the_last_hint() -> None:
    server, client = serve(Reply(429, headers={"Retry-After": "2"}))
    with client, pytest.raises(errors.LangSmithRateLimited) as info:
        client.list_service_keys()
    assert server.sleeps == [2.0, 2.0, 2.0]
    assert info.value.retry_after == 2.0


def test_503_retry_after_is_honoured_too() -> None:
    server, client = serve(Reply(503, headers={"Retry-After": "4"}), OK_LIST)
    with client:
        client.list_service_keys()
    assert server.sleeps == [4.0]


def test_408_is_retried() -> None:
    server, client = serve(Reply(408), OK_LIST)
    with client:
        client.list_service_keys()
    assert len(server.requests) == 2


def test_429_without_a_hint_backs_off_across_the_rate_window_each_time() -> None:
    server, client = serve(Reply(429), Reply(429), Reply(429), OK_LIST, rand=lambda: 0.5)
    with client:
        client.list_service_keys()
    assert len(server.requests) == 4
    # One 10 s window each, plus the usual jittered backoff: never a retry inside the
    # window that refused, and runners refused together come back spread out.
    assert server.sleeps == [10.25, 10.5, 11.0]


def test_429_without_a_hint_stops_at_the_total_deadline() -> None:
    policy = RetryPolicy(max_attempts=10, max_elapsed=25.0)
    server, client = serve(Reply(429), retry=policy, rand=lambda: 0.0)
    with client, pytest.raises(errors.LangSmithRateLimited) as info:
        client.list_service_keys()
    assert server.sleeps == [10.0, 10.0]  # a third wait would end at 30 s, past 25 s
    assert len(server.requests) == 3
    assert info.value.retry_after is None


def test_the_deadline_bounds_every_retried_failure_not_only_429() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=4.0, max_delay=4.0, max_elapsed=10.0)
    server, client = serve(Reply(503), retry=policy, rand=lambda: 0.999)
    with client, pytest.raises(errors.LangSmithServerError):
        client.list_workspaces()
    assert len(server.sleeps) == 2
    assert sum(server.sleeps) <= 10.0


def test_a_hint_that_would_pass_the_deadline_is_not_waited_for() -> None:
    policy = RetryPolicy(max_elapsed=5.0)
    server, client = serve(Reply(429, headers={"Retry-After": "6"}), OK_LIST, retry=policy)
    with client, pytest.raises(errors.LangSmithRateLimited):
        client.list_service_keys()
    assert server.sleeps == []


def test_time_spent_in_attempts_counts_against_the_deadline() -> None:
    def slow_failure(request: httpx.Request) -> httpx.Response:
        time.sleep(0.05)
        return httpx.Response(503)

    policy = RetryPolicy(max_attempts=10, base_delay=0.0, max_elapsed=0.12)
    server, client = serve(slow_failure, retry=policy)
    with client, pytest.raises(errors.LangSmithServerError):
        client.list_workspaces()
    assert 2 <= len(server.requests) <= 3  # 0.05 s each; never past 0.12 s plus one


@pytest.mark.parametrize(
    ("call", "method"),
    [
        (lambda c: c.list_service_keys(), "GET"),
        (lambda c: c.delete_service_key(KEY_ID), "DELETE"),
        (lambda c: c.verify_key(NEW_KEY, workspace_id=WS_ID), "GET"),
    ],
)
def test_409_is_retried_for_idempotent_methods(
    call: Callable[[LangSmithClient], object], method: str
) -> None:
    ok = Reply(200, json=KEY_BODY) if method == "DELETE" else OK_LIST
    server, client = serve(Reply(409, json={"detail": "locked"}), ok)
    with client:
        call(client)
    assert [r.method for r in server.requests] == [method, method]
    assert server.sleeps == [0.25]


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.create_service_key(description="d"),
        lambda c: c.create_workspace_key(WS_ID, description="d"),
    ],
)
def test_409_on_a_create_is_raised_at_once(call: Callable[[LangSmithClient], object]) -> None:
    created = Reply(200, json={**KEY_BODY, "key": NEW_KEY_TEXT})
    server, client = serve(Reply(409, json={"detail": "conflict"}), created)
    with client, pytest.raises(LangSmithConflict) as info:
        call(client)
    assert info.value.retryable is False
    assert info.value.status == 409
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("call", "ok"),
    [
        (lambda c: c.list_service_keys(), OK_LIST),
        (
            lambda c: c.create_service_key(description="d"),
            Reply(200, json={**KEY_BODY, "key": NEW_KEY_TEXT}),
        ),
    ],
)
def test_425_is_retried_for_every_method(
    call: Callable[[LangSmithClient], object], ok: Reply
) -> None:
    server, client = serve(Reply(425), ok)
    with client:
        call(client)
    assert len(server.requests) == 2
    assert server.sleeps == [0.25]


def test_persistent_425_surfaces_as_too_early() -> None:
    server, client = serve(Reply(425))
    with client, pytest.raises(LangSmithTooEarly):
        client.list_service_keys()
    assert len(server.requests) == 4


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 422, 302])
def test_other_4xx_are_not_retried(status: int) -> None:
    server, client = serve(Reply(status, json={"detail": "no"}), OK_LIST)
    with client, pytest.raises(errors.LangSmithError) as info:
        client.list_service_keys()
    assert info.value.retryable is False
    assert len(server.requests) == 1
    assert server.sleeps == []


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.PoolTimeout("pool timed out"),
    ],
)
def test_transport_failures_are_retried_then_raise_unavailable(exc: httpx.TransportError) -> None:
    server, client = serve(exc, rand=lambda: 0.5)
    with client, pytest.raises(errors.LangSmithUnavailable) as info:
        client.list_service_keys()
    assert len(server.requests) == 4
    assert server.sleeps == [0.25, 0.5, 1.0]
    assert info.value.__cause__ is exc
    assert info.value.status is None
    assert type(exc).__name__ in str(info.value)


def test_transport_failure_then_success_recovers() -> None:
    server, client = serve(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), OK_LIST)
    with client:
        assert list(client.list_service_keys()) == []
    assert len(server.requests) == 3


def test_create_is_retried_with_the_identical_body() -> None:
    created = {**KEY_BODY, "key": NEW_KEY_TEXT}
    server, client = serve(Reply(502), httpx.ReadTimeout("lost"), Reply(200, json=created))
    with client:
        result = client.create_workspace_key(WS_ID, description="bridge:orders:r3")
    assert result.key == NEW_KEY
    assert [r.method for r in server.requests] == ["POST"] * 3
    bodies = {r.content for r in server.requests}
    assert len(bodies) == 1
    assert json.loads(bodies.pop()) == {"description": "bridge:orders:r3"}
    assert all(r.headers["X-Tenant-Id"] == WS_ID for r in server.requests)


def test_verify_key_uses_the_same_retry_policy() -> None:
    server, client = serve(Reply(500), Reply(500), OK_LIST)
    with client:
        client.verify_key(NEW_KEY, workspace_id=WS_ID)
    assert len(server.requests) == 3
    assert all(r.headers["X-API-Key"] == NEW_KEY_TEXT for r in server.requests)


def test_auth_failure_is_never_retried() -> None:
    server, client = serve(Reply(401, json={"detail": "Invalid token"}), OK_LIST)
    with client, pytest.raises(errors.LangSmithAuthError):
        client.verify_key(NEW_KEY)
    assert len(server.requests) == 1
