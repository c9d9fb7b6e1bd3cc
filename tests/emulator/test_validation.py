"""422 answers in FastAPI's shape for bad bodies, parameters and broken rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from bridge.emulator import Emulator, EmulatorClock
from tests.emulator.conftest import MintKey

SERVICE_KEYS = "/api/v1/orgs/current/service-keys"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def assert_422(response: httpx.Response, loc: list[Any]) -> None:
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert loc in [error["loc"] for error in errors], errors
    assert all(error["msg"] and error["type"] for error in errors)


def test_invalid_json_body_gives_422(client: httpx.Client, admin_headers: dict[str, str]):
    response = client.post(
        SERVICE_KEYS,
        content=b'{"description": ',
        headers={**admin_headers, "Content-Type": "application/json"},
    )

    assert_422(response, ["body", 16])
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_missing_body_on_org_key_create_gives_422(
    client: httpx.Client, admin_headers: dict[str, str]
):
    assert_422(client.post(SERVICE_KEYS, headers=admin_headers), ["body"])


def test_empty_object_is_a_valid_create_body(client: httpx.Client, admin_headers: dict[str, str]):
    assert client.post(SERVICE_KEYS, json={}, headers=admin_headers).status_code == 200


def test_unknown_body_fields_are_ignored(client: httpx.Client, admin_headers: dict[str, str]):
    response = client.post(SERVICE_KEYS, json={"colour": "blue"}, headers=admin_headers)

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ([], ["body"]),
        ({"description": 42}, ["body", "description"]),
        ({"read_only": "maybe"}, ["body", "read_only"]),
        ({"expires_at": "next tuesday"}, ["body", "expires_at"]),
        ({"workspaces": ["not-a-uuid"]}, ["body", "workspaces", 0]),
        ({"role_id": "admin"}, ["body", "role_id"]),
    ],
    ids=["not-an-object", "description", "read-only", "expires-at", "workspaces", "role-id"],
)
def test_ill_typed_create_body_gives_422(
    client: httpx.Client, admin_headers: dict[str, str], body: Any, loc: list[Any]
):
    assert_422(client.post(SERVICE_KEYS, json=body, headers=admin_headers), loc)


def test_org_role_with_workspaces_gives_422(
    client: httpx.Client,
    admin_headers: dict[str, str],
    emulator: Emulator,
    workspace_ids: list[str],
):
    body = {
        "workspaces": workspace_ids[:1],
        "org_role_id": emulator.bootstrap["roles"]["ORGANIZATION_USER"],
    }

    assert_422(client.post(SERVICE_KEYS, json=body, headers=admin_headers), ["body", "org_role_id"])


def test_unknown_workspace_gives_422(client: httpx.Client, admin_headers: dict[str, str]):
    response = client.post(SERVICE_KEYS, json={"workspaces": [UNKNOWN]}, headers=admin_headers)

    assert_422(response, ["body", "workspaces"])


@pytest.mark.parametrize(
    ("field", "role"),
    [("role_id", "ORGANIZATION_ADMIN"), ("org_role_id", "WORKSPACE_ADMIN"), ("role_id", None)],
    ids=["org-role-as-workspace-role", "workspace-role-as-org-role", "unknown-role"],
)
def test_wrong_or_unknown_role_gives_422(
    client: httpx.Client,
    admin_headers: dict[str, str],
    emulator: Emulator,
    field: str,
    role: str | None,
):
    role_id = emulator.bootstrap["roles"][role] if role else UNKNOWN

    response = client.post(SERVICE_KEYS, json={field: role_id}, headers=admin_headers)

    assert_422(response, ["body", field])


def test_expiry_in_the_past_gives_422(
    client: httpx.Client, admin_headers: dict[str, str], clock: EmulatorClock
):
    past = (clock.now() - timedelta(seconds=1)).isoformat()

    response = client.post(SERVICE_KEYS, json={"expires_at": past}, headers=admin_headers)

    assert_422(response, ["body", "expires_at"])


def test_org_role_on_a_workspace_scoped_key_patch_gives_422(
    client: httpx.Client,
    admin_headers: dict[str, str],
    emulator: Emulator,
    mint_key: MintKey,
    workspace_ids: list[str],
):
    created = mint_key(workspaces=workspace_ids[:1])

    response = client.patch(
        f"{SERVICE_KEYS}/{created['id']}",
        json={"org_role_id": emulator.bootstrap["roles"]["ORGANIZATION_ADMIN"]},
        headers=admin_headers,
    )

    assert_422(response, ["body", "org_role_id"])


def test_patch_without_body_gives_422(
    client: httpx.Client, admin_headers: dict[str, str], mint_key: MintKey
):
    response = client.patch(f"{SERVICE_KEYS}/{mint_key()['id']}", headers=admin_headers)

    assert_422(response, ["body"])


@pytest.mark.parametrize("method", ["DELETE", "PATCH"])
def test_malformed_key_id_in_path_gives_422(
    client: httpx.Client, admin_headers: dict[str, str], method: str
):
    response = client.request(method, f"{SERVICE_KEYS}/not-a-uuid", json={}, headers=admin_headers)

    assert_422(response, ["path", "api_key_id"])


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 101}, ["query", "limit"]),
        ({"limit": "ten"}, ["query", "limit"]),
        ({"offset": -1}, ["query", "offset"]),
    ],
    ids=["limit-zero", "limit-over-100", "limit-not-int", "negative-offset"],
)
def test_session_paging_out_of_range_gives_422(
    client: httpx.Client,
    admin_headers: dict[str, str],
    workspace_ids: list[str],
    params: dict[str, Any],
    loc: list[str],
):
    response = client.get(
        "/api/v1/sessions",
        params=params,
        headers={**admin_headers, "X-Tenant-Id": workspace_ids[0]},
    )

    assert_422(response, loc)


def test_malformed_workspace_ids_filter_gives_422(
    client: httpx.Client, admin_headers: dict[str, str]
):
    response = client.get(SERVICE_KEYS, params={"workspace_ids": "nope"}, headers=admin_headers)

    assert_422(response, ["query", "workspace_ids", 0])
