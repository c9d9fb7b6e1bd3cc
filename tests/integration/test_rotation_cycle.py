"""The issue's acceptance flow, through the CLI, against the emulator and a local file."""

from __future__ import annotations

import json

import pytest
from langsmith import Client

from bridge.secrets import KEY_PATTERN
from tests.integration.conftest import Bridge, policy_toml

pytestmark = pytest.mark.integration


@pytest.fixture
def bridge(make_bridge, emulator) -> Bridge:  # type: ignore[no-untyped-def]
    workspace = emulator.bootstrap["workspace_ids"][0]
    return make_bridge(
        policy_toml(
            "tracing-prod",
            workspaces=[workspace],
            rotate_every="30d",
            key_ttl="60d",
            consumers=["api", "worker"],
            ack="explicit",
            min_overlap="0s",
            max_wait="7d",
            on_timeout="hold",
        )
    )


def status(bridge: Bridge) -> dict:  # type: ignore[type-arg]
    code, out, _ = bridge.cli("status", "--json")
    assert code == 0
    (entry,) = json.loads(out)["policies"]
    return entry  # type: ignore[no-any-return]


def test_full_cycle_mint_publish_rotate_ack_revoke(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = []

    # 1. run: a working key lands in the file.
    code, out, err = bridge.cli("run")
    outputs += [out, err]
    assert code == 0, err
    first = status(bridge)
    assert first["current"] is not None and first["superseded"] == []
    assert first["targets"] == [
        {
            "provider": "file",
            "reference": str(bridge.root / "out/tracing-prod.env"),
            "in_sync": True,
            "fingerprint": first["current"]["fingerprint"],
            "error": None,
        }
    ]
    payload = bridge.payload("tracing-prod")
    for name in ("LANGSMITH_API_KEY", "LANGSMITH_ENDPOINT"):
        monkeypatch.setenv(name, payload[name])
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    assert [
        p.name for p in Client().list_projects()
    ]  # the official SDK, configured only from the payload

    # 2. rotate: two keys; the old one waits for both consumers.
    code, out, err = bridge.cli("rotate", "tracing-prod")
    outputs += [out, err]
    assert code == 0, err
    second = status(bridge)
    assert second["current"]["key_id"] != first["current"]["key_id"]
    (old,) = second["superseded"]
    assert old["key_id"] == first["current"]["key_id"]
    assert (old["acked_by"], old["waiting_for"]) == ([], ["api", "worker"])
    assert not bridge.emulator_key(old["key_id"])["deleted"]

    # A run before the acks changes nothing.
    code, out, err = bridge.cli("run")
    assert code == 0 and "waiting for api, worker" in out
    assert not bridge.emulator_key(old["key_id"])["deleted"]

    # 3. both consumers ack the new key (from the file, and from the environment).
    code, out, err = bridge.cli(
        "ack",
        "tracing-prod",
        "--consumer",
        "api",
        "--from-file",
        str(bridge.root / "out/tracing-prod.env"),
    )
    outputs += [out, err]
    assert code == 0, err
    assert status(bridge)["superseded"][0]["acked_by"] == ["api"]
    monkeypatch.setenv("LANGSMITH_API_KEY", bridge.payload("tracing-prod")["LANGSMITH_API_KEY"])
    code, out, err = bridge.cli("ack", "tracing-prod", "--consumer", "worker", "--from-env")
    outputs += [out, err]
    assert code == 0, err
    assert status(bridge)["superseded"][0]["gate"] == "open"

    # 4. the next run deletes the old key in LangSmith.
    code, out, err = bridge.cli("run")
    outputs += [out, err]
    assert code == 0, err
    assert bridge.emulator_key(old["key_id"])["deleted"]
    final = status(bridge)
    assert final["superseded"] == [] and final["current"]["key_id"] == second["current"]["key_id"]
    assert [h["phase"] for h in final["history"]] == ["revoked"]

    # Never a secret on the console, in the state (every file of it, the SQLite database and
    # its write-ahead log included) or in status.
    state_text = "".join(
        path.read_bytes().decode("latin-1")
        for path in (bridge.root / "state").rglob("*")
        if path.is_file()
    )
    for text in [*outputs, state_text, json.dumps(final)]:
        assert not KEY_PATTERN.search(text)


def test_dry_run_changes_nothing(bridge: Bridge) -> None:
    code, out, _ = bridge.cli("run", "--dry-run")
    assert code == 0 and "rotate: no current key" in out
    assert not (bridge.root / "out").exists()
    assert not (bridge.root / "state/bridge-state.json").exists()
    assert [k["description"] for k in bridge.emu.state.inspect_keys()] == ["Bootstrap admin key"]


def test_plan_json_lists_steps(bridge: Bridge) -> None:
    code, out, _ = bridge.cli("plan", "--json")
    assert code == 0
    (entry,) = json.loads(out)["policies"]
    assert [s["action"] for s in entry["plan"]["steps"]] == ["rotate"]


def test_ack_with_a_foreign_key_is_refused(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    bridge.cli("run")
    monkeypatch.setenv("LANGSMITH_API_KEY", bridge.emu.bootstrap["admin_key"])
    code, out, err = bridge.cli("ack", "tracing-prod", "--consumer", "api", "--from-env")
    assert code == 1 and "never published a key with fingerprint" in err
    assert not KEY_PATTERN.search(out + err)


def test_validate_online_checks_workspaces(make_bridge) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(
        policy_toml("p", workspaces=["00000000-0000-4000-8000-000000000000"], ack="grace")
    )
    code, out, _ = bridge.cli("validate", "--online")
    assert code == 1 and "unknown workspace" in out


def test_run_json_reports_the_steps_it_carried_out_as_structured_actions(bridge: Bridge) -> None:
    code, out, _ = bridge.cli("run", "--json")
    assert code == 0
    (outcome,) = json.loads(out)["policies"]
    (step,) = outcome["done"]
    assert step["action"] == "rotate"
    assert step["reason"] == "no current key"
    assert step["description"] == "rotate: no current key"

    code, out, _ = bridge.cli("rotate", "tracing-prod", "--json")
    (outcome,) = json.loads(out)["policies"]
    assert [s["action"] for s in outcome["done"]] == ["rotate"]
    assert outcome["done"][0]["reason"] == "rotation requested"
