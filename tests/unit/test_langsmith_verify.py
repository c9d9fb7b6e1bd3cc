"""``verify_key``: the new key is checked the way a consumer's SDK will use it, at the
consumer's endpoint, and a refusal is "not accepted (yet)"."""

from __future__ import annotations

import pytest
from langsmith.client import _construct_url
from langsmith.utils import get_api_url

from bridge import errors
from bridge.langsmith import KeyNotAccepted
from bridge.langsmith.client import consumer_base
from tests.unit.test_langsmith_fakes import NEW_KEY, NEW_KEY_TEXT, ORIGIN, WS_ID, Reply, serve

PUBLIC = "https://public.example.test"

CONSUMER_ENDPOINTS = [
    PUBLIC,
    PUBLIC + "/",
    PUBLIC + "/api/v1",
    PUBLIC + "/api/v1/",
    PUBLIC + "/api",
    "https://proxy.example.test/langsmith/api/v1",
    "  http://127.0.0.1:1984  ",
    '"https://quoted.example.test/"',
]


@pytest.mark.parametrize("endpoint", CONSUMER_ENDPOINTS)
def test_the_url_is_the_one_the_official_sdk_builds(endpoint: str) -> None:
    sdk_url = _construct_url(get_api_url(endpoint), "/sessions")
    server, client = serve(Reply(200, json=[]))
    with client:
        client.verify_key(NEW_KEY, workspace_id=WS_ID, endpoint=endpoint)
    (request,) = server.requests
    assert str(request.url).split("?")[0] == sdk_url
    assert request.url.query.decode() == "limit=1"


def test_it_sends_what_a_consumer_sends_and_nothing_of_the_admin() -> None:
    server, client = serve(Reply(200, json=[]))  # the client itself has an org id
    with client:
        client.verify_key(NEW_KEY, workspace_id=WS_ID, endpoint=PUBLIC)
    (request,) = server.requests
    assert request.url.host == "public.example.test"  # not the admin endpoint's host
    assert request.headers["X-API-Key"] == NEW_KEY_TEXT
    assert request.headers["X-Tenant-Id"] == WS_ID
    assert "X-Organization-Id" not in request.headers  # the SDK never sends it


def test_without_a_workspace_it_reads_the_workspaces_at_that_endpoint() -> None:
    server, client = serve(Reply(200, json=[]))
    with client:
        client.verify_key(NEW_KEY, endpoint=PUBLIC + "/api/v1")
    (request,) = server.requests
    assert str(request.url) == PUBLIC + "/api/v1/workspaces"
    assert "X-Tenant-Id" not in request.headers


def test_without_an_endpoint_it_uses_the_clients_own() -> None:
    server, client = serve(Reply(200, json=[]))
    with client:
        client.verify_key(NEW_KEY, workspace_id=WS_ID)
    assert str(server.requests[0].url) == ORIGIN + "/api/v1/sessions?limit=1"


@pytest.mark.parametrize(
    "endpoint",
    ["", "ftp://x.test", "https://user:pw@x.test", "https://x.test/?k=1", "x.test", "https://"],
)
def test_an_unusable_endpoint_is_refused_before_any_request(endpoint: str) -> None:
    server, client = serve(Reply(200, json=[]))
    with client, pytest.raises(ValueError, match="endpoint"):
        client.verify_key(NEW_KEY, workspace_id=WS_ID, endpoint=endpoint)
    assert server.requests == []


def test_consumer_base_strips_as_the_sdk_does() -> None:
    assert consumer_base(" 'https://x.test/api/v1/' ") == "https://x.test/api/v1"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_at_the_consumer_endpoint_is_not_accepted_yet(status: int) -> None:
    server, client = serve(Reply(status, json={"detail": "Invalid token"}), Reply(200, json=[]))
    with client, pytest.raises(KeyNotAccepted) as info:
        client.verify_key(NEW_KEY, workspace_id=WS_ID, endpoint=PUBLIC)
    assert info.value.status == status
    assert info.value.operation == "verify_key"
    assert "Invalid token" in str(info.value)
    assert len(server.requests) == 1  # the caller paces the next try, not the client


def test_a_workspace_refusal_is_not_a_maybe_later() -> None:
    reply = Reply(403, json={"error": "org_scoped_key_requires_workspace"})
    _, client = serve(reply)
    with client, pytest.raises(errors.WorkspaceRequired):
        client.verify_key(NEW_KEY, endpoint=PUBLIC)


def test_a_redirect_at_the_consumer_endpoint_is_not_followed() -> None:
    reply = Reply(301, headers={"Location": "https://elsewhere.test/sessions"})
    server, client = serve(reply)
    with client, pytest.raises(errors.LangSmithProtocolError, match="redirect"):
        client.verify_key(NEW_KEY, workspace_id=WS_ID, endpoint=PUBLIC)
    assert len(server.requests) == 1
