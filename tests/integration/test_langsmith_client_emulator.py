"""LangSmithClient against the real local emulator, over real sockets."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bridge import errors
from bridge.emulator import Emulator, EmulatorClock
from bridge.langsmith import KeyNotAccepted, LangSmithClient, RetryPolicy
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
    with pytest.raises(KeyNotAccepted) as info:
        client.verify_key(created.key, workspace_id=second)
    assert info.value.status == 403
    assert type(info.value.__cause__) is errors.LangSmithPermissionError


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


def test_the_listing_carries_langsmiths_clock_not_ours() -> None:
    """``served_at`` is the server's ``Date``: with the emulator's clock three days ahead
    of this machine's, the listing says so."""
    clock = EmulatorClock(frozen=True)
    clock.advance(timedelta(days=3))
    with (
        Emulator(clock=clock).start() as emu,
        LangSmithClient(emu.url, Secret(emu.bootstrap["admin_key"])) as c,
    ):
        c.create_service_key(description="bridge:it:dated")
        listing = c.list_service_keys()
    assert listing.skipped == 0 and len(listing) >= 1
    assert listing.served_at == clock.now().replace(microsecond=0)
    assert listing.served_at is not None
    assert listing.served_at > datetime.now(UTC) + timedelta(days=2)


def test_verify_at_the_consumer_endpoint_as_the_sdk_joins_it(
    emu: Emulator, client: LangSmithClient, workspace_ids: list[str]
) -> None:
    """The payload's LANGSMITH_ENDPOINT is the bare origin; the SDK requests ``/sessions``
    from it, without ``/api/v1``, and so does the verification."""
    org_wide = client.create_service_key(description="bridge:it:consumer-org")
    scoped = client.create_service_key(
        description="bridge:it:consumer-ws", workspaces=[workspace_ids[0]]
    )
    for endpoint in (emu.url, emu.url + "/", emu.url + "/api/v1"):
        client.verify_key(org_wide.key, workspace_id=workspace_ids[1], endpoint=endpoint)
        client.verify_key(org_wide.key, endpoint=endpoint)
        client.verify_key(scoped.key, workspace_id=workspace_ids[0], endpoint=endpoint)
    client.delete_service_key(scoped.info.id)
    with pytest.raises(KeyNotAccepted) as info:
        client.verify_key(scoped.key, workspace_id=workspace_ids[0], endpoint=emu.url)
    assert info.value.status == 401


def test_verify_at_an_endpoint_nothing_listens_on_is_unavailable(
    client: LangSmithClient,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    created = client.create_service_key(description="bridge:it:nowhere")
    with pytest.raises(errors.LangSmithUnavailable):
        client.verify_key(created.key, endpoint=f"http://127.0.0.1:{port}")


def test_org_info_and_roles_from_the_emulator(emu: Emulator, client: LangSmithClient) -> None:
    info = client.org_info()
    assert info.id == emu.bootstrap["organization_id"]
    roles = {role.id: role for role in client.list_roles()}
    bootstrap_roles: dict[str, str] = emu.bootstrap["roles"]
    assert set(roles) == set(bootstrap_roles.values())
    assert roles[bootstrap_roles["WORKSPACE_ADMIN"]].access_scope == "workspace"
    assert roles[bootstrap_roles["ORGANIZATION_ADMIN"]].access_scope == "organization"


def test_a_key_refused_by_a_stale_auth_cache_is_not_accepted_yet(
    emu: Emulator, client: LangSmithClient, workspace_ids: list[str]
) -> None:
    """LangSmith caches auth results for up to a minute: a brand-new key can be refused
    for a while. The verification says "not accepted (yet)", and later it passes."""
    hooked = httpx.post(f"{emu.url}/_emulator/auth", json={"auth_cache_delay_s": 30}, timeout=5.0)
    assert hooked.status_code == 200, hooked.text
    created = client.create_service_key(description="bridge:it:cached")
    with pytest.raises(KeyNotAccepted) as info:
        client.verify_key(created.key, workspace_id=workspace_ids[0], endpoint=emu.url)
    assert info.value.status in (401, 403)
    emu.advance(31)
    client.verify_key(created.key, workspace_id=workspace_ids[0], endpoint=emu.url)


def test_past_the_emulators_rate_limit_the_client_waits_for_the_next_window() -> None:
    """The emulator's own per-key limit (a fixed 10 s window on its clock): the client
    sleeps until the window turns, once, and the call then succeeds."""
    clock = EmulatorClock(frozen=True)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the emulator's clock moves instead of the test
        sleeps.append(seconds)
        clock.advance(seconds)

    with (
        Emulator(clock=clock, rate_limit=2, rate_window_s=10.0).start() as emu,
        LangSmithClient(emu.url, Secret(emu.bootstrap["admin_key"]), sleep=sleep) as c,
    ):
        for _ in range(3):
            c.list_workspaces()
    assert sleeps == [10.0]
