"""The ingest routes over raw HTTP: the same authentication as every workspace route,
``last_used_at`` on every accepted call, the body formats and their errors."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import zstandard

from bridge.emulator import Emulator, EmulatorClock
from tests.emulator.conftest import MintKey

BOUNDARY = "b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(*parts: tuple[str, bytes]) -> bytes:
    """A body framed the way the SDK frames it."""
    chunks = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n'
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in parts
    ]
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


def run(run_id: uuid.UUID, session: str = "raw") -> bytes:
    return json.dumps({"id": str(run_id), "name": "r", "session_name": session}).encode()


RUN_ID = uuid.UUID("01a23390-0e60-739d-81bf-03f4aaac520c")
ROUTES = [
    ("POST", "/runs/multipart", multipart((f"post.{RUN_ID}", run(RUN_ID))), MULTIPART),
    ("POST", "/runs/batch", json.dumps({"post": [{"id": str(RUN_ID)}]}).encode(), None),
    ("POST", "/runs", run(RUN_ID), None),
    ("PATCH", f"/runs/{RUN_ID}", b'{"outputs": {}}', None),
    ("POST", "/sessions", b'{"name": "a-project"}', None),
]
ROUTE_IDS = ["multipart", "batch", "run", "patch", "session"]


def send(
    client: httpx.Client,
    route: tuple[str, str, bytes, str | None],
    headers: dict[str, str],
    prefix: str = "/api/v1",
) -> httpx.Response:
    method, path, body, content_type = route
    sent = {**headers, "Content-Type": content_type or "application/json"}
    return client.request(method, prefix + path, content=body, headers=sent)


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("prefix", ["/api/v1", ""], ids=["prefixed", "bare"])
def test_every_ingest_route_accepts_a_workspace_key_and_moves_last_used_at(
    client: httpx.Client,
    clock: EmulatorClock,
    mint_key: MintKey,
    workspace_ids: list[str],
    route: tuple[str, str, bytes, str | None],
    prefix: str,
):
    created = mint_key(workspaces=[workspace_ids[0]])
    used_at = clock.set(datetime(2032, 1, 1, tzinfo=UTC))

    response = send(client, route, {"X-API-Key": created["key"]}, prefix)

    assert response.status_code in (200, 202), response.text
    keys = {k["id"]: k for k in client.get("/_emulator/keys").json()}
    assert datetime.fromisoformat(keys[created["id"]]["last_used_at"]) >= used_at


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "lsv2_sk_00000000000000000000000000000000_0000000000"}],
    ids=["no-key", "unknown-key"],
)
def test_every_ingest_route_rejects_a_bad_key_with_401_before_reading_the_body(
    client: httpx.Client,
    emulator: Emulator,
    route: tuple[str, str, bytes, str | None],
    headers: dict[str, str],
):
    method, path, _, content_type = route

    response = send(client, (method, path, b"not even json", content_type), headers)

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token"}
    assert emulator.run_count() == 0


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_every_ingest_route_gives_an_org_scoped_key_without_tenant_the_403_marker(
    client: httpx.Client, admin_headers: dict[str, str], route: tuple[str, str, bytes, str | None]
):
    response = send(client, route, admin_headers)

    assert response.status_code == 403
    assert response.json()["error"] == "org_scoped_key_requires_workspace"


def test_a_deleted_key_is_refused_by_the_ingest_routes(
    client: httpx.Client, admin_headers: dict[str, str], mint_key: MintKey, emulator: Emulator
):
    created = mint_key(workspaces=[emulator.bootstrap["workspace_ids"][0]])
    client.delete(f"/api/v1/orgs/current/service-keys/{created['id']}", headers=admin_headers)

    response = send(client, ROUTES[0], {"X-API-Key": created["key"]})

    assert response.status_code == 401
    assert emulator.run_count() == 0


@pytest.fixture
def ws_headers(mint_key: MintKey, workspace_ids: list[str]) -> dict[str, str]:
    return {"X-API-Key": mint_key(workspaces=[workspace_ids[0]])["key"]}


def test_multipart_counts_posts_and_patches_and_ignores_side_parts(
    client: httpx.Client, emulator: Emulator, ws_headers: dict[str, str]
):
    first, second = uuid.uuid4(), uuid.uuid4()
    body = multipart(
        (f"post.{first}", run(first)),
        (f"post.{first}.inputs", b'{"q": 1}'),
        (f"patch.{first}", b'{"end_time": "2030-01-01T00:00:00Z"}'),
        (f"post.{second}", run(second, session="other")),
        (f"attachment.{second}.picture", b"\x89PNG"),
        (f"feedback.{second}", b'{"trace_id": "x"}'),
    )

    response = client.post(
        "/runs/multipart", content=body, headers={**ws_headers, "Content-Type": MULTIPART}
    )

    assert response.status_code == 202
    runs = client.get("/_emulator/runs").json()
    assert (runs["runs"], runs["updates"]) == (2, 1)
    by_name = {s["session_name"]: s for s in runs["sessions"]}
    assert (by_name["raw"]["runs"], by_name["raw"]["updates"]) == (1, 1)
    assert by_name["other"]["runs"] == 1
    assert emulator.run_count(session="other") == 1


@pytest.mark.parametrize("encoding", ["zstd", "gzip"])
def test_compressed_multipart_is_decoded(
    client: httpx.Client, emulator: Emulator, ws_headers: dict[str, str], encoding: str
):
    run_id = uuid.uuid4()
    plain = multipart((f"post.{run_id}", run(run_id)))
    body = (
        zstandard.ZstdCompressor().compress(plain) if encoding == "zstd" else gzip.compress(plain)
    )

    response = client.post(
        "/runs/multipart",
        content=body,
        headers={**ws_headers, "Content-Type": MULTIPART, "Content-Encoding": encoding},
    )

    assert response.status_code == 202
    assert emulator.run_count() == 1


def test_a_run_posted_twice_counts_once(
    client: httpx.Client, emulator: Emulator, ws_headers: dict[str, str]
):
    body = {"post": [{"id": str(RUN_ID), "session_name": "retry"}]}

    for _ in range(2):
        assert client.post("/runs/batch", json=body, headers=ws_headers).status_code == 202

    assert emulator.run_count(session="retry") == 1


def test_a_run_naming_a_new_project_creates_it(
    client: httpx.Client, ws_headers: dict[str, str], workspace_ids: list[str]
):
    client.post("/runs", json={"id": str(RUN_ID), "session_name": "fresh"}, headers=ws_headers)

    listed = client.get("/sessions", params={"name": "fresh"}, headers=ws_headers).json()

    assert [(p["name"], p["tenant_id"]) for p in listed] == [("fresh", workspace_ids[0])]


def test_creating_a_project_twice_conflicts_unless_upserting(
    client: httpx.Client, ws_headers: dict[str, str]
):
    first = client.post("/sessions", json={"name": "twice"}, headers=ws_headers)
    again = client.post("/sessions", json={"name": "twice"}, headers=ws_headers)
    upsert = client.post(
        "/sessions", params={"upsert": "true"}, json={"name": "twice"}, headers=ws_headers
    )

    assert first.status_code == 200
    assert again.status_code == 409
    assert upsert.status_code == 200
    assert upsert.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/runs/multipart", b"x", {"Content-Type": "application/json"}, 415),
        ("/runs/multipart", b"x", {"Content-Type": "multipart/form-data"}, 415),
        ("/runs/multipart", b"--b0undary\r\nno end", {"Content-Type": MULTIPART}, 422),
        (
            "/runs/multipart",
            multipart(("post.not-a-uuid", b"{}")),
            {"Content-Type": MULTIPART},
            422,
        ),
        (
            "/runs/multipart",
            multipart((f"shout.{RUN_ID}", b"{}")),
            {"Content-Type": MULTIPART},
            422,
        ),
        ("/runs/multipart", multipart((f"post.{RUN_ID}", b"{")), {"Content-Type": MULTIPART}, 422),
        ("/runs/batch", b"[1, 2]", {}, 422),
        ("/runs/batch", b'{"post": [{"name": "no id"}]}', {}, 422),
        ("/runs", b"{", {}, 422),
        ("/runs", b"{}", {"Content-Encoding": "br"}, 415),
        ("/runs", b"not gzip", {"Content-Encoding": "gzip"}, 400),
        ("/sessions", b"{}", {}, 422),
    ],
    ids=[
        "not-multipart",
        "no-boundary",
        "no-closing-delimiter",
        "bad-run-id",
        "unknown-event",
        "bad-run-json",
        "batch-not-an-object",
        "batch-run-without-id",
        "run-bad-json",
        "unknown-encoding",
        "corrupt-gzip",
        "session-without-name",
    ],
)
def test_unreadable_ingest_bodies_are_refused(
    client: httpx.Client,
    emulator: Emulator,
    ws_headers: dict[str, str],
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
):
    response = client.post(path, content=body, headers={**ws_headers, **headers})

    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str | list)
    assert emulator.run_count() == 0


def test_patch_with_a_bad_run_id_in_the_path_gives_422(
    client: httpx.Client, ws_headers: dict[str, str]
):
    assert client.patch("/runs/nope", json={}, headers=ws_headers).status_code == 422


def test_run_counts_are_inspectable_and_reset(
    client: httpx.Client, emulator: Emulator, ws_headers: dict[str, str]
):
    client.post("/runs", json={"id": str(RUN_ID)}, headers=ws_headers)
    before = client.get("/_emulator/runs").json()

    client.post("/_emulator/reset")
    after = client.get("/_emulator/runs").json()

    assert before["runs"] == 1
    assert before["sessions"][0]["session_name"] == "default"
    assert list(before["by_key"].values()) == [1]
    assert after == {"runs": 0, "updates": 0, "sessions": [], "by_key": {}}
