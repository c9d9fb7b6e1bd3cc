"""Drift is content, not a fingerprint: a target holding the current key with other
settings (an edited endpoint, an extra variable) or settings the config no longer asks for
is republished with exactly what the bridge would write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Bridge, policy_toml

pytestmark = pytest.mark.integration


def steps(bridge: Bridge) -> list[str]:
    (outcome,) = bridge.run().outcomes
    return [type(step).__name__ for step in outcome.done]


def target(bridge: Bridge) -> Path:
    return bridge.root / "out" / "p.env"


def test_an_extra_variable_added_to_a_target_is_removed_by_the_next_run(make_bridge) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(policy_toml("p", ack="grace"))
    bridge.run()
    key = bridge.payload("p")["LANGSMITH_API_KEY"]
    target(bridge).write_text(target(bridge).read_text() + "HTTPS_PROXY=http://evil.test:3128\n")

    assert steps(bridge) == ["Republish"]

    assert "HTTPS_PROXY" not in bridge.payload("p")
    assert bridge.payload("p")["LANGSMITH_API_KEY"] == key  # the same key: no rotation
    assert steps(bridge) == []


def test_an_edited_endpoint_is_put_back(make_bridge) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(policy_toml("p", ack="grace"))
    bridge.run()
    published = bridge.payload("p")["LANGSMITH_ENDPOINT"]
    text = target(bridge).read_text().replace(published, "http://127.0.0.1:9")
    target(bridge).write_text(text)

    assert steps(bridge) == ["Republish"]
    assert bridge.payload("p")["LANGSMITH_ENDPOINT"] == published


def test_a_changed_public_endpoint_republishes_every_target(make_bridge) -> None:  # type: ignore[no-untyped-def]
    bridge = make_bridge(policy_toml("p", ack="grace"))
    bridge.run()
    config = bridge.config_path.read_text()
    bridge.config_path.write_text(
        config.replace(
            "[langsmith]\n", '[langsmith]\npublic_endpoint = "https://ls.example.test"\n'
        )
    )

    assert steps(bridge) == ["Republish"]
    assert bridge.payload("p")["LANGSMITH_ENDPOINT"] == "https://ls.example.test"
    assert steps(bridge) == []
