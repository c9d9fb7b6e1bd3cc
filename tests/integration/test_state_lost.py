"""Issue 7, items 1 and 2, against the emulator: a lost state never costs a consumer its key,
and two deployments of one config never delete each other's keys."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bridge.state import Phase
from tests.integration.conftest import Bridge, config_text, policy_toml


def alive(bridge: Bridge) -> set[str]:
    """Ids of the keys LangSmith still accepts."""
    return {k["id"] for k in bridge.emu.state.inspect_keys() if not k.get("deleted")}


def current_key(bridge: Bridge, policy: str = "p") -> str:
    generation = bridge.store().load(policy).current()
    assert generation is not None and generation.key_id is not None
    return generation.key_id


def served(bridge: Bridge, policy: str = "p") -> str:
    return bridge.payload(policy)["LANGSMITH_BRIDGE_MANAGED"]


def test_a_lost_state_adopts_the_served_key_and_keeps_the_superseded_one(make_bridge: Any) -> None:
    bridge = make_bridge(policy_toml("p", consumers=["api"]))
    bridge.run()
    first = current_key(bridge)
    bridge.run("p", force=True)  # first is superseded, waiting for api
    second = current_key(bridge)
    assert {first, second} <= alive(bridge)

    shutil.rmtree(bridge.root / "state")  # a CronJob without a volume; a lost disk
    report = bridge.run()

    assert {first, second} <= alive(bridge), "a lost state deleted a key"
    record = bridge.store().load("p")
    current = record.current()
    assert current is not None and current.key_id == second and current.adopted
    assert [g.key_id for g in record.by_phase(Phase.SUPERSEDED)] == []  # first is too young
    assert not any(step for o in report.outcomes for step in o.done if "Rotate" in repr(step))

    bridge.emu.clock.advance(7200)  # older than any live run could be
    bridge.run()
    superseded = bridge.store().load("p").by_phase(Phase.SUPERSEDED)
    assert [g.key_id for g in superseded] == [first]  # adopted behind its gate
    assert first in alive(bridge)


def test_two_deployments_of_one_config_keep_to_their_own_keys(
    make_bridge: Any, tmp_path: Path
) -> None:
    text = policy_toml("p", ack="grace", consumers=[])
    prod = make_bridge(text)
    copy_root = tmp_path / "copy"
    copy_root.mkdir()
    (copy_root / "bridge.toml").write_text(config_text(prod.emu, text))
    copy = Bridge(prod.emu, copy_root, copy_root / "bridge.toml", prod.monkeypatch)

    for _ in range(3):
        prod.run("p", force=True)
        copy.run("p", force=True)
        prod.emu.clock.advance(8000)

    prod_key, copy_key = current_key(prod), current_key(copy)
    assert {prod_key, copy_key} <= alive(prod), "one deployment deleted the other's key"
    assert prod.store().deployment_id() != copy.store().deployment_id()
