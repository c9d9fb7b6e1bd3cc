"""``adopt = true`` takes over a secret that already holds a value: the adapter reports it
adoptable, the planner publishes to it, and the hand-placed value stays as AWSPREVIOUS.
Without ``adopt`` the same secret blocks the policy and is never written."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from bridge.config import parse_config
from bridge.emulator import Emulator
from bridge.wiring import build_engine
from tests.aws.conftest import REGION, SECRET, secret, stages

pytestmark = pytest.mark.integration

HAND_PLACED = {"LANGSMITH_API_KEY": "not-a-bridge-key", "LANGSMITH_ENDPOINT": "https://x.test"}


def config(emulator: Emulator, tmp_path: Any, *, adopt: bool) -> Any:
    return parse_config(
        {
            "langsmith": {"endpoint": emulator.url, "admin_key_env": "LANGSMITH_ADMIN_KEY"},
            "state": {"backend": "file", "path": str(tmp_path / "state.db")},
            "run": {"verify_attempts": 1},
            "policy": [
                {
                    "name": "tracing-prod",
                    "default_workspace": emulator.bootstrap["workspace_ids"][0],
                    "ack": "grace",
                    "target": [
                        {"provider": "aws", "secret_id": SECRET, "region": REGION, "adopt": adopt}
                    ],
                }
            ],
        }
    )


@pytest.fixture
def hand_placed(aws: None) -> str:
    sm = boto3.client("secretsmanager", region_name=REGION)
    return str(sm.create_secret(Name=SECRET, SecretString=json.dumps(HAND_PLACED))["VersionId"])


def run(emulator: Emulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, *, adopt: bool) -> Any:
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])
    with build_engine(config(emulator, tmp_path, adopt=adopt), sleep=lambda _: None) as engine:
        return engine.run(engine.select())


def test_adopt_takes_over_a_secret_that_already_holds_a_value(
    hand_placed: str, emulator: Emulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = run(emulator, tmp_path, monkeypatch, adopt=True)

    assert report.ok, [o.error for o in report.outcomes]
    published = secret()
    assert published["LANGSMITH_BRIDGE_MANAGED"].startswith("policy=tracing-prod rotation=")
    assert published["LANGSMITH_API_KEY"].startswith("lsv2_sk_")
    assert secret("AWSPREVIOUS") == HAND_PLACED  # the old value stays readable
    assert stages()[hand_placed] == ["AWSPREVIOUS"]
    tags = boto3.client("secretsmanager", region_name=REGION).describe_secret(SecretId=SECRET)
    assert {t["Key"]: t["Value"] for t in tags["Tags"]}["langsmith-bridge:policy"] == "tracing-prod"

    again = run(emulator, tmp_path, monkeypatch, adopt=True)
    assert again.ok and not again.outcomes[0].done  # ours now: nothing more to do


def test_without_adopt_the_secret_blocks_the_policy_and_is_not_written(
    hand_placed: str, emulator: Emulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = run(emulator, tmp_path, monkeypatch, adopt=False)

    (outcome,) = report.outcomes
    assert not outcome.ok and "set adopt = true" in (outcome.error or "")
    assert secret() == HAND_PLACED
    assert stages() == {hand_placed: ["AWSCURRENT"]}
    minted = [k for k in emulator.state.inspect_keys() if k["description"] != "Bootstrap admin key"]
    assert minted == []
