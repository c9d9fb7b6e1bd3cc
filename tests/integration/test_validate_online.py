"""``validate --online`` against the emulator: the org's expiry cap and the policies'
roles, reported one clear line each before any rotation would trip over them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from bridge import errors
from bridge.emulator import Emulator
from bridge.langsmith import LangSmithClient, RetryPolicy
from bridge.secrets import Secret
from tests.integration.conftest import Bridge, policy_toml

pytestmark = pytest.mark.integration


def set_org_cap(emu: Emulator, days: int | None) -> None:
    """The emulator's ``POST /_emulator/org`` hook (``null`` lifts the cap)."""
    body = {"max_service_key_expiry_days": days}
    answer = httpx.post(f"{emu.url}/_emulator/org", json=body, timeout=5.0)
    assert answer.status_code == 200, answer.text


def org_wide(name: str, emu: Emulator, **fields: Any) -> str:
    """An org-wide policy; consumers need a workspace to land in."""
    return policy_toml(name, default_workspace=emu.bootstrap["workspace_ids"][0], **fields)


def problems(bridge: Bridge) -> tuple[int, list[str]]:
    code, out, _ = bridge.cli("validate", "--online")
    return code, [line.strip() for line in out.splitlines() if "problem:" in line]


def test_a_clean_configuration_passes(make_bridge, emulator: Emulator) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(org_wide("p", emulator, ack="grace"))
    assert problems(bridge) == (0, [])


def test_a_key_ttl_beyond_the_orgs_cap_is_one_clear_line(make_bridge, emulator: Emulator) -> None:  # type: ignore[no-untyped-def]
    ws = emulator.bootstrap["workspace_ids"][0]
    bridge = make_bridge(
        policy_toml("long", ack="grace", workspaces=[ws], key_ttl="60d"),
        org_wide("at-cap", emulator, ack="grace", rotate_every="7d", key_ttl="30d"),
    )
    set_org_cap(bridge.emu, 30)
    code, lines = problems(bridge)
    assert code == 1
    assert lines == [
        "problem: policy long: key_ttl of 60 days exceeds the organization's limit for "
        "service keys (max_service_key_expiry_days = 30)"
    ]
    set_org_cap(bridge.emu, None)
    assert problems(bridge) == (0, [])


def test_the_cap_reported_is_the_one_a_mint_would_hit(emulator: Emulator) -> None:
    """What validate reports is what a rotation would run into: past the cap, no key."""
    set_org_cap(emulator, 30)
    admin = Secret(emulator.bootstrap["admin_key"])
    now = emulator.clock.now()
    with LangSmithClient(emulator.url, admin, retry=RetryPolicy(max_attempts=1)) as client:
        assert client.org_info().max_service_key_expiry_days == 30
        client.create_service_key(description="at cap", expires_at=now + timedelta(days=29))
        with pytest.raises(errors.LangSmithError) as info:
            client.create_service_key(description="past cap", expires_at=now + timedelta(days=60))
    assert info.value.status is not None and 400 <= info.value.status < 500


def test_roles_must_exist_and_be_of_the_kind_the_field_takes(  # type: ignore[no-untyped-def]
    make_bridge, emulator: Emulator
) -> None:
    roles: dict[str, str] = emulator.bootstrap["roles"]
    ws = emulator.bootstrap["workspace_ids"][0]
    unknown = "00000000-0000-4000-8000-0000000000aa"
    bridge = make_bridge(
        policy_toml("fine", ack="grace", workspaces=[ws], role_id=roles["WORKSPACE_VIEWER"]),
        org_wide(
            "fine-org",
            emulator,
            ack="grace",
            role_id=roles["WORKSPACE_EDITOR"],
            org_role_id=roles["ORGANIZATION_VIEWER"],
        ),
        policy_toml("unknown", ack="grace", workspaces=[ws], role_id=unknown),
        org_wide("org-as-ws", emulator, ack="grace", role_id=roles["ORGANIZATION_ADMIN"]),
        org_wide("ws-as-org", emulator, ack="grace", org_role_id=roles["WORKSPACE_ADMIN"]),
    )
    code, lines = problems(bridge)
    assert code == 1
    assert lines == [
        f"problem: policy unknown: role_id {unknown} is not a role of this organization",
        f"problem: policy org-as-ws: role_id {roles['ORGANIZATION_ADMIN']} is the "
        "organization role 'Organization Admin'; role_id takes a workspace role",
        f"problem: policy ws-as-org: org_role_id {roles['WORKSPACE_ADMIN']} is the "
        "workspace role 'Admin'; org_role_id takes an organization role",
    ]
