"""Test switches: rate limit, injected faults, latency, and the /_emulator hooks."""

from __future__ import annotations

import time

import httpx
import pytest

from bridge.emulator import Emulator, EmulatorClock
from tests.emulator.conftest import MintKey, StartEmulator


def statuses(client: httpx.Client, count: int, headers: dict[str, str] | None = None) -> list[int]:
    return [client.get("/api/v1/info", headers=headers).status_code for _ in range(count)]


def test_rate_limit_answers_429_with_retry_after_until_the_window_passes(
    start_emulator: StartEmulator,
):
    clock = EmulatorClock(frozen=True)
    emu, client = start_emulator(rate_limit=3, rate_window_s=10, clock=clock)
    admin = {"X-API-Key": emu.bootstrap["admin_key"]}

    ok = [client.get("/api/v1/workspaces", headers=admin).status_code for _ in range(3)]
    clock.advance(4)
    limited = client.get("/api/v1/workspaces", headers=admin)
    clock.advance(6)
    after_window = client.get("/api/v1/workspaces", headers=admin)

    assert ok == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "6"
    assert limited.json() == {"detail": "Too many requests"}
    assert after_window.status_code == 200


def test_rate_limit_is_counted_per_key_and_per_ip_without_a_key(start_emulator: StartEmulator):
    emu, client = start_emulator(rate_limit=2)
    admin = {"X-API-Key": emu.bootstrap["admin_key"]}

    anonymous = statuses(client, 3)
    with_key = statuses(client, 2, headers=admin)

    assert anonymous == [200, 200, 429]
    assert with_key == [200, 200]


def test_rate_limit_zero_disables_it(start_emulator: StartEmulator):
    _, client = start_emulator(rate_limit=0)

    assert set(statuses(client, 20)) == {200}


def test_fault_injection_is_repeatable_with_a_seed(start_emulator: StartEmulator):
    _, first = start_emulator(fault_rate=0.5, fault_status=502, seed=7)
    _, second = start_emulator(fault_rate=0.5, fault_status=502, seed=7)

    run_one, run_two = statuses(first, 30), statuses(second, 30)

    assert run_one == run_two
    assert set(run_one) == {200, 502}


def test_reseeding_at_runtime_replays_the_same_faults(emulator: Emulator, client: httpx.Client):
    emulator.set_faults(fault_rate=0.3, seed=11)
    before = statuses(client, 20)
    emulator.set_faults(seed=11)
    after = statuses(client, 20)

    assert before == after
    assert set(before) == {200, 503}


def test_injected_fault_body_is_an_error_envelope(start_emulator: StartEmulator):
    _, client = start_emulator(fault_rate=1.0, fault_status=500)

    response = client.get("/api/v1/info")

    assert response.status_code == 500
    assert isinstance(response.json()["detail"], str)


def test_injected_throttle_answers_429_with_retry_after(start_emulator: StartEmulator):
    _, client = start_emulator(throttle_rate=1.0)

    response = client.get("/api/v1/info")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"


def test_latency_delays_api_requests_but_not_control_routes(start_emulator: StartEmulator):
    _, client = start_emulator(latency_ms=200)

    started = time.perf_counter()
    client.get("/api/v1/info")
    api_elapsed = time.perf_counter() - started
    started = time.perf_counter()
    client.get("/_emulator/clock")
    control_elapsed = time.perf_counter() - started

    assert api_elapsed >= 0.2
    assert control_elapsed < 0.2


def test_faults_never_touch_control_routes(start_emulator: StartEmulator):
    _, client = start_emulator(fault_rate=1.0, rate_limit=1)

    assert [client.get("/_emulator/keys").status_code for _ in range(3)] == [200] * 3


