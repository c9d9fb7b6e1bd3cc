"""Authentication, workspace scoping and permissions."""

from __future__ import annotations

import httpx
import pytest

from bridge.emulator import Emulator
from tests.emulator.conftest import MintKey

SERVICE_KEYS = "/api/v1/orgs/current/service-keys"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "lsv2_sk_00000000000000000000000000000000_0000000000"},
        {"Authorization": "Bearer not-a-jwt"},
    ],
    ids=["missing", "blank", "unknown", "bearer-only"],
)
def test_request_without_a_valid_key_is_rejected_with_401(
    client: httpx.Client, headers: dict[str, str]
):
    response = client.get("/api/v1/workspaces", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token"}


def test_api_key_header_name_is_case_insensitive(
    client: httpx.Client, emulator: Emulator, workspace_ids: list[str]
):
    response = client.get(
        "/sessions",
        headers={"x-api-key": emulator.bootstrap["admin_key"], "x-tenant-id": workspace_ids[0]},
    )

    assert response.status_code == 200


def test_info_is_public(client: httpx.Client):
    response = client.get("/api/v1/info")

    assert response.status_code == 200
    assert response.json()["version"]


def test_org_scoped_key_without_tenant_gets_403_with_the_error_marker(
    client: httpx.Client, admin_headers: dict[str, str]
):
    for path in ("/api/v1/sessions", "/api/v1/api-key"):
        response = client.get(path, headers=admin_headers)

        assert response.status_code == 403
        assert response.json()["error"] == "org_scoped_key_requires_workspace"
        assert isinstance(response.json()["detail"], str)


def test_org_scoped_key_with_tenant_reaches_every_workspace(
    client: httpx.Client, admin_headers: dict[str, str], workspace_ids: list[str]
):
    for ws in workspace_ids:
        response = client.get("/api/v1/sessions", headers={**admin_headers, "X-Tenant-Id": ws})

        assert response.status_code == 200
        assert {p["tenant_id"] for p in response.json()} == {ws}


def test_workspace_scoped_key_without_tenant_falls_back_to_its_first_workspace(
    client: httpx.Client, mint_key: MintKey, workspace_ids: list[str]
):
    created = mint_key(workspaces=[workspace_ids[1], workspace_ids[0]])

    response = client.get("/api/v1/sessions", headers={"X-API-Key": created["key"]})

    assert response.status_code == 200
    assert {p["tenant_id"] for p in response.json()} == {workspace_ids[1]}


@pytest.mark.parametrize("tenant", ["other", "unknown", "malformed"])
def test_workspace_scoped_key_with_an_unreachable_tenant_gets_403(
    client: httpx.Client, mint_key: MintKey, workspace_ids: list[str], tenant: str
):
    created = mint_key(workspaces=[workspace_ids[0]])
    tenant_id = {
        "other": workspace_ids[1],
        "unknown": "00000000-0000-4000-8000-000000000000",
        "malformed": "not-a-uuid",
    }[tenant]

    response = client.get(
        "/api/v1/sessions", headers={"X-API-Key": created["key"], "X-Tenant-Id": tenant_id}
    )

    assert response.status_code == 403
    assert "error" not in response.json()
    assert isinstance(response.json()["detail"], str)


def test_mismatched_organization_header_gets_403(
    client: httpx.Client, admin_headers: dict[str, str], emulator: Emulator
):
    wrong = client.get(
        "/api/v1/workspaces",
        headers={**admin_headers, "X-Organization-Id": "00000000-0000-4000-8000-000000000000"},
    )
    right = client.get(
        "/api/v1/workspaces",
        headers={**admin_headers, "X-Organization-Id": emulator.bootstrap["organization_id"]},
    )

    assert wrong.status_code == 403
    assert right.status_code == 200


@pytest.mark.parametrize("scope", ["org-user", "workspace-admin"])
def test_non_admin_key_cannot_manage_org_service_keys(
    client: httpx.Client, mint_key: MintKey, workspace_ids: list[str], scope: str
):
    body = {} if scope == "org-user" else {"workspaces": [workspace_ids[0]]}
    headers = {"X-API-Key": mint_key(**body)["key"]}
    victim = mint_key()

    responses = [
        client.get(SERVICE_KEYS, headers=headers),
        client.post(SERVICE_KEYS, json={}, headers=headers),
        client.delete(f"{SERVICE_KEYS}/{victim['id']}", headers=headers),
        client.patch(f"{SERVICE_KEYS}/{victim['id']}", json={}, headers=headers),
    ]

    assert [r.status_code for r in responses] == [403] * 4
    assert all(isinstance(r.json()["detail"], str) for r in responses)


def test_promoted_key_can_manage_org_service_keys(
    client: httpx.Client, admin_headers: dict[str, str], emulator: Emulator, mint_key: MintKey
):
    created = mint_key()
    client.patch(
        f"{SERVICE_KEYS}/{created['id']}",
        json={"org_role_id": emulator.bootstrap["roles"]["ORGANIZATION_ADMIN"]},
        headers=admin_headers,
    )

    response = client.get(SERVICE_KEYS, headers={"X-API-Key": created["key"]})

    assert response.status_code == 200


def test_workspace_viewer_key_cannot_manage_workspace_keys(
    client: httpx.Client, emulator: Emulator, mint_key: MintKey, workspace_ids: list[str]
):
    viewer = mint_key(
        workspaces=[workspace_ids[0]], role_id=emulator.bootstrap["roles"]["WORKSPACE_VIEWER"]
    )
    headers = {"X-API-Key": viewer["key"]}

    listed = client.get("/api/v1/api-key", headers=headers)
    created = client.post("/api/v1/api-key", json={}, headers=headers)
    sessions = client.get("/api/v1/sessions", headers=headers)

    assert (listed.status_code, created.status_code) == (403, 403)
    assert sessions.status_code == 200


def test_workspace_admin_key_manages_keys_of_its_workspace(
    client: httpx.Client, mint_key: MintKey, workspace_ids: list[str]
):
    admin = mint_key(workspaces=[workspace_ids[0]])
    headers = {"X-API-Key": admin["key"]}

    created = client.post("/api/v1/api-key", json={"description": "app"}, headers=headers)
    listed = client.get("/api/v1/api-key", headers=headers)
    deleted = client.delete(f"/api/v1/api-key/{created.json()['id']}", headers=headers)
    again = client.delete(f"/api/v1/api-key/{created.json()['id']}", headers=headers)

    assert created.status_code == 200
    assert created.json()["workspace_names"] == ["Production"]
    assert created.json()["access_scope"] == "workspace"
    assert created.json()["id"] in {k["id"] for k in listed.json()}
    assert "key" not in listed.json()[0]
    assert deleted.status_code == 200
    assert again.status_code == 404


def test_workspace_key_route_cannot_delete_a_key_of_another_workspace(
    client: httpx.Client, admin_headers: dict[str, str], mint_key: MintKey, workspace_ids: list[str]
):
    other = mint_key(workspaces=[workspace_ids[1]])

    response = client.delete(
        f"/api/v1/api-key/{other['id']}", headers={**admin_headers, "X-Tenant-Id": workspace_ids[0]}
    )

    assert response.status_code == 404


def test_workspace_key_create_without_body_uses_the_default(
    client: httpx.Client, admin_headers: dict[str, str], workspace_ids: list[str]
):
    response = client.post(
        "/api/v1/api-key", headers={**admin_headers, "X-Tenant-Id": workspace_ids[1]}
    )

    assert response.status_code == 200
    assert response.json()["description"] == "Default API key"
    assert response.json()["workspace_names"] == ["Staging"]
    assert response.json()["read_only"] is False
