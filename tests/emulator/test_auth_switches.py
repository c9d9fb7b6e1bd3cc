"""The auth switches: a stale auth cache (both ways round) and a coarse ``last_used_at``,
measured on the emulator clock, set at start-up or through ``/_emulator/auth``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest

from bridge.emulator import Emulator, EmulatorClock
from tests.emulator.conftest import StartEmulator

SERVICE_KEYS = "/api/v1/orgs/current/service-keys"
Status = Callable[[str], int]


def start_frozen(start_emulator: StartEmulator, **switches: float) -> tuple[Emulator, httpx.Client]:
    return start_emulator(clock=EmulatorClock(frozen=True), **switches)


def admin(emu: Emulator) -> dict[str, str]:
    return {"X-API-Key": emu.bootstrap["admin_key"]}


def mint(emu: Emulator, client: httpx.Client, **body: object) -> dict[str, str]:
    response = client.post(SERVICE_KEYS, json=body, headers=admin(emu))
    assert response.status_code == 200, response.text
    created: dict[str, str] = response.json()
    return created


def status_of(client: httpx.Client) -> Status:
    return lambda key: client.get("/api/v1/workspaces", headers={"X-API-Key": key}).status_code


def last_used(client: httpx.Client, key_id: str) -> str | None:
    keys = {k["id"]: k for k in client.get("/_emulator/keys").json()}
    value: str | None = keys[key_id]["last_used_at"]
    return value


def test_a_new_key_is_refused_for_the_delay_then_accepted(start_emulator: StartEmulator):
    emu, client = start_frozen(start_emulator, auth_cache_delay_s=30)
    created = mint(emu, client)
    status = status_of(client)

    at_once = status(created["key"])
    emu.advance(29.9)
    nearly = status(created["key"])
    emu.advance(0.1)
    after = status(created["key"])

    assert (at_once, nearly, after) == (401, 401, 200)


def test_a_deleted_key_is_accepted_for_the_delay_then_refused(start_emulator: StartEmulator):
    emu, client = start_frozen(start_emulator, auth_cache_delay_s=30)
    created = mint(emu, client)
    emu.advance(30)
    status = status_of(client)

    deleted = client.delete(f"{SERVICE_KEYS}/{created['id']}", headers=admin(emu))
    right_after = status(created["key"])
    emu.advance(29)
    still = status(created["key"])
    emu.advance(1)
    refused = status(created["key"])

    assert deleted.status_code == 200
    assert (right_after, still, refused) == (200, 200, 401)
    listed = client.get(SERVICE_KEYS, headers=admin(emu)).json()
    assert created["id"] not in {k["id"] for k in listed}


def test_an_expired_key_is_accepted_for_the_delay_past_its_expiry(start_emulator: StartEmulator):
    emu, client = start_frozen(start_emulator, auth_cache_delay_s=10)
    expiry = emu.clock.now() + timedelta(minutes=1)
    created = mint(emu, client, expires_at=expiry.isoformat())
    status = status_of(client)

    emu.clock.set(expiry + timedelta(seconds=9))
    lingering = status(created["key"])
    emu.advance(1)
    refused = status(created["key"])

    assert (lingering, refused) == (200, 401)


def test_the_bootstrap_admin_key_works_at_once_despite_a_start_up_delay(
    start_emulator: StartEmulator,
):
    emu, client = start_frozen(start_emulator, auth_cache_delay_s=3600)

    assert status_of(client)(emu.bootstrap["admin_key"]) == 200


def test_the_delay_is_switched_at_runtime_and_reset_restores_the_start_up_value(
    emulator: Emulator, client: httpx.Client, admin_headers: dict[str, str]
):
    assert client.get("/_emulator/auth").json() == {
        "auth_cache_delay_s": 0.0,
        "last_used_granularity_s": 0.0,
    }
    changed = client.post("/_emulator/auth", json={"auth_cache_delay_s": 60})
    created = client.post(SERVICE_KEYS, json={}, headers=admin_headers).json()
    refused = status_of(client)(created["key"])

    client.post("/_emulator/reset")

    assert changed.json() == {"auth_cache_delay_s": 60.0, "last_used_granularity_s": 0.0}
    assert refused == 401
    assert emulator.auth.value.auth_cache_delay_s == 0
    fresh = client.post(SERVICE_KEYS, json={}, headers=admin_headers).json()
    assert status_of(client)(fresh["key"]) == 200


def test_last_used_at_moves_only_once_per_granularity(start_emulator: StartEmulator):
    emu, client = start_frozen(start_emulator, last_used_granularity_s=60)
    created = mint(emu, client)
    status = status_of(client)
    start = emu.clock.now()

    status(created["key"])
    first = last_used(client, created["id"])
    emu.advance(59)
    status(created["key"])
    within = last_used(client, created["id"])
    emu.advance(1)
    status(created["key"])
    next_step = last_used(client, created["id"])

    assert first is not None
    assert datetime.fromisoformat(first) == start
    assert within == first
    assert next_step is not None
    assert datetime.fromisoformat(next_step) == start + timedelta(seconds=60)


def test_granularity_applies_per_key(start_emulator: StartEmulator):
    emu, client = start_frozen(start_emulator, last_used_granularity_s=60)
    one, two = mint(emu, client), mint(emu, client)
    status = status_of(client)

    status(one["key"])
    emu.advance(30)
    status(two["key"])

    assert last_used(client, one["id"]) != last_used(client, two["id"])


def test_granularity_is_switched_at_runtime(
    emulator: Emulator, client: httpx.Client, clock: EmulatorClock, admin_headers: dict[str, str]
):
    created = client.post(SERVICE_KEYS, json={}, headers=admin_headers).json()
    client.post("/_emulator/auth", json={"last_used_granularity_s": 3600})
    status = status_of(client)

    status(created["key"])
    first = last_used(client, created["id"])
    clock.advance(600)
    status(created["key"])

    assert last_used(client, created["id"]) == first
    assert emulator.set_auth(last_used_granularity_s=0).last_used_granularity_s == 0
    status(created["key"])
    assert last_used(client, created["id"]) != first


@pytest.mark.parametrize(
    "body",
    [{"auth_cache_delay_s": -1}, {"last_used_granularity_s": -0.5}, {"cache": 1}],
    ids=["negative-delay", "negative-granularity", "unknown-switch"],
)
def test_invalid_auth_switches_give_422(client: httpx.Client, body: dict[str, object]):
    response = client.post("/_emulator/auth", json=body)

    assert response.status_code == 422
    assert client.get("/_emulator/auth").json()["auth_cache_delay_s"] == 0.0


def test_negative_start_up_switches_are_refused():
    with pytest.raises(ValueError, match="auth_cache_delay_s"):
        Emulator(auth_cache_delay_s=-1)


def test_raising_the_delay_later_never_locks_out_a_key_in_use(start_emulator: StartEmulator):
    emu, client = start_frozen(start_emulator)
    created = mint(emu, client)
    status = status_of(client)
    assert status(created["key"]) == 200

    emu.set_auth(auth_cache_delay_s=600)

    assert status(created["key"]) == 200
