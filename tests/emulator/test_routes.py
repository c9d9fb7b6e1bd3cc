"""Routes, aliases and the read-only endpoints: info, workspaces, org, roles, sessions."""

from __future__ import annotations

import http.client
import json

import httpx
import pytest

from bridge.emulator import Emulator
from tests.emulator.conftest import MintKey
from tests.openapi import validate_body


@pytest.mark.parametrize(
    "route",
    ["/info", "/workspaces", "/orgs/current", "/orgs/current/info", "/orgs/current/roles"],
)
def test_every_route_answers_with_and_without_the_api_prefix(
    client: httpx.Client, admin_headers: dict[str, str], route: str
):
    prefixed = client.get(f"/api/v1{route}", headers=admin_headers)
    bare = client.get(route, headers=admin_headers)

    assert prefixed.status_code == bare.status_code == 200
    assert prefixed.json() == bare.json()


def test_prefix_less_alias_works_for_writes(client: httpx.Client, admin_headers: dict[str, str]):
    created = client.post("/orgs/current/service-keys", json={}, headers=admin_headers)
    deleted = client.delete(
        f"/orgs/current/service-keys/{created.json()['id']}", headers=admin_headers
    )

    assert (created.status_code, deleted.status_code) == (200, 200)


def test_trailing_slash_is_tolerated(client: httpx.Client, admin_headers: dict[str, str]):
    assert client.get("/api/v1/workspaces/", headers=admin_headers).status_code == 200


def test_unknown_route_gives_404_and_wrong_method_405(
    client: httpx.Client, admin_headers: dict[str, str]
):
    missing = client.get("/api/v1/nothing-here", headers=admin_headers)
    wrong_method = client.put("/api/v1/orgs/current/service-keys", json={}, headers=admin_headers)

    assert missing.status_code == 404
    assert wrong_method.status_code == 405


def test_org_scoped_key_sees_every_workspace(
    client: httpx.Client, admin_headers: dict[str, str], emulator: Emulator
):
    response = client.get("/api/v1/workspaces", headers=admin_headers)

    assert [(w["id"], w["display_name"]) for w in response.json()] == [
        (w["id"], w["name"]) for w in emulator.bootstrap["workspaces"]
    ]
    assert {w["organization_id"] for w in response.json()} == {
        emulator.bootstrap["organization_id"]
    }


def test_workspace_scoped_key_sees_only_its_workspaces(
    client: httpx.Client, mint_key: MintKey, workspace_ids: list[str]
):
    headers = {"X-API-Key": mint_key(workspaces=[workspace_ids[1]])["key"]}

    listed = client.get("/api/v1/workspaces", headers=headers)
    own = client.get(f"/api/v1/workspaces/{workspace_ids[1]}", headers=headers)
    other = client.get(f"/api/v1/workspaces/{workspace_ids[0]}", headers=headers)

    assert [w["id"] for w in listed.json()] == [workspace_ids[1]]
    assert own.status_code == 200
    assert own.json()["display_name"] == "Staging"
    assert other.status_code == 404


def test_organization_endpoints_describe_the_emulated_org(
    client: httpx.Client, admin_headers: dict[str, str], emulator: Emulator
):
    org = client.get("/api/v1/orgs/current", headers=admin_headers).json()
    info = client.get("/api/v1/orgs/current/info", headers=admin_headers).json()

    assert org["id"] == info["id"] == emulator.bootstrap["organization_id"]
    assert info["is_personal"] is False


def test_roles_list_the_system_roles_with_bootstrap_ids(
    client: httpx.Client, admin_headers: dict[str, str], emulator: Emulator
):
    roles = client.get("/api/v1/orgs/current/roles", headers=admin_headers).json()

    by_name = {r["name"]: r for r in roles}
    assert {name: r["id"] for name, r in by_name.items()} == emulator.bootstrap["roles"]
    assert by_name["ORGANIZATION_ADMIN"]["display_name"] == "Organization Admin"
    assert by_name["WORKSPACE_ADMIN"]["display_name"] == "Admin"
    assert by_name["WORKSPACE_EDITOR"]["display_name"] == "Editor"
    assert by_name["WORKSPACE_VIEWER"]["display_name"] == "Viewer"
    assert {r["access_scope"] for r in roles} == {"organization", "workspace"}


def test_sessions_are_seeded_and_paginated(
    client: httpx.Client, admin_headers: dict[str, str], workspace_ids: list[str]
):
    headers = {**admin_headers, "X-Tenant-Id": workspace_ids[0]}

    everything = client.get("/sessions", headers=headers).json()
    first = client.get("/sessions", params={"limit": 1}, headers=headers).json()
    second = client.get("/sessions", params={"limit": 1, "offset": 1}, headers=headers).json()
    beyond = client.get("/sessions", params={"offset": 5}, headers=headers).json()
    by_name = client.get("/sessions", params={"name": "default"}, headers=headers).json()

    assert len(everything) == 2
    assert first + second == everything
    assert beyond == []
    assert [p["name"] for p in by_name] == ["default"]


def test_connections_are_kept_alive_across_requests(emulator: Emulator):
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    try:
        connection.request("GET", "/api/v1/info")
        first = connection.getresponse()
        first_body = first.read()
        first_socket = connection.sock
        connection.request("GET", "/info")
        second = connection.getresponse()
        second_body = second.read()
        second_socket = connection.sock
    finally:
        connection.close()

    assert first.status == second.status == 200
    assert first.getheader("Content-Length") == str(len(first_body))
    validate_body("GET", "/api/v1/info", first.status, json.loads(first_body))
    assert json.loads(first_body) == json.loads(second_body)
    assert first_socket is not None
    assert first_socket is second_socket


def test_chunked_request_body_is_accepted(emulator: Emulator):
    body = json.dumps({"description": "chunked"}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    try:
        connection.request(
            "POST",
            "/api/v1/orgs/current/service-keys",
            body=iter([body[:5], body[5:]]),
            headers={"X-API-Key": emulator.bootstrap["admin_key"]},
            encode_chunked=True,
        )
        response = connection.getresponse()
        payload = json.loads(response.read())
    finally:
        connection.close()

    assert response.status == 200
    validate_body("POST", "/api/v1/orgs/current/service-keys", response.status, payload)
    assert payload["description"] == "chunked"
