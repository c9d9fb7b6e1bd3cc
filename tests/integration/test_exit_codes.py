"""Failures are loud and scriptable: the exit codes of ``run``, ``rotate``, ``plan`` and
``status``, documented in the README and at the top of ``bridge/cli.py``."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.integration.conftest import Bridge, policy_toml

pytestmark = pytest.mark.integration


@pytest.fixture
def bridge(make_bridge) -> Bridge:  # type: ignore[no-untyped-def]
    return make_bridge(policy_toml("p", ack="grace"))  # type: ignore[no-any-return]


def test_run_fails_when_langsmith_cannot_list_keys_even_with_nothing_to_do(
    bridge: Bridge,
) -> None:
    assert bridge.cli("run")[0] == 0
    bridge.emu.set_faults(fault_rate=1.0, fault_status=503)

    code, out, _ = bridge.cli("run", "--json")

    assert code == 1
    report = json.loads(out)
    assert "503" in report["listing_error"]
    assert [p["error"] for p in report["policies"]] == [None]  # nothing was acted on blind


def test_a_policy_held_by_another_runner_exits_3_and_rotates_nothing(bridge: Bridge) -> None:
    assert bridge.cli("run")[0] == 0
    before = bridge.store().load("p").current()

    with bridge.store().lease("p", "another-runner", ttl=timedelta(minutes=5)):
        code, out, _ = bridge.cli("rotate", "p")

    assert code == 3
    assert "skipped" in out
    assert bridge.store().load("p").current() == before


@pytest.mark.parametrize("command", [["status"], ["run"], ["plan"]])
def test_an_unknown_policy_is_a_usage_error(bridge: Bridge, command: list[str]) -> None:
    code, _, err = bridge.cli(*command, "--policy", "nope")

    assert code == 2
    assert "no such policy: nope" in err


def test_rotate_of_an_unknown_policy_is_a_usage_error(bridge: Bridge) -> None:
    assert bridge.cli("rotate", "nope")[0] == 2


def test_plan_detailed_exitcode_says_whether_changes_are_pending(bridge: Bridge) -> None:
    assert bridge.cli("plan", "--detailed-exitcode")[0] == 4
    assert bridge.cli("plan")[0] == 0  # without the flag, pending changes are success
    assert bridge.cli("run")[0] == 0
    assert bridge.cli("plan", "--detailed-exitcode")[0] == 0


def test_status_check_fails_until_the_policy_has_a_current_key(bridge: Bridge) -> None:
    code, _, err = bridge.cli("status", "--check")
    assert code == 1 and "p: no current key" in err

    assert bridge.cli("run")[0] == 0

    assert bridge.cli("status", "--check")[0] == 0
