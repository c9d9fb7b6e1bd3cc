"""The official ``langsmith`` SDK traces into the emulator over a real socket, the way a
consumer of a published key does, and a revoked key shows as failed uploads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from langsmith.utils import LangSmithAuthError, LangSmithUserError

from bridge.emulator import Emulator, EmulatorClock
from tests.emulator.conftest import MintKey, Seen
from tests.emulator.sdk_support import PROJECT, tracer

pytestmark = pytest.mark.usefixtures("no_sdk_profile")

SERVICE_KEYS = "/api/v1/orgs/current/service-keys"


def ingest_calls(seen: list[Seen]) -> list[tuple[str, str, str | None, int]]:
    return [
        (s.method, s.route, s.content_encoding, s.status)
        for s in seen
        if s.route.startswith(("/runs", "/sessions"))
    ]


def test_info_advertises_multipart_and_zstd_so_the_sdk_traces_as_on_saas(
    emulator: Emulator, mint_key: MintKey, workspace_ids: list[str]
):
    key = mint_key(workspaces=[workspace_ids[0]])["key"]
    with tracer(emulator, key) as sdk:
        info = sdk.client.info

    assert info.batch_ingest_config is not None
    assert info.batch_ingest_config["use_multipart_endpoint"] is True
    assert info.instance_flags["zstd_compression_enabled"] is True


def test_traced_runs_arrive_zstd_compressed_and_move_last_used_at(
    emulator: Emulator,
    clock: EmulatorClock,
    mint_key: MintKey,
    workspace_ids: list[str],
    seen: list[Seen],
):
    created = mint_key(workspaces=[workspace_ids[0]])
    used_from = clock.set(datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC))

    with tracer(emulator, created["key"]) as sdk:
        sdk.trace(3)

    assert sdk.errors == []
    assert emulator.run_count(session=PROJECT) == 3
    assert emulator.run_count(key_id=created["id"]) == 3
    assert emulator.run_count(workspace_id=workspace_ids[1]) == 0
    assert ("POST", "/runs/multipart", "zstd", 202) in ingest_calls(seen)
    record = emulator.state.get_key(created["id"])
    assert record is not None
    assert record.last_used_at is not None
    assert record.last_used_at >= used_from


def test_traced_runs_arrive_as_plain_multipart_without_compression(
    emulator: Emulator,
    mint_key: MintKey,
    workspace_ids: list[str],
    seen: list[Seen],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("LANGSMITH_DISABLE_RUN_COMPRESSION", "true")
    key = mint_key(workspaces=[workspace_ids[1]])["key"]

    with tracer(emulator, key) as sdk:
        sdk.trace(2)

    assert sdk.errors == []
    assert emulator.run_count(workspace_id=workspace_ids[1], session=PROJECT) == 2
    assert ("POST", "/runs/multipart", None, 202) in ingest_calls(seen)


def test_an_org_scoped_key_traces_into_the_workspace_it_names(
    emulator: Emulator, mint_key: MintKey, workspace_ids: list[str]
):
    key = mint_key()["key"]

    with tracer(
        emulator, key, workspace_id=workspace_ids[1], api_url=f"{emulator.url}/api/v1"
    ) as sdk:
        sdk.trace(1)

    assert sdk.errors == []
    assert emulator.run_count(workspace_id=workspace_ids[1]) == 1


def test_runs_sent_one_at_a_time_use_post_runs_and_patch(
    emulator: Emulator, mint_key: MintKey, workspace_ids: list[str], seen: list[Seen]
):
    key = mint_key(workspaces=[workspace_ids[0]])["key"]
    run_id = uuid.uuid4()

    with tracer(emulator, key, auto_batch_tracing=False) as sdk:
        sdk.client.create_run("one", {"q": 1}, "chain", id=run_id, project_name="singles")
        sdk.client.update_run(run_id, outputs={"a": 2})

    runs = emulator.traces.inspect()
    assert (runs["runs"], runs["updates"]) == (1, 1)
    assert emulator.run_count(session="singles") == 1
    assert [(m, r, s) for m, r, _, s in ingest_calls(seen)] == [
        ("POST", "/runs", 202),
        ("PATCH", f"/runs/{run_id}", 202),
    ]


def test_batch_ingest_uses_runs_batch(
    emulator: Emulator, mint_key: MintKey, workspace_ids: list[str], seen: list[Seen]
):
    key = mint_key(workspaces=[workspace_ids[0]])["key"]
    run_id = uuid.uuid4()
    start = datetime.now(UTC)
    run = {
        "id": str(run_id),
        "trace_id": str(run_id),
        "dotted_order": f"{start:%Y%m%dT%H%M%S%fZ}{run_id}",
        "start_time": start,
        "name": "batched",
        "run_type": "chain",
        "inputs": {},
        "session_name": "batches",
    }

    with tracer(emulator, key) as sdk:
        sdk.client.batch_ingest_runs(create=[run])

    assert emulator.run_count(session="batches") == 1
    assert ("POST", "/runs/batch", None, 202) in ingest_calls(seen)


def test_sdk_creates_a_project_and_then_finds_it(
    emulator: Emulator, mint_key: MintKey, workspace_ids: list[str]
):
    key = mint_key(workspaces=[workspace_ids[0]])["key"]

    with tracer(emulator, key) as sdk:
        created = sdk.client.create_project("made-by-sdk", description="d")
        found = sdk.client.read_project(project_name="made-by-sdk")
        names = {p.name for p in sdk.client.list_projects()}

    assert found.id == created.id
    assert str(created.tenant_id) == workspace_ids[0]
    assert {"made-by-sdk", "default", "bridge-demo"} <= names


def test_a_deleted_key_makes_the_sdk_uploads_fail_and_no_run_arrives(
    emulator: Emulator,
    mint_key: MintKey,
    admin_headers: dict[str, str],
    workspace_ids: list[str],
    client: httpx.Client,
):
    created = mint_key(workspaces=[workspace_ids[0]])

    with tracer(emulator, created["key"]) as sdk:
        sdk.trace(1)
        deleted = client.delete(f"{SERVICE_KEYS}/{created['id']}", headers=admin_headers)
        sdk.trace(2)

    assert deleted.status_code == 200
    assert emulator.run_count(key_id=created["id"]) == 1
    assert sdk.errors
    assert all(isinstance(error, LangSmithAuthError) for error in sdk.errors)
    assert created["key"] not in " ".join(str(error) for error in sdk.errors)


def test_an_org_scoped_key_without_a_workspace_cannot_trace(emulator: Emulator):
    with tracer(emulator, emulator.bootstrap["admin_key"]) as sdk:
        sdk.trace(1)

    assert emulator.run_count() == 0
    assert sdk.errors
    assert all(isinstance(error, LangSmithUserError) for error in sdk.errors)
