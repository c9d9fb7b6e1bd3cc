"""What a run costs in Secrets Manager calls, through the production engine on moto: a
no-op run reads no secret value, a rotation spends five calls, and every target and policy
of a process shares one client."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.client
import pytest

from bridge.config import parse_config
from bridge.emulator import Emulator
from bridge.engine import Engine
from bridge.wiring import Connections, build_engine
from tests.aws.conftest import REGION

pytestmark = pytest.mark.integration

POLICIES = ("p0", "p1", "p2")


class SecretsManagerCalls:
    """Counts the Secrets Manager operations every client in the process sends."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[str] = []
        original = botocore.client.BaseClient._make_api_call
        seen = self.seen

        def counted(client: Any, operation: str, params: Any) -> Any:
            if client.meta.service_model.service_name == "secretsmanager":
                seen.append(operation)
            return original(client, operation, params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)

    def take(self) -> list[str]:
        taken = list(self.seen)
        self.seen.clear()
        return taken


@pytest.fixture
def calls(aws: None, monkeypatch: pytest.MonkeyPatch) -> SecretsManagerCalls:
    return SecretsManagerCalls(monkeypatch)


@pytest.fixture
def engine(
    aws: None, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Engine, Connections]]:
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])
    config = parse_config(
        {
            "langsmith": {"endpoint": emulator.url, "admin_key_env": "LANGSMITH_ADMIN_KEY"},
            "state": {"backend": "file", "path": str(tmp_path / "state.db")},
            "run": {"verify_attempts": 1},
            "policy": [
                {
                    "name": name,
                    "default_workspace": emulator.bootstrap["workspace_ids"][0],
                    "ack": "grace",
                    "target": [
                        {"provider": "aws", "secret_id": f"langsmith/{name}", "region": REGION}
                    ],
                }
                for name in POLICIES
            ],
        }
    )
    connections = Connections()
    with build_engine(config, connections=connections, sleep=lambda _: None) as built:
        yield built, connections


def run(engine: Engine, *force: str) -> None:
    report = engine.run(engine.select(), force=frozenset(force))
    assert report.ok, [o.error for o in report.outcomes]


def test_a_no_op_run_reads_no_secret_value(
    engine: tuple[Engine, Connections], calls: SecretsManagerCalls
) -> None:
    bridge, _ = engine
    run(bridge)
    calls.take()

    run(bridge)

    assert Counter(calls.take()) == {"DescribeSecret": len(POLICIES)}


def test_a_rotation_costs_five_calls_observation_included(
    engine: tuple[Engine, Connections], calls: SecretsManagerCalls
) -> None:
    bridge, _ = engine
    run(bridge)
    calls.take()

    report = bridge.run(bridge.select(["p0"]), force=frozenset({"p0"}))

    assert report.ok
    assert calls.take() == [
        "DescribeSecret",  # observe: AWSCURRENT is on the version the state recorded
        "PutSecretValue",  # AWSPENDING, under the rotation id
        "GetSecretValue",  # read back and compare
        "UpdateSecretVersionStage",  # AWSCURRENT moves, a compare-and-swap
        "UpdateSecretVersionStage",  # AWSPENDING cleared
    ]


def test_every_target_and_policy_of_a_process_shares_one_client(
    engine: tuple[Engine, Connections],
) -> None:
    bridge, connections = engine
    run(bridge)
    run(bridge, "p1")

    assert connections.connection("aws").clients.built == 1


def test_revoking_the_superseded_key_costs_one_call_beside_the_observation(
    engine: tuple[Engine, Connections], calls: SecretsManagerCalls
) -> None:
    bridge, _ = engine
    run(bridge)
    run(bridge, "p0")
    calls.take()

    report = bridge.run(bridge.select(["p0"]))

    assert [type(step).__name__ for step in report.outcomes[0].done] == ["Revoke"]
    assert calls.take() == [
        "DescribeSecret",  # observe, reused by retire
        "UpdateSecretVersionStage",  # AWSPREVIOUS cleared from the revoked key's version
    ]