def test_faults_are_switched_at_runtime_over_http(emulator: Emulator, client: httpx.Client):
    changed = client.post("/_emulator/faults", json={"fault_rate": 1.0, "fault_status": 502})
    failing = client.get("/api/v1/info")
    cleared = client.post("/_emulator/faults", json={"fault_rate": 0})
    healthy = client.get("/api/v1/info")

    assert changed.json()["fault_rate"] == 1.0
    assert failing.status_code == 502
    assert cleared.json() == client.get("/_emulator/faults").json()
    assert healthy.status_code == 200
    assert emulator.faults.switches.fault_status == 502


@pytest.mark.parametrize(
    "body",
    [{"fault_rate": 2}, {"fault_status": 404}, {"fault_rate": 0.7, "throttle_rate": 0.7}, {"x": 1}],
    ids=["rate-above-1", "not-5xx", "rates-over-1", "unknown-switch"],
)
def test_invalid_fault_switches_give_422(client: httpx.Client, body: dict[str, object]):
    response = client.post("/_emulator/faults", json=body)

    assert response.status_code == 422
    assert client.get("/_emulator/faults").json()["fault_rate"] == 0.0


def test_clock_control_reads_advances_and_sets_time(client: httpx.Client, clock: EmulatorClock):
    now = client.get("/_emulator/clock").json()["now"]
    advanced = client.post("/_emulator/clock", json={"advance_seconds": 86400}).json()["now"]
    fixed = client.post("/_emulator/clock", json={"now": "2031-05-06T07:08:09Z"}).json()["now"]
    bad = client.post("/_emulator/clock", json={"advance_seconds": 1, "now": now})

    assert advanced[:10] != now[:10]
    assert fixed.startswith("2031-05-06T07:08:09")
    assert clock.now().year == 2031
    assert bad.status_code == 422


def test_key_inspection_lists_metadata_without_secrets(
    client: httpx.Client, emulator: Emulator, mint_key: MintKey
):
    created = mint_key(description="inspect me")
    client.delete(
        f"/api/v1/orgs/current/service-keys/{created['id']}",
        headers={"X-API-Key": emulator.bootstrap["admin_key"]},
    )

    keys = {k["id"]: k for k in client.get("/_emulator/keys").json()}

    entry = keys[created["id"]]
    assert entry["deleted"] is True
    assert entry["short_key"] == created["short_key"]
    assert set(entry) >= {"id", "short_key", "description", "deleted", "created_at"}
    assert set(entry) >= {"last_used_at", "expires_at"}
    assert created["key"] not in str(keys)
    assert emulator.bootstrap["admin_key"] not in str(keys)
    assert sorted(emulator.state.key_ids()) == sorted(keys)


def test_reset_restores_the_bootstrap_state(
    client: httpx.Client, emulator: Emulator, mint_key: MintKey
):
    bootstrap = emulator.bootstrap
    created = mint_key()
    emulator.set_faults(latency_ms=1)

    assert client.post("/_emulator/reset").json() == {"reset": True}

    assert emulator.bootstrap == bootstrap
    assert emulator.state.key_ids() == [bootstrap["admin_key_id"]]
    assert emulator.faults.switches.latency_ms == 0
    rejected = client.get("/api/v1/workspaces", headers={"X-API-Key": created["key"]})
    accepted = client.get("/api/v1/workspaces", headers={"X-API-Key": bootstrap["admin_key"]})
    assert (rejected.status_code, accepted.status_code) == (401, 200)


def test_emulator_refuses_to_bind_beyond_loopback():
    with pytest.raises(ValueError, match="loopback"):
        Emulator(host="0.0.0.0")  # noqa: S104 - must be refused


def test_emulator_rejects_out_of_range_switches():
    with pytest.raises(ValueError, match="fault_status"):
        Emulator(fault_status=404)


def test_stopped_emulator_releases_its_port():
    emu = Emulator().start()
    url = emu.url
    with httpx.Client() as http:
        http.get(f"{url}/info")
    emu.stop()

    with httpx.Client() as http, pytest.raises(httpx.ConnectError):
        http.get(f"{url}/info")
