"""The organization's expiry caps: reported in ``/orgs/current/info``, enforced with 400
at key creation, set at start-up or through ``/_emulator/org``."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from bridge.emulator import Emulator, EmulatorClock
from tests.emulator.conftest import StartEmulator

SERVICE_KEYS = "/api/v1/orgs/current/service-keys"
PATS = "/api/v1/orgs/current/personal-access-tokens"


def info(client: httpx.Client, headers: dict[str, str]) -> dict[str, object]:
    body: dict[str, object] = client.get("/api/v1/orgs/current/info", headers=headers).json()
    return body


def capped(start_emulator: StartEmulator, **caps: int) -> tuple[Emulator, httpx.Client]:
    return start_emulator(clock=EmulatorClock(frozen=True), **caps)


def in_days(emu: Emulator, days: float) -> str:
    return (emu.clock.now() + timedelta(days=days)).isoformat()


def test_no_cap_by_default(client: httpx.Client, admin_headers: dict[str, str]):
    body = info(client, admin_headers)

    assert body["max_service_key_expiry_days"] is None
    assert body["max_pat_expiry_days"] is None
    assert body["config"] == {"can_set_api_key_max_expiry": False}
    assert client.post(SERVICE_KEYS, json={}, headers=admin_headers).status_code == 200


def test_info_reports_the_caps_set_at_start_up(start_emulator: StartEmulator):
    emu, client = capped(start_emulator, max_service_key_expiry_days=30, max_pat_expiry_days=7)

    body = info(client, {"X-API-Key": emu.bootstrap["admin_key"]})

    assert body["max_service_key_expiry_days"] == 30
    assert body["max_api_key_expiry_days"] == 30
    assert body["max_pat_expiry_days"] == 7
    assert body["config"] == {"can_set_api_key_max_expiry": True}


@pytest.mark.parametrize("route", [SERVICE_KEYS, "/api/v1/api-key"], ids=["org", "workspace"])
def test_service_key_beyond_the_cap_or_without_expiry_gets_400(
    start_emulator: StartEmulator, route: str
):
    emu, client = capped(start_emulator, max_service_key_expiry_days=30)
    headers = {
        "X-API-Key": emu.bootstrap["admin_key"],
        "X-Tenant-Id": emu.state.seed.workspaces[0].id,
    }

    beyond = client.post(route, json={"expires_at": in_days(emu, 30.01)}, headers=headers)
    missing = client.post(route, json={"description": "forever"}, headers=headers)
    at_cap = client.post(route, json={"expires_at": in_days(emu, 30)}, headers=headers)

    assert beyond.status_code == missing.status_code == 400
    assert "30 days" in beyond.json()["detail"]
    assert "expires_at is required" in missing.json()["detail"]
    assert at_cap.status_code == 200
    assert len(emu.state.live_keys()) == 2  # the admin key and the one at the cap


def test_a_past_expiry_is_still_a_422_under_a_cap(start_emulator: StartEmulator):
    emu, client = capped(start_emulator, max_service_key_expiry_days=30)

    response = client.post(
        SERVICE_KEYS,
        json={"expires_at": in_days(emu, -1)},
        headers={"X-API-Key": emu.bootstrap["admin_key"]},
    )

    assert response.status_code == 422


def test_the_pat_cap_is_separate_from_the_service_key_cap(start_emulator: StartEmulator):
    emu, client = capped(start_emulator, max_pat_expiry_days=7)
    headers = {"X-API-Key": emu.bootstrap["admin_key"]}

    key_forever = client.post(SERVICE_KEYS, json={}, headers=headers)
    pat_forever = client.post(PATS, json={}, headers=headers)
    pat_long = client.post(PATS, json={"expires_at": in_days(emu, 8)}, headers=headers)
    pat_week = client.post(PATS, json={"expires_at": in_days(emu, 7)}, headers=headers)

    assert key_forever.status_code == 200
    assert (pat_forever.status_code, pat_long.status_code) == (400, 400)
    assert "personal access tokens" in pat_long.json()["detail"]
    assert pat_week.status_code == 200


def test_caps_are_switched_at_runtime_null_clears_one_and_reset_restores(
    emulator: Emulator, client: httpx.Client, admin_headers: dict[str, str]
):
    set_both = client.post(
        "/_emulator/org", json={"max_service_key_expiry_days": 10, "max_pat_expiry_days": 5}
    )
    refused = client.post(SERVICE_KEYS, json={}, headers=admin_headers)
    cleared = client.post("/_emulator/org", json={"max_service_key_expiry_days": None})
    allowed = client.post(SERVICE_KEYS, json={}, headers=admin_headers)
    reported = info(client, admin_headers)

    client.post("/_emulator/reset")

    assert set_both.json() == {"max_service_key_expiry_days": 10, "max_pat_expiry_days": 5}
    assert refused.status_code == 400
    assert cleared.json() == {"max_service_key_expiry_days": None, "max_pat_expiry_days": 5}
    assert allowed.status_code == 200
    assert reported["max_pat_expiry_days"] == 5
    assert client.get("/_emulator/org").json() == {
        "max_service_key_expiry_days": None,
        "max_pat_expiry_days": None,
    }
    assert emulator.set_org(max_pat_expiry_days=3).max_pat_expiry_days == 3


@pytest.mark.parametrize(
    "body",
    [{"max_service_key_expiry_days": 0}, {"max_pat_expiry_days": "soon"}, {"cap": 1}],
    ids=["zero", "not-a-number", "unknown"],
)
def test_invalid_caps_give_422(client: httpx.Client, body: dict[str, object]):
    assert client.post("/_emulator/org", json=body).status_code == 422
    assert client.get("/_emulator/org").json()["max_service_key_expiry_days"] is None


def test_a_cap_below_one_day_is_refused_at_start_up():
    with pytest.raises(ValueError, match="max_service_key_expiry_days"):
        Emulator(max_service_key_expiry_days=0)
