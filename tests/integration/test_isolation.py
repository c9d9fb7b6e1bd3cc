"""Issue 7, item 12: one damaged policy never stops the others, whatever it raises."""

from __future__ import annotations

from typing import Any

from bridge.config import TargetConfig
from bridge.provider import Provider
from bridge.wiring import Connections
from tests.integration.conftest import policy_toml
from tests.support.faults import ALWAYS, FaultyProvider


def test_an_unforeseen_error_in_one_policy_fails_it_alone(make_bridge: Any) -> None:
    bridge = make_bridge(policy_toml("good", ack="grace"), policy_toml("bad", ack="grace"))
    with Connections() as connections:

        def open_target(target: TargetConfig, policy: str) -> Provider:
            real = connections.open(target, policy)
            if policy != "bad":
                return real
            return FaultyProvider(real, {"observe": RecursionError("too deep")}, times=ALWAYS)

        with bridge.engine(open_target=open_target) as engine:
            report = engine.run(engine.select())

    outcomes = {o.policy: o for o in report.outcomes}
    assert outcomes["good"].ok and outcomes["good"].done
    assert outcomes["bad"].error == "internal error (RecursionError): too deep"
    assert not report.ok
    assert bridge.store().load("bad").last_error == outcomes["bad"].error
