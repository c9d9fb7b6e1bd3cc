"""LangSmithClient: routes, headers, bodies, parsing and status mapping."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from bridge import errors
from bridge.langsmith import (
    ApiKey,
    KeyNotAccepted,
    LangSmithClient,
    LangSmithConflict,
    LangSmithTooEarly,
    RetryPolicy,
    Workspace,
)
from bridge.secrets import Secret
from tests.unit.test_langsmith_fakes import (
    ADMIN_KEY,
    ADMIN_KEY_TEXT,
    KEY_BODY,
    KEY_ID,
    NEW_KEY,
    NEW_KEY_TEXT,
    NO_RETRY,
    ORG_ID,
    ORIGIN,
    WS_ID,
    Reply,
    serve,
)

CREATED_BODY = {**KEY_BODY, "key": NEW_KEY_TEXT}
WORKSPACES_BODY = [{"id": WS_ID, "display_name": "Orders", "is_deleted": False}]

# (call, method, path, query, org route?, tenant, reply body)
ROUTES: list[tuple[str, str, str, str, bool, str | None, Any]] = [
    ("list_service_keys", "GET", "/api/v1/orgs/current/service-keys", "", True, None, []),
    (
        "create_service_key",
        "POST",
        "/api/v1/orgs/current/service-keys",
        "",
        True,
        None,
        CREATED_BODY,
    ),
    (
        "delete_service_key",
        "DELETE",
        f"/api/v1/orgs/current/service-keys/{KEY_ID}",
        "",
        True,
        None,
        KEY_BODY,
    ),
    ("list_workspace_keys", "GET", "/api/v1/api-key", "", False, WS_ID, []),
    ("create_workspace_key", "POST", "/api/v1/api-key", "", False, WS_ID, CREATED_BODY),
    ("delete_workspace_key", "DELETE", f"/api/v1/api-key/{KEY_ID}", "", False, WS_ID, KEY_BODY),
    ("list_workspaces", "GET", "/api/v1/workspaces", "", True, None, WORKSPACES_BODY),
    ("verify_key_org", "GET", "/api/v1/workspaces", "", False, None, WORKSPACES_BODY),
    ("verify_key_workspace", "GET", "/api/v1/sessions", "limit=1", False, WS_ID, []),
    ("org_info", "GET", "/api/v1/orgs/current/info", "", True, None, {"is_personal": False}),
    ("list_roles", "GET", "/api/v1/orgs/current/roles", "", True, None, []),
]


def call(client: LangSmithClient, name: str) -> Any:
    """Invoke a client method by table name with typical arguments."""
    calls: dict[str, Callable[[], Any]] = {
        "list_service_keys": lambda: client.list_service_keys(),
        "create_service_key": lambda: client.create_service_key(description="d"),
        "delete_service_key": lambda: client.delete_service_key(KEY_ID),
        "list_workspace_keys": lambda: client.list_workspace_keys(WS_ID),
        "create_workspace_key": lambda: client.create_workspace_key(WS_ID, description="d"),
        "delete_workspace_key": lambda: client.delete_workspace_key(WS_ID, KEY_ID),
        "list_workspaces": lambda: client.list_workspaces(),
        "verify_key_org": lambda: client.verify_key(NEW_KEY),
        "verify_key_workspace": lambda: client.verify_key(NEW_KEY, workspace_id=WS_ID),
        "org_info": lambda: client.org_info(),
        "list_roles": lambda: client.list_roles(),
    }
    return calls[name]()


@pytest.mark.parametrize(("name", "method", "path", "query", "org", "tenant", "body"), ROUTES)
def test_each_call_hits_its_route_with_its_headers(
    name: str, method: str, path: str, query: str, org: bool, tenant: str | None, body: Any
) -> None:
    server, client = serve(Reply(200, json=body), user_agent="bridge-test/1")
    with client:
        call(client, name)
    (request,) = server.requests
    assert (request.method, request.url.path, request.url.query.decode()) == (method, path, query)
    assert str(request.url).startswith(ORIGIN + "/api/v1/")
    expected_key = NEW_KEY_TEXT if name.startswith("verify_key") else ADMIN_KEY_TEXT
    assert request.headers["X-API-Key"] == expected_key
    assert request.headers.get("X-Organization-Id") == (ORG_ID if org else None)
    assert request.headers.get("X-Tenant-Id") == tenant
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == "bridge-test/1"
    assert "Authorization" not in request.headers


def test_org_header_is_omitted_when_the_organisation_is_unknown() -> None:
    server, client = serve(Reply(200, json=[]), organization_id=None)
    with client:
        client.list_service_keys()
    assert "X-Organization-Id" not in server.requests[0].headers


def test_default_user_agent_names_the_bridge_and_its_version() -> None:
    from bridge import __version__

    server, client = serve(Reply(200, json=[]))
    with client:
        client.list_service_keys()
    assert server.requests[0].headers["User-Agent"] == f"langsmith-bridge/{__version__}"


def test_endpoint_attribute_is_the_normalised_origin() -> None:
    _, client = serve(Reply(), endpoint="https://eu.api.smith.langchain.com/api/")
    with client:
        assert client.endpoint == "https://eu.api.smith.langchain.com"
        assert ADMIN_KEY_TEXT not in repr(client)


def test_create_service_key_sends_only_the_given_fields() -> None:
    server, client = serve(Reply(200, json=CREATED_BODY))
    with client:
        created = client.create_service_key(description="bridge:orders:r2")
    assert json.loads(server.requests[0].content) == {"description": "bridge:orders:r2"}
    assert server.requests[0].headers["Content-Type"] == "application/json"
    assert created.key == NEW_KEY
    assert created.info == ApiKey(id=KEY_ID, short_key="lsv2_sk_...b2", description="d")


def test_create_service_key_sends_expiry_as_utc_z_and_scopes() -> None:
    server, client = serve(Reply(200, json=CREATED_BODY))
    plus_two = timezone(timedelta(hours=2))
    with client:
        client.create_service_key(
            description="d",
            expires_at=datetime(2100, 1, 1, 2, 0, tzinfo=plus_two),
            workspaces=(WS_ID,),
            role_id="role-1",
            org_role_id="org-role-1",
        )
    assert json.loads(server.requests[0].content) == {
        "description": "d",
        "expires_at": "2100-01-01T00:00:00Z",
        "workspaces": [WS_ID],
        "role_id": "role-1",
        "org_role_id": "org-role-1",
    }


def test_create_workspace_key_sends_description_expiry_and_role() -> None:
    server, client = serve(Reply(200, json=CREATED_BODY))
    expiry = datetime(2099, 12, 31, 0, 0, 0, 500, tzinfo=UTC)
    with client:
        client.create_workspace_key(WS_ID, description="d", expires_at=expiry, role_id="r")
    assert json.loads(server.requests[0].content) == {
        "description": "d",
        "expires_at": "2099-12-31T00:00:00.000500Z",
        "role_id": "r",
    }


@pytest.mark.parametrize("kind", ["service", "workspace"])
def test_naive_expiry_is_rejected_before_any_request(kind: str) -> None:
    server, client = serve(Reply(200, json=CREATED_BODY))
    naive = datetime(2099, 1, 1)
    create: Callable[[], Any] = {
        "service": lambda: client.create_service_key(description="d", expires_at=naive),
        "workspace": lambda: client.create_workspace_key(WS_ID, description="d", expires_at=naive),
    }[kind]
    with client, pytest.raises(ValueError, match="timezone-aware"):
        create()
    assert server.requests == []


def test_workspaces_given_as_a_bare_string_are_rejected() -> None:
    _, client = serve(Reply(200, json=CREATED_BODY))
    with client, pytest.raises(ValueError, match="sequence"):
        client.create_service_key(description="d", workspaces=WS_ID)


@pytest.mark.parametrize("bad_id", ["", "../orgs", "a/b", "id with space", "x\r\nX-Evil: 1", "."])
def test_ids_that_are_not_path_and_header_safe_are_rejected(bad_id: str) -> None:
    server, client = serve(Reply(200, json=KEY_BODY))
    with client:
        with pytest.raises(ValueError, match="key_id"):
            client.delete_service_key(bad_id)
        with pytest.raises(ValueError, match="workspace_id"):
            client.list_workspace_keys(bad_id)
        with pytest.raises(ValueError, match="workspace_id"):
            client.verify_key(NEW_KEY, workspace_id=bad_id)
    assert server.requests == []


def test_constructor_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        LangSmithClient("ftp://x", ADMIN_KEY)
    with pytest.raises(TypeError, match="Secret"):
        LangSmithClient(ORIGIN, ADMIN_KEY_TEXT)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        LangSmithClient(ORIGIN, Secret(""))
    with pytest.raises(ValueError, match="organization_id"):
        LangSmithClient(ORIGIN, ADMIN_KEY, organization_id="a b")


def test_lists_parse_keys_and_workspaces() -> None:
    _, client = serve(
        Reply(200, json=[KEY_BODY, {**KEY_BODY, "id": "k2", "access_scope": "organization"}])
    )
    with client:
        keys = client.list_service_keys()
    assert [(k.id, k.access_scope) for k in keys] == [(KEY_ID, None), ("k2", "organization")]
    _, client = serve(Reply(200, json=WORKSPACES_BODY))
    with client:
        assert client.list_workspaces() == [
            Workspace(id=WS_ID, display_name="Orders", is_deleted=False)
        ]


def test_delete_accepts_any_2xx_body() -> None:
    for reply in (Reply(200, json=KEY_BODY), Reply(204, text=""), Reply(200, text="ok")):
        _, client = serve(reply)
        with client:
            client.delete_service_key(KEY_ID)
            client.delete_workspace_key(WS_ID, KEY_ID)


E = errors
# (status, body, expected error class)
STATUS_TABLE: list[tuple[int, Any, type[errors.LangSmithError]]] = [
    (401, {"detail": "Invalid token"}, E.LangSmithAuthError),
    (403, {"error": "org_scoped_key_requires_workspace", "detail": "x"}, E.WorkspaceRequired),
    (403, {"detail": "Forbidden"}, E.LangSmithPermissionError),
    (403, {"error": "something_else"}, E.LangSmithPermissionError),
    (403, "<html>forbidden</html>", E.LangSmithPermissionError),
    (404, {"detail": "Not found"}, E.LangSmithNotFound),
    (
        422,
        {"detail": [{"loc": ["body", "expires_at"], "msg": "bad", "type": "x"}]},
        E.LangSmithValidationError,
    ),
    (429, {"detail": "slow down"}, E.LangSmithRateLimited),
    (408, None, E.LangSmithServerError),
    (500, {"detail": "Internal Server Error"}, E.LangSmithServerError),
    (502, "<html>Bad Gateway</html>", E.LangSmithServerError),
    (503, "", E.LangSmithServerError),
    (504, None, E.LangSmithServerError),
    (302, "", E.LangSmithProtocolError),
    (400, {"detail": "bad request"}, E.LangSmithError),
    (409, {"detail": "conflict"}, LangSmithConflict),
    (425, {"detail": "too early"}, LangSmithTooEarly),
]


@pytest.mark.parametrize(("status", "body", "expected"), STATUS_TABLE)
@pytest.mark.parametrize(
    "name", ["list_service_keys", "create_workspace_key", "delete_service_key", "org_info"]
)
def test_status_maps_into_the_error_tree(
    name: str, status: int, body: Any, expected: type[errors.LangSmithError]
) -> None:
    reply = Reply(status, text=body) if isinstance(body, str) else Reply(status, json=body)
    _, client = serve(reply, retry=NO_RETRY)
    with client, pytest.raises(errors.LangSmithError) as info:
        call(client, name)
    err = info.value
    assert type(err) is expected
    assert err.status == status
    assert err.operation == name
    assert f"LangSmith {err.operation} -> HTTP {status}" in str(err)
    # A 409 is worth repeating only where repeating changes nothing: not for a create.
    conflict_retryable = status == 409 and not name.startswith("create")
    assert err.retryable is (status in (408, 425, 429) or status >= 500 or conflict_retryable)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"detail": "Invalid token"}, KeyNotAccepted),
        (403, {"detail": "Forbidden"}, KeyNotAccepted),
        (403, "<html>forbidden</html>", KeyNotAccepted),
        (403, {"error": "org_scoped_key_requires_workspace"}, E.WorkspaceRequired),
    ],
)
def test_verify_key_reports_401_and_403_as_not_accepted_yet(
    status: int, body: Any, expected: type[errors.LangSmithError]
) -> None:
    reply = Reply(status, text=body) if isinstance(body, str) else Reply(status, json=body)
    server, client = serve(reply)  # the default policy: these are still not retried
    with client, pytest.raises(errors.LangSmithError) as info:
        client.verify_key(NEW_KEY, workspace_id=WS_ID)
    assert type(info.value) is expected
    assert info.value.status == status
    assert info.value.retryable is False
    assert len(server.requests) == 1
    if expected is KeyNotAccepted:
        assert isinstance(info.value, errors.LangSmithAuthError)  # what callers catch today
        assert isinstance(info.value.__cause__, errors.LangSmithError)
        assert str(info.value).startswith(f"LangSmith verify_key -> HTTP {status}: key not")


def test_verify_key_retries_what_any_call_retries() -> None:
    server, client = serve(
        Reply(503), Reply(429, headers={"Retry-After": "1"}), Reply(200, json=[])
    )
    with client:
        client.verify_key(NEW_KEY, workspace_id=WS_ID, endpoint="https://public.example.test")
    assert len(server.requests) == 3


def test_error_message_carries_a_short_excerpt_of_the_body() -> None:
    _, client = serve(Reply(401, json={"detail": "Invalid token"}), retry=NO_RETRY)
    with client, pytest.raises(errors.LangSmithAuthError, match="Invalid token"):
        client.list_service_keys()
    _, client = serve(Reply(500, text="x" * 5000), retry=NO_RETRY)
    with client, pytest.raises(errors.LangSmithServerError) as info:
        client.list_service_keys()
    message = str(info.value)
    excerpt = message.split(": ", 1)[1].removeprefix("server error: ")
    assert len(excerpt) <= 200
    assert excerpt.endswith("…")


def test_validation_error_summarises_locations_and_messages_only() -> None:
    detail = [
        {
            "loc": ["body", "expires_at"],
            "msg": "Input should be a valid datetime",
            "type": "datetime_parsing",
            "input": "never",
        },
        {
            "loc": ["body", "workspaces", 0],
            "msg": "Input should be a valid UUID",
            "type": "uuid_parsing",
        },
    ]
    _, client = serve(Reply(422, json={"detail": detail}), retry=NO_RETRY)
    with client, pytest.raises(errors.LangSmithValidationError) as info:
        client.create_service_key(description="d")
    assert str(info.value) == (
        "LangSmith create_service_key -> HTTP 422: request rejected: "
        "body.expires_at: Input should be a valid datetime; "
        "body.workspaces.0: Input should be a valid UUID"
    )


def test_rate_limited_error_carries_retry_after() -> None:
    _, client = serve(Reply(429, headers={"Retry-After": "3"}), retry=NO_RETRY)
    with client, pytest.raises(errors.LangSmithRateLimited) as info:
        client.list_workspaces()
    assert info.value.retry_after == 3.0
    _, client = serve(Reply(429), retry=NO_RETRY)
    with client, pytest.raises(errors.LangSmithRateLimited) as info:
        client.list_workspaces()
    assert info.value.retry_after is None


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, text="<html>proxy login</html>", headers={"Content-Type": "text/html"}),
        Reply(200, text=""),
        Reply(200, json={"keys": []}),
        Reply(200, json=None),
    ],
)
def test_garbage_2xx_is_a_protocol_error_and_not_retried(reply: Reply) -> None:
    server, client = serve(reply)
    with (
        client,
        pytest.raises(errors.LangSmithProtocolError, match="list_service_keys -> HTTP 200") as info,
    ):
        client.list_service_keys()
    assert info.value.__cause__ is not None
    assert len(server.requests) == 1
    assert server.sleeps == []


@pytest.mark.parametrize("body", [{"id": KEY_ID}, KEY_BODY, {**KEY_BODY, "key": 5}, []])
def test_create_response_without_a_usable_key_is_a_protocol_error(body: Any) -> None:
    _, client = serve(Reply(200, json=body))
    with client, pytest.raises(errors.LangSmithProtocolError, match="unexpected response shape"):
        client.create_service_key(description="d")


def test_verify_key_rejects_a_non_list_body() -> None:
    _, client = serve(Reply(200, json={"detail": "ok"}))
    with client, pytest.raises(errors.LangSmithProtocolError, match="expected an array"):
        client.verify_key(NEW_KEY)


@pytest.mark.parametrize("text", ["", "lsv2_sk_ with space", "s3cr3t\n", "sécret"])
def test_verify_key_with_an_unsendable_key_fails_as_auth_without_a_request(text: str) -> None:
    server, client = serve(Reply(200, json=[]))
    with client, pytest.raises(errors.LangSmithAuthError) as info:
        client.verify_key(Secret(text))
    assert server.requests == []
    if text.strip():
        assert text.strip() not in str(info.value)


def test_verify_key_maps_a_rejected_key_to_auth_error() -> None:
    _, client = serve(Reply(401, json={"detail": "Invalid token"}))
    with client, pytest.raises(errors.LangSmithAuthError, match="verify_key -> HTTP 401"):
        client.verify_key(NEW_KEY, workspace_id=WS_ID)


def test_redirects_are_not_followed() -> None:
    server, client = serve(Reply(307, headers={"Location": "https://elsewhere.test/"}))
    with client, pytest.raises(errors.LangSmithProtocolError, match="redirect"):
        client.list_service_keys()
    assert len(server.requests) == 1


def test_each_attempt_logs_one_line_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.langsmith")
    _, client = serve(
        Reply(503), httpx.ConnectError("refused"), Reply(200, json=[]), retry=RetryPolicy()
    )
    with client:
        client.list_workspace_keys(WS_ID)
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.langsmith"]
    assert [line.rsplit(" elapsed_ms=", 1)[0] for line in lines] == [
        "GET /api/v1/api-key status=503 attempt=1",
        "GET /api/v1/api-key status=- attempt=2",
        "GET /api/v1/api-key status=200 attempt=3",
    ]
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert all(line.rsplit("=", 1)[1].isdigit() for line in lines)


def test_log_names_the_route_template_not_the_ids(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.langsmith")
    _, client = serve(Reply(200, json=KEY_BODY))
    with client:
        client.delete_service_key(KEY_ID)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "bridge.langsmith"]
    assert line.startswith(
        "DELETE /api/v1/orgs/current/service-keys/{api_key_id} status=200 attempt=1 "
    )
    assert KEY_ID not in line
