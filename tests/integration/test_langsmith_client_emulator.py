"""LangSmithClient against the real local emulator, over real sockets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge import errors
from bridge.emulator import Emulator
from bridge.langsmith import LangSmithClient, RetryPolicy
from bridge.secrets import Secret

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator().start() as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[LangSmithClient]:
    emu.reset()
    sleeps: list[float] = []
    with LangSmithClient(
        emu.url + "/api/v1/",
        Secret(emu.bootstrap["admin_key"]),
        organization_id=emu.bootstrap["organization_id"],
        timeout=5.0,
        sleep=sleeps.append,
    ) as c:
        yield c


@pytest.fixture
def workspace_ids(emu: Emulator) -> list[str]:
    ids: list[str] = emu.bootstrap["workspace_ids"]
    return ids


def test_list_workspaces_returns_the_bootstrap_workspaces(
    client: LangSmithClient, workspace_ids: list[str]
) -> None:
    workspaces = client.list_workspaces()
    assert sorted(ws.id for ws in workspaces) == sorted(workspace_ids)
    assert all(ws.display_name and not ws.is_deleted for ws in workspaces)


def test_org_service_key_lifecycle_create_list_verify_delete(
    client: LangSmithClient, workspace_ids: list[str]
) -> None:
    expiry = datetime(2099, 12, 31, tzinfo=UTC)
    created = client.create_service_key(description="bridge:it:org", expires_at=expiry)
    assert created.info.description == "bridge:it:org"
    assert created.info.expires_at == expiry
    assert created.info.access_scope == "organization"
    assert created.key.reveal().startswith("lsv2_sk_")

    listed = {k.id: k for k in client.list_service_keys()}
    assert listed[created.info.id].short_key == created.info.short_key

    client.verify_key(created.key)
    client.verify_key(created.key, workspace_id=workspace_ids[0])

    client.delete_service_key(created.info.id)
    assert created.info.id not in {k.id for k in client.list_service_keys()}
    with pytest.raises(errors.LangSmithAuthError, match="verify_key -> HTTP 401"):
        client.verify_key(created.key)


def test_deleting_an_unknown_or_already_deleted_key_is_not_found(client: LangSmithClient) -> None:
    created = client.create_service_key(description="bridge:it:gone")
    client.delete_service_key(created.info.id)
    with pytest.raises(errors.LangSmithNotFound, match="delete_service_key -> HTTP 404"):
        client.delete_service_key(created.info.id)
    with pytest.raises(errors.LangSmithNotFound):
        client.delete_service_key(str(uuid.uuid4()))


def test_service_key_scoped_to_a_workspace(
    client: LangSmithClient, workspace_ids: list[str]
) -> None:
    first, second = workspace_ids[:2]
    created = client.create_service_key(description="bridge:it:ws", workspaces=[first])
    assert created.info.access_scope == "workspace"
    assert created.info.workspace_names is not None
    assert len(created.info.workspace_names) == 1
    client.verify_key(created.key, workspace_id=first)
    with pytest.raises(errors.LangSmithPermissionError) as info:
        client.verify_key(created.key, workspace_id=second)
    assert type(info.value) is errors.LangSmithPermissionError


def test_workspace_key_lifecycle(client: LangSmithClient, workspace_ids: list[str]) -> None:
    ws = workspace_ids[0]
    created = client.create_workspace_key(ws, description="bridge:it:wskey")
    assert created.info.id in {k.id for k in client.list_workspace_keys(ws)}
    client.verify_key(created.key, workspace_id=ws)

    client.delete_workspace_key(ws, created.info.id)
    assert created.info.id not in {k.id for k in client.list_workspace_keys(ws)}
    with pytest.raises(errors.LangSmithNotFound, match="delete_workspace_key -> HTTP 404"):
        client.delete_workspace_key(ws, created.info.id)


def test_org_scoped_key_on_a_workspace_route_without_tenant_is_workspace_required(
    client: LangSmithClient,
) -> None:
    # The public methods always send X-Tenant-Id on workspace routes, so this goes one
    # level down to show the emulator's real 403 body maps to WorkspaceRequired.
    with pytest.raises(errors.WorkspaceRequired, match="verify_key -> HTTP 403"):
        client._http.send("verify_key", "GET", "/sessions", "/sessions")


def test_unknown_key_is_an_auth_error_and_the_key_stays_out_of_it(emu: Emulator) -> None:
    bogus = "lsv2_sk_" + "0" * 32 + "_" + "0" * 10
    with (
        LangSmithClient(emu.url, Secret(bogus)) as c,
        pytest.raises(errors.LangSmithAuthError) as info,
    ):
        c.list_service_keys()
    assert bogus not in str(info.value)


def test_validation_error_from_the_server(client: LangSmithClient) -> None:
    with pytest.raises(errors.LangSmithValidationError, match="HTTP 422"):
        client.create_service_key(description="x", workspaces=["not-a-uuid"])


@pytest.mark.parametrize(
    ("switches", "expected"),
    [
        ({"fault_rate": 1.0, "fault_status": 503}, errors.LangSmithServerError),
        ({"throttle_rate": 1.0, "retry_after_s": 2}, errors.LangSmithRateLimited),
    ],
)
def test_injected_faults_are_retried_then_surface(
    switches: dict[str, Any], expected: type[errors.LangSmithError]
) -> None:
    sleeps: list[float] = []
    with Emulator(**{k: v for k, v in switches.items() if k != "retry_after_s"}).start() as emu:
        if "retry_after_s" in switches:
            emu.set_faults(retry_after_s=switches["retry_after_s"])
        with (
            LangSmithClient(
                emu.url,
                Secret(emu.bootstrap["admin_key"]),
                retry=RetryPolicy(),
                sleep=sleeps.append,
            ) as c,
            pytest.raises(expected),
        ):
            c.list_workspaces()
    assert len(sleeps) == 3
    if expected is errors.LangSmithRateLimited:
        assert sleeps == [2.0, 2.0, 2.0]
