"""Personal access tokens: list, create, delete, revoke and reinstate, the deprecated
``/api-key/current`` aliases, and who may call them (responses checked against the spec
by the validating client wherever the spec has the route)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bridge.emulator import Emulator, EmulatorClock
from tests.emulator.conftest import MintKey

PATS = "/api/v1/orgs/current/personal-access-tokens"
SERVICE_KEYS = "/api/v1/orgs/current/service-keys"
PAT_SHAPE = re.compile(r"^lsv2_pt_[0-9a-f]{32}_[0-9a-f]{10}$")
MakePat = Callable[..., dict[str, Any]]


@pytest.fixture
def make_pat(client: httpx.Client, admin_headers: dict[str, str]) -> MakePat:
    def make(**body: Any) -> dict[str, Any]:
        response = client.post(PATS, json=body, headers=admin_headers)
        assert response.status_code == 200, response.text
        created: dict[str, Any] = response.json()
        return created

    return make


def listed_ids(client: httpx.Client, headers: dict[str, str], path: str = PATS) -> set[str]:
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return {k["id"] for k in response.json()}


def works(client: httpx.Client, key: str) -> int:
    return client.get("/api/v1/orgs/current", headers={"X-API-Key": key}).status_code


def test_a_created_pat_has_the_pat_shape_and_no_roles_of_its_own(make_pat: MakePat):
    created = make_pat(description="mine")

    assert PAT_SHAPE.match(created["key"])
    assert created["short_key"].startswith("lsv2_pt_")
    assert created["key"][-4:] in created["short_key"]
    assert created["key"] not in created["short_key"]
    assert created["description"] == "mine"
    assert (created["access_scope"], created["role_id"], created["revoked_at"]) == (
        None,
        None,
        None,
    )


def test_pats_are_listed_apart_from_service_keys(
    client: httpx.Client, admin_headers: dict[str, str], make_pat: MakePat, mint_key: MintKey
):
    pat, key = make_pat(), mint_key()

    pats = listed_ids(client, admin_headers)
    keys = listed_ids(client, admin_headers, SERVICE_KEYS)

    assert pat["id"] in pats
    assert key["id"] not in pats
    assert pat["id"] not in keys


def test_a_pat_authenticates_and_falls_back_to_its_default_workspace(
    client: httpx.Client, make_pat: MakePat, workspace_ids: list[str]
):
    plain = make_pat()
    defaulted = make_pat(default_workspace_id=workspace_ids[1])

    first = client.get("/api/v1/sessions", headers={"X-API-Key": plain["key"]}).json()
    second = client.get("/api/v1/sessions", headers={"X-API-Key": defaulted["key"]}).json()

    assert {p["tenant_id"] for p in first} == {workspace_ids[0]}
    assert {p["tenant_id"] for p in second} == {workspace_ids[1]}
    assert defaulted["default_workspace_name"] == "Staging"


def test_an_unknown_default_workspace_gives_422(
    client: httpx.Client, admin_headers: dict[str, str]
):
    response = client.post(
        PATS,
        json={"default_workspace_id": "00000000-0000-4000-8000-000000000000"},
        headers=admin_headers,
    )

    assert response.status_code == 422


def test_a_pat_can_manage_its_users_tokens(client: httpx.Client, make_pat: MakePat):
    own = {"X-API-Key": make_pat()["key"]}

    created = client.post(PATS, json={"description": "by a pat"}, headers=own)

    assert created.status_code == 200
    assert created.json()["id"] in listed_ids(client, own)


def test_service_keys_other_than_org_admins_may_not_touch_pats(
    client: httpx.Client, mint_key: MintKey, workspace_ids: list[str]
):
    for key in (mint_key(), mint_key(workspaces=[workspace_ids[0]])):
        headers = {"X-API-Key": key["key"]}

        assert client.get(PATS, headers=headers).status_code == 403
        assert client.post(PATS, json={}, headers=headers).status_code == 403


def test_pat_routes_authenticate_like_every_other_route(client: httpx.Client):
    assert client.get(PATS).status_code == 401
    assert client.post(PATS, json={}, headers={"X-API-Key": "nope"}).status_code == 401


def test_create_needs_a_body_on_the_current_route(
    client: httpx.Client, admin_headers: dict[str, str]
):
    assert client.post(PATS, headers=admin_headers).status_code == 422


def test_a_deleted_pat_stops_working_and_leaves_the_list(
    client: httpx.Client, admin_headers: dict[str, str], make_pat: MakePat
):
    created = make_pat()
    assert works(client, created["key"]) == 200

    deleted = client.delete(f"{PATS}/{created['id']}", headers=admin_headers)
    again = client.delete(f"{PATS}/{created['id']}", headers=admin_headers)

    assert deleted.status_code == 200
    assert deleted.json()["id"] == created["id"]
    assert again.status_code == 404
    assert works(client, created["key"]) == 401
    assert created["id"] not in listed_ids(client, admin_headers)


def test_key_routes_and_pat_routes_do_not_delete_each_others_keys(
    client: httpx.Client, admin_headers: dict[str, str], make_pat: MakePat, mint_key: MintKey
):
    pat, key = make_pat(), mint_key()

    assert client.delete(f"{SERVICE_KEYS}/{pat['id']}", headers=admin_headers).status_code == 404
    assert client.delete(f"{PATS}/{key['id']}", headers=admin_headers).status_code == 404
    assert (works(client, pat["key"]), works(client, key["key"])) == (200, 200)


def test_revocation_stops_a_pat_keeps_it_listed_and_reinstating_restores_it(
    client: httpx.Client, admin_headers: dict[str, str], make_pat: MakePat
):
    created = make_pat()
    revocation = f"{PATS}/{created['id']}/revocation"

    revoked = client.post(revocation, headers=admin_headers)
    while_revoked = works(client, created["key"])
    listing = {k["id"]: k for k in client.get(PATS, headers=admin_headers).json()}
    reinstated = client.delete(revocation, headers=admin_headers)
    noop = client.delete(revocation, headers=admin_headers)

    assert (revoked.status_code, revoked.content) == (204, b"")
    assert "content-type" not in revoked.headers
    assert while_revoked == 401
    assert listing[created["id"]]["revoked_at"] is not None
    assert (reinstated.status_code, noop.status_code) == (204, 204)
    assert works(client, created["key"]) == 200


def test_revoking_an_unknown_pat_or_a_service_key_gives_problem_details(
    client: httpx.Client, admin_headers: dict[str, str], mint_key: MintKey
):
    for target in ("00000000-0000-4000-8000-000000000000", mint_key()["id"]):
        response = client.post(f"{PATS}/{target}/revocation", headers=admin_headers)

        assert response.status_code == 404
        assert set(response.json()) == {"type", "title", "status", "detail"}
        assert response.json()["status"] == 404


def test_a_reinstated_pat_past_its_expiry_stays_expired(
    client: httpx.Client, admin_headers: dict[str, str], make_pat: MakePat, clock: EmulatorClock
):
    created = make_pat(expires_at=(clock.now() + timedelta(hours=1)).isoformat())
    revocation = f"{PATS}/{created['id']}/revocation"
    client.post(revocation, headers=admin_headers)
    clock.advance(timedelta(hours=2))

    client.delete(revocation, headers=admin_headers)

    assert works(client, created["key"]) == 401


def test_a_revoked_pat_is_accepted_for_the_auth_cache_delay(
    client: httpx.Client, admin_headers: dict[str, str], make_pat: MakePat, emulator: Emulator
):
    created = make_pat()
    emulator.set_auth(auth_cache_delay_s=20)
    emulator.advance(20)  # past the new-key window

    client.post(f"{PATS}/{created['id']}/revocation", headers=admin_headers)
    cached = works(client, created["key"])
    emulator.advance(20)

    assert (cached, works(client, created["key"])) == (200, 401)


def test_members_listing_shows_every_token_to_admins_only(
    client: httpx.Client, admin_headers: dict[str, str], make_pat: MakePat, mint_key: MintKey
):
    created = make_pat()
    members = "/api/v1/orgs/current/members/personal-access-tokens"

    assert created["id"] in listed_ids(client, admin_headers, members)
    assert client.get(members, headers={"X-API-Key": mint_key()["key"]}).status_code == 403


def test_deprecated_current_routes_list_create_and_delete_pats(
    client: httpx.Client, admin_headers: dict[str, str]
):
    created = client.post("/api-key/current", headers=admin_headers)
    listed = listed_ids(client, admin_headers, "/api/v1/api-key/current")
    deleted = client.delete(
        f"/api/v1/api-key/current/{created.json()['id']}", headers=admin_headers
    )

    assert created.status_code == 200
    assert created.json()["description"] == "Default API key"
    assert PAT_SHAPE.match(created.json()["key"])
    assert created.json()["id"] in listed
    assert deleted.status_code == 200
    assert created.json()["id"] not in listed_ids(client, admin_headers)


def test_inspection_tells_pats_from_service_keys_without_secrets(
    client: httpx.Client, make_pat: MakePat
):
    created = make_pat()

    keys = {k["id"]: k for k in client.get("/_emulator/keys").json()}

    assert keys[created["id"]]["kind"] == "pat"
    assert keys[created["id"]]["revoked"] is False
    assert created["key"] not in str(keys)
