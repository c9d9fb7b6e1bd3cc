"""Service keys: shape, one-time visibility, scopes, roles, expiry, deletion."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from bridge.emulator import Emulator, EmulatorClock
from tests.emulator.conftest import MintKey

KEY_SHAPE = re.compile(r"^lsv2_sk_[0-9a-f]{32}_[0-9a-f]{10}$")
SERVICE_KEYS = "/api/v1/orgs/current/service-keys"


def test_created_key_has_the_documented_shape_and_a_matching_short_key(mint_key: MintKey):
    created = mint_key(description="ci")

    key = created["key"]
    assert KEY_SHAPE.match(key)
    assert len(key) == 51
    assert created["short_key"] == f"lsv2_sk_{key[8:12]}...{key[-4:]}"
    assert key not in created["short_key"]
    assert created["description"] == "ci"


def test_full_key_appears_only_in_the_create_response(
    client: httpx.Client, admin_headers: dict[str, str], emulator: Emulator, mint_key: MintKey
):
    created = mint_key()

    listed = client.get(SERVICE_KEYS, headers=admin_headers)
    deleted = client.delete(f"{SERVICE_KEYS}/{created['id']}", headers=admin_headers)
    inspected = client.get("/_emulator/keys")

    for response in (listed, deleted, inspected):
        assert response.status_code == 200
        assert created["key"] not in response.text
        assert emulator.bootstrap["admin_key"] not in response.text
        assert '"key"' not in response.text


def test_emulator_stores_only_a_hash_of_each_key(emulator: Emulator, mint_key: MintKey):
    created = mint_key()

    record = emulator.state.get_key(created["id"])

    assert record is not None
    assert created["key"] not in repr(record)
    assert emulator.state.find_key(created["key"]) == record


def test_each_created_key_is_distinct(mint_key: MintKey):
    first, second = mint_key(), mint_key()

    assert first["key"] != second["key"]
    assert first["id"] != second["id"]


def test_org_scoped_key_defaults_to_organization_user_and_workspace_admin(
    emulator: Emulator, mint_key: MintKey
):
    roles = emulator.bootstrap["roles"]

    created = mint_key()

    assert created["access_scope"] == "organization"
    assert created["org_role_id"] == roles["ORGANIZATION_USER"]
    assert created["role_id"] == roles["WORKSPACE_ADMIN"]
    assert created["workspace_names"] is None
    assert created["description"] == "Default API key"
    assert created["read_only"] is False


def test_workspace_scoped_key_reports_workspace_names_and_no_org_role(
    emulator: Emulator, mint_key: MintKey, workspace_ids: list[str]
):
    created = mint_key(workspaces=workspace_ids)

    assert created["access_scope"] == "workspace"
    assert created["org_role_id"] is None
    assert created["workspace_names"] == ["Production", "Staging"]
    assert not any(ws in str(created) for ws in workspace_ids)
    assert created["role_id"] == emulator.bootstrap["roles"]["WORKSPACE_ADMIN"]


def test_read_only_without_role_id_gives_the_viewer_role(emulator: Emulator, mint_key: MintKey):
    created = mint_key(read_only=True)

    assert created["role_id"] == emulator.bootstrap["roles"]["WORKSPACE_VIEWER"]
    assert created["read_only"] is True


def test_expires_at_round_trips_exactly(mint_key: MintKey):
    created = mint_key(expires_at="2099-12-31T00:00:00Z")

    assert created["expires_at"] == "2099-12-31T00:00:00Z"


def test_expires_at_with_an_offset_comes_back_as_the_same_instant(mint_key: MintKey):
    created = mint_key(expires_at="2099-12-31T02:00:00+02:00")

    assert created["expires_at"] == "2099-12-31T00:00:00Z"


def test_expires_at_without_offset_is_taken_as_utc(mint_key: MintKey):
    created = mint_key(expires_at="2099-12-31T00:00:00")

    assert created["expires_at"] == "2099-12-31T00:00:00Z"


def test_successful_auth_sets_last_used_at_to_emulator_now(
    client: httpx.Client, clock: EmulatorClock, mint_key: MintKey
):
    created = mint_key()
    assert created["last_used_at"] is None
    used_at = clock.set(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))

    response = client.get("/api/v1/workspaces", headers={"X-API-Key": created["key"]})
    assert response.status_code == 200

    listed = {k["id"]: k for k in client.get("/_emulator/keys").json()}
    last_used = datetime.fromisoformat(listed[created["id"]]["last_used_at"])
    assert used_at <= last_used < used_at + timedelta(seconds=5)


def test_expired_key_is_rejected_with_401(
    client: httpx.Client, clock: EmulatorClock, mint_key: MintKey
):
    expiry = clock.now() + timedelta(hours=1)
    created = mint_key(expires_at=expiry.isoformat())
    headers = {"X-API-Key": created["key"]}
    assert client.get("/api/v1/workspaces", headers=headers).status_code == 200

    clock.advance(timedelta(hours=1))
    response = client.get("/api/v1/workspaces", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token"}


def test_expired_key_is_still_listed(
    client: httpx.Client, admin_headers: dict[str, str], clock: EmulatorClock, mint_key: MintKey
):
    created = mint_key(expires_at=(clock.now() + timedelta(minutes=1)).isoformat())
    clock.advance(120)

    listed = client.get(SERVICE_KEYS, headers=admin_headers).json()

    assert created["id"] in {k["id"] for k in listed}


def test_deleted_key_is_rejected_with_401(
    client: httpx.Client, admin_headers: dict[str, str], mint_key: MintKey
):
    created = mint_key()
    headers = {"X-API-Key": created["key"]}
    assert client.get("/api/v1/orgs/current", headers=headers).status_code == 200

    deleted = client.delete(f"{SERVICE_KEYS}/{created['id']}", headers=admin_headers)
    after = client.get("/api/v1/orgs/current", headers=headers)

    assert deleted.status_code == 200
    assert deleted.json()["id"] == created["id"]
    assert after.status_code == 401
    assert after.json() == {"detail": "Invalid token"}


def test_deleted_key_leaves_the_list(
    client: httpx.Client, admin_headers: dict[str, str], mint_key: MintKey
):
    created = mint_key()
    client.delete(f"{SERVICE_KEYS}/{created['id']}", headers=admin_headers)

    listed = client.get(SERVICE_KEYS, headers=admin_headers).json()

    assert created["id"] not in {k["id"] for k in listed}


def test_deleting_an_unknown_key_gives_404(client: httpx.Client, admin_headers: dict[str, str]):
    response = client.delete(
        f"{SERVICE_KEYS}/00000000-0000-4000-8000-000000000000", headers=admin_headers
    )

    assert response.status_code == 404
    assert isinstance(response.json()["detail"], str)


def test_deleting_a_key_twice_gives_404_the_second_time(
    client: httpx.Client, admin_headers: dict[str, str], mint_key: MintKey
):
    created = mint_key()
    url = f"{SERVICE_KEYS}/{created['id']}"

    assert client.delete(url, headers=admin_headers).status_code == 200
    assert client.delete(url, headers=admin_headers).status_code == 404


def test_patch_changes_roles_without_changing_the_key(
    client: httpx.Client, admin_headers: dict[str, str], emulator: Emulator, mint_key: MintKey
):
    roles = emulator.bootstrap["roles"]
    created = mint_key()

    response = client.patch(
        f"{SERVICE_KEYS}/{created['id']}",
        json={"role_id": roles["WORKSPACE_VIEWER"], "org_role_id": roles["ORGANIZATION_VIEWER"]},
        headers=admin_headers,
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["short_key"]) == (created["id"], created["short_key"])
    assert body["role_id"] == roles["WORKSPACE_VIEWER"]
    assert body["org_role_id"] == roles["ORGANIZATION_VIEWER"]
    still_valid = client.get("/api/v1/orgs/current", headers={"X-API-Key": created["key"]})
    assert still_valid.status_code == 200


def test_patching_an_unknown_key_gives_404(
    client: httpx.Client, admin_headers: dict[str, str], emulator: Emulator
):
    response = client.patch(
        f"{SERVICE_KEYS}/00000000-0000-4000-8000-000000000000",
        json={"role_id": emulator.bootstrap["roles"]["WORKSPACE_EDITOR"]},
        headers=admin_headers,
    )

    assert response.status_code == 404


def test_org_service_key_list_covers_both_scopes(
    client: httpx.Client, admin_headers: dict[str, str], mint_key: MintKey, workspace_ids: list[str]
):
    org_key = mint_key()
    ws_key = mint_key(workspaces=[workspace_ids[1]])

    listed = client.get(SERVICE_KEYS, headers=admin_headers).json()
    filtered = client.get(
        SERVICE_KEYS, params={"workspace_ids": [workspace_ids[0]]}, headers=admin_headers
    ).json()

    assert {org_key["id"], ws_key["id"]} <= {k["id"] for k in listed}
    assert ws_key["id"] not in {k["id"] for k in filtered}
    assert org_key["id"] in {k["id"] for k in filtered}
