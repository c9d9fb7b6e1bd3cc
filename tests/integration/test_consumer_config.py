"""A consumer-only config: the policy's name, the target's address and the ack channel,
nothing of the bridge's. ``bridge.consumer.load_settings`` and ``ack`` take it, and its
acks open the gate over either channel: the state, or ``serve``'s HTTP ack."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.config import ConsumerConfig, load_any_config
from bridge.consumer import load_settings
from bridge.errors import ConfigError
from bridge.payload import API_KEY
from tests.integration.conftest import Bridge, policy_toml
from tests.support.serving import served

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("langsmith-bridge")


def consumer_toml(bridge: Bridge, ack: str) -> Path:
    path = bridge.root / "consumer.toml"
    path.write_text(
        f"""
[consumer]
policy = "tracing"
name = "api"
replica = "api-0"

[target]
provider = "file"
path = "{bridge.root / "out" / "tracing.env"}"

{ack}
"""
    )
    return path


def rotated(make_bridge: Callable[..., Bridge]) -> tuple[Bridge, str]:
    bridge = make_bridge(
        policy_toml("tracing", consumers=["api"], ack="explicit", min_overlap="0s")
    )
    bridge.run()
    bridge.run("tracing", force=True)
    return bridge, bridge.payload("tracing")[API_KEY]


def waiting(bridge: Bridge) -> list[list[str]]:
    return [sorted(s["waiting_for"]) for s in bridge.status("tracing")["superseded"]]


def test_a_consumer_config_with_the_state_acks_and_opens_the_gate(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge, key = rotated(make_bridge)
    state = f'[ack.state]\npath = "{bridge.config.state.path}"'  # type: ignore[union-attr]
    config = consumer_toml(bridge, state)
    assert isinstance(load_any_config(config), ConsumerConfig)
    environ: dict[str, str] = {}

    settings = load_settings(config=config, environ=environ)

    assert (settings.policy, environ[API_KEY]) == ("tracing", key)
    assert waiting(bridge) == [[]]  # the superseded key waits for no one now
    bridge.run()
    assert bridge.status("tracing")["superseded"] == []


def test_a_consumer_config_with_the_url_acks_over_http_from_python_and_the_cli(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge, key = rotated(make_bridge)
    with served(bridge.config, bridge.emu.clock.now) as service:
        config = consumer_toml(bridge, f'[ack]\nurl = "{service.url}"')
        assert waiting(bridge) == [["api"]]
        done = subprocess.run(
            [str(CLI), "-c", str(config), "ack", "--from-env"],
            env={"PATH": os.environ["PATH"], API_KEY: key},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "tracing: api acknowledged" in done.stdout and key not in done.stdout + done.stderr
        assert waiting(bridge) == [[]]
        load_settings("tracing", "api", config=config, environ={})  # the heartbeat, in Python


def test_a_consumer_config_is_checked_before_anything_is_sent(
    make_bridge: Callable[..., Bridge], tmp_path: Path
) -> None:
    bridge, _key = rotated(make_bridge)
    cases = {
        "plain http off-cluster": '[ack]\nurl = "http://bridge.example.com"',
        "two channels": '[ack]\nurl = "https://bridge.example.com"\n[ack.state]\npath = "s"',
        "no channel": "[ack]",
    }
    for name, ack in cases.items():
        with pytest.raises(ConfigError):
            load_any_config(consumer_toml(bridge, ack))
        assert name
    good = consumer_toml(bridge, '[ack]\nurl = "http://langsmith-bridge.platform.svc:8080"')
    with pytest.raises(ConfigError, match="for 'api' of policy 'tracing'"):
        load_settings("tracing", "worker", config=good, environ={}, ack=False)
