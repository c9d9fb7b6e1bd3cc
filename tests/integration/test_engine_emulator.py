"""The engine against the emulator: gates over time, healing, faults, concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bridge.engine.ack import acknowledge
from bridge.errors import ProviderUnavailable
from bridge.langsmith import LangSmithClient
from bridge.marker import Marker
from bridge.payload import API_KEY
from bridge.secrets import Secret
from bridge.state import Ack, Phase
from providers import Connections
from tests.integration.conftest import Bridge, policy_toml
from tests.support.faults import ALWAYS, AdminKeyOnly, faulty_targets

pytestmark = pytest.mark.integration


def live_bridge_keys(bridge: Bridge) -> list[dict]:  # type: ignore[type-arg]
    return [
        k
        for k in bridge.emu.state.inspect_keys()
        if k["description"].startswith("langsmith-bridge:") and not k["deleted"]
    ]


def key_works(bridge: Bridge, key: str, workspace: str | None = None) -> bool:
    headers = {"X-API-Key": key} | ({"X-Tenant-Id": workspace} if workspace else {})
    path = "/api/v1/sessions?limit=1" if workspace else "/api/v1/workspaces"
    return httpx.get(bridge.emu.url + path, headers=headers).status_code == 200


def superseded(bridge: Bridge, name: str = "p") -> list:  # type: ignore[type-arg]
    return bridge.store().load(name).by_phase(Phase.SUPERSEDED)


def test_grace_revokes_only_after_min_overlap(make_bridge) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(
        policy_toml("p", ack="grace", min_overlap="1h", rotate_every="1d", key_ttl="3d")
    )
    bridge.run()
    bridge.run("p", force=True)
    (old,) = superseded(bridge)
    bridge.emu.clock.advance(timedelta(minutes=59))
    bridge.run()
    assert superseded(bridge) and not bridge.emulator_key(old.key_id)["deleted"]
    bridge.emu.clock.advance(timedelta(minutes=2))
    bridge.run()
    assert not superseded(bridge) and bridge.emulator_key(old.key_id)["deleted"]


def test_usage_gate_waits_until_the_old_key_goes_quiet(make_bridge) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(
        policy_toml("p", ack="usage", usage_quiet="1h", rotate_every="1d", key_ttl="3d")
    )
    bridge.run()
    old_key = bridge.payload("p")[API_KEY]
    bridge.run("p", force=True)
    (old,) = superseded(bridge)
    bridge.emu.clock.advance(timedelta(minutes=50))
    assert key_works(bridge, old_key)  # a straggler still uses the old key
    bridge.emu.clock.advance(timedelta(minutes=50))
    bridge.run()
    assert superseded(bridge), "used 50 minutes ago: not quiet for an hour yet"
    bridge.emu.clock.advance(timedelta(minutes=11))
    bridge.run()
    assert superseded(bridge), "idle for an hour by one listing; a second must agree"
    bridge.emu.clock.advance(timedelta(minutes=50))
    bridge.run()
    assert bridge.emulator_key(old.key_id)["deleted"]


@pytest.mark.parametrize(("on_timeout", "revoked"), [("hold", False), ("revoke", True)])
def test_max_wait_holds_or_revokes(make_bridge, on_timeout: str, revoked: bool) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(
        policy_toml(
            "p",
            consumers=["api"],
            max_wait="2d",
            on_timeout=on_timeout,
            rotate_every="10d",
            key_ttl="30d",
        )
    )
    bridge.run()
    bridge.run("p", force=True)
    (old,) = superseded(bridge)
    bridge.emu.clock.advance(timedelta(days=2, minutes=1))
    report = bridge.run()
    assert bridge.emulator_key(old.key_id)["deleted"] is revoked
    if not revoked:
        assert any("overdue" in note for note in report.outcomes[0].plan.notes)  # type: ignore[union-attr]
        assert bridge.status("p")["superseded"][0]["gate"] == "overdue"


def test_scheduled_rotation_and_key_expiry_backstop(make_bridge) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(policy_toml("p", ack="grace", rotate_every="1d", key_ttl="2d"))
    bridge.run()
    first = bridge.store().load("p").current()
    assert first is not None and first.expires_at is not None
    assert abs(first.expires_at - first.created_at - timedelta(days=2)) < timedelta(seconds=5)  # type: ignore[operator]
    bridge.emu.clock.advance(timedelta(hours=23))
    bridge.run()
    assert bridge.store().load("p").current() == first
    bridge.emu.clock.advance(timedelta(hours=2))
    bridge.run()
    second = bridge.store().load("p").current()
    assert second is not None and second.rotation_id != first.rotation_id


def test_unknown_keys_of_this_deployment_go_through_the_gate_others_are_kept(
    make_bridge, emulator
) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(policy_toml("p", ack="grace"))
    bridge.run()
    mine = bridge.store().deployment_id()
    with LangSmithClient(emulator.url, Secret(emulator.bootstrap["admin_key"])) as admin:
        orphan = admin.create_service_key(
            description=Marker(mine, "p", "lost-rotation").description()
        )
        stranger = admin.create_service_key(
            description=Marker("other-bridge", "p", "x").description()
        )
        unmarked = admin.create_service_key(description="someone's key")
    emulator.clock.advance(timedelta(minutes=5))
    bridge.run()
    assert not bridge.emulator_key(orphan.info.id)["deleted"]  # a live run's, for all we know
    emulator.clock.advance(timedelta(hours=1))
    bridge.run()
    assert bridge.emulator_key(orphan.info.id)["deleted"]  # adopted; the grace gate opened
    assert not bridge.emulator_key(stranger.info.id)["deleted"]  # another bridge instance's
    assert not bridge.emulator_key(unmarked.info.id)["deleted"]


def test_current_key_deleted_out_of_band_is_replaced(make_bridge, emulator) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(policy_toml("p", ack="grace"))
    bridge.run()
    current = bridge.store().load("p").current()
    assert current is not None and current.key_id is not None
    emulator.state.delete_key(current.key_id)
    emulator.clock.advance(timedelta(minutes=5))
    bridge.run()  # one listing misses it: not yet gone
    assert bridge.store().load("p").current() == current.model_copy(
        update={"missing_since": bridge.store().load("p").current().missing_since}  # type: ignore[union-attr]
    )
    emulator.clock.advance(timedelta(minutes=5))
    bridge.run()  # a second listing agrees
    replacement = bridge.store().load("p").current()
    assert replacement is not None and replacement.key_id != current.key_id
    assert key_works(bridge, bridge.payload("p")[API_KEY])


def test_hand_edited_target_is_reported_as_drift_and_repaired(make_bridge) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(policy_toml("p", ack="grace"))
    bridge.run()
    path = bridge.root / "out/p.env"
    good = bridge.payload("p")[API_KEY]
    path.write_text(path.read_text().replace(good, "lsv2_sk_" + "0" * 32 + "_" + "0" * 10))
    with bridge.engine() as engine:
        plan = engine.run(engine.select(), dry_run=True).outcomes[0].plan
    assert plan is not None and "drift" in plan.steps[0].describe()
    bridge.run()
    assert key_works(bridge, bridge.payload("p")[API_KEY])


def test_deleted_target_file_is_republished_from_another_target(make_bridge, emulator) -> None:  # type: ignore[no-untyped-def]
    toml = (
        policy_toml("p", ack="grace")
        + '\n[[policy.target]]\nprovider = "file"\npath = "out/p.json"\nformat = "json"'
    )
    bridge = make_bridge(toml)
    bridge.run()
    before = bridge.store().load("p").current()
    (bridge.root / "out/p.json").unlink()
    bridge.run()
    after = bridge.store().load("p").current()
    assert before is not None and after is not None and after.rotation_id == before.rotation_id
    assert (bridge.root / "out/p.json").exists()


def test_failed_publish_is_resumed_by_the_next_run(make_bridge) -> None:  # type: ignore[no-untyped-def]
    toml = (
        policy_toml("p", ack="grace")
        + '\n[[policy.target]]\nprovider = "file"\npath = "out/p.json"\nformat = "json"'
    )
    bridge = make_bridge(toml)
    on_fire = ProviderUnavailable(
        "disk on fire", provider="file", operation="publish", reference="p"
    )
    with Connections() as connections:
        targets = faulty_targets(connections, {".json": {"publish": on_fire}}, times=ALWAYS)
        with bridge.engine(connections=connections, open_target=targets) as engine:
            report = engine.run(engine.select())
    assert not report.ok and "disk on fire" in (report.outcomes[0].error or "")
    json_publishes = [c for c in targets.calls if c.name.endswith(".json.publish")]
    assert json_publishes and all(c.failed for c in json_publishes)  # the injected fault
    (pending,) = bridge.store().load("p").by_phase(Phase.PUBLISHING)
    report = bridge.run()
    assert (
        report.outcomes[0].done[0].describe().startswith(f"resume rotation {pending.rotation_id}")
    )
    current = bridge.store().load("p").current()
    assert current is not None and current.rotation_id == pending.rotation_id
    assert len(live_bridge_keys(bridge)) == 1


def test_key_that_fails_verification_is_abandoned_and_never_published(make_bridge) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(policy_toml("p", ack="grace"))
    refusing = AdminKeyOnly(bridge.emu.bootstrap["admin_key"])
    with bridge.engine(transport=refusing) as engine:
        report = engine.run(engine.select())
    assert not report.ok and "rejected" in (report.outcomes[0].error or "")
    assert refusing.refused == 1  # verify_attempts = 1: the new key's one try
    assert not (bridge.root / "out/p.env").exists()
    assert live_bridge_keys(bridge) == []
    assert [g.phase for g in bridge.store().load("p").generations] == [Phase.ABANDONED]


def test_runs_survive_injected_5xx_and_429(make_bridge, emulator) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(*(policy_toml(f"p{i}", ack="grace") for i in range(5)))
    emulator.set_faults(fault_rate=0.2, throttle_rate=0.1)
    report = bridge.run()
    assert report.ok
    emulator.set_faults(fault_rate=0.0, throttle_rate=0.0)
    for i in range(5):
        assert key_works(bridge, bridge.payload(f"p{i}")[API_KEY])
    assert len(live_bridge_keys(bridge)) == 5


def test_concurrent_runners_mint_exactly_once(make_bridge, emulator) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(*(policy_toml(f"p{i}", ack="grace") for i in range(4)))
    emulator.set_faults(latency_ms=20)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            with bridge.engine() as engine:
                barrier.wait()
                engine.run(engine.select())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(live_bridge_keys(bridge)) == 4  # one per policy, however many runners


def test_acks_recorded_by_the_store_open_the_gate(make_bridge) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(policy_toml("p", consumers=["api"]))
    bridge.run()
    bridge.run("p", force=True)
    current = bridge.store().load("p").current()
    assert current is not None and current.fingerprint is not None
    # A fingerprint copied from ``status`` is not possession of the key: refused.
    claim = Ack(consumer="api", fingerprint=current.fingerprint, at=bridge.emu.clock.now())
    bridge.store().record_ack("p", claim)
    bridge.run()
    assert len(superseded(bridge)) == 1
    forged = claim.model_copy(update={"proof": "v1:" + "0" * 64})
    bridge.store().record_ack("p", forged)
    bridge.run()
    assert len(superseded(bridge)) == 1
    key = Secret(bridge.payload("p")[API_KEY])
    policy, now = bridge.config.get_policy("p"), bridge.emu.clock.now()
    # The same replica: an unproven claim by a live replica holds the gate too.
    acknowledge(bridge.store(), policy, "api", key, now, replica=claim.replica)
    bridge.run()
    assert superseded(bridge) == []


def test_multi_workspace_payload_names_the_workspace_for_the_sdk(
    make_bridge, emulator, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from langsmith import Client

    ids = emulator.bootstrap["workspace_ids"]
    bridge = make_bridge(policy_toml("p", workspaces=ids, default_workspace=ids[1], ack="grace"))
    bridge.run()
    payload = bridge.payload("p")
    assert payload["LANGSMITH_WORKSPACE_ID"] == ids[1]
    for name in ("LANGSMITH_API_KEY", "LANGSMITH_ENDPOINT", "LANGSMITH_WORKSPACE_ID"):
        monkeypatch.setenv(name, payload[name])
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    assert list(Client().list_projects())


def test_consumer_helper_loads_and_acknowledges(make_bridge, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from bridge.consumer import load_settings

    bridge = make_bridge(policy_toml("p", consumers=["api"]))
    bridge.run()
    environ: dict[str, str] = {}
    settings = load_settings("p", "api", config=bridge.config_path, environ=environ)
    assert environ[API_KEY] == bridge.payload("p")[API_KEY]
    assert "LANGSMITH_BRIDGE_MANAGED" not in environ
    assert API_KEY not in repr(settings) and environ[API_KEY] not in repr(settings)
    (ack,) = bridge.store().acks("p", ["api"])
    assert ack.fingerprint == settings.fingerprint and ack.proof


def test_consumer_helper_exports_only_the_documented_variables(make_bridge) -> None:  # type: ignore[no-untyped-def]
    from bridge.consumer import load_settings

    bridge = make_bridge(policy_toml("p", consumers=["api"]))
    bridge.run()
    path = bridge.root / "out" / "p.env"
    # Someone with write access to the target adds variables of their own.
    path.write_text(path.read_text() + "HTTPS_PROXY=http://evil.test:3128\nLD_PRELOAD=/tmp/x.so\n")
    environ: dict[str, str] = {}

    load_settings("p", "api", config=bridge.config_path, environ=environ, ack=False)

    assert set(environ) == {"LANGSMITH_API_KEY", "LANGSMITH_ENDPOINT", "LANGSMITH_WORKSPACE_ID"}
