"""A config change of what consumers read (``public_endpoint``) republishes an AWS target
although its value is not read on a no-op run: the record remembers what it published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.config import parse_config
from bridge.emulator import Emulator
from bridge.wiring import build_engine
from tests.aws.conftest import REGION, SECRET, secret

pytestmark = pytest.mark.integration


def run(emulator: Emulator, tmp_path: Path, **langsmith: str) -> Any:
    config = parse_config(
        {
            "langsmith": {
                "endpoint": emulator.url,
                "admin_key_env": "LANGSMITH_ADMIN_KEY",
                **langsmith,
            },
            "state": {"backend": "file", "path": str(tmp_path / "state.db")},
            "run": {"verify_attempts": 1},
            "policy": [
                {
                    "name": "tracing-prod",
                    "default_workspace": emulator.bootstrap["workspace_ids"][0],
                    "ack": "grace",
                    "target": [{"provider": "aws", "secret_id": SECRET, "region": REGION}],
                }
            ],
        }
    )
    with build_engine(config, sleep=lambda _: None) as engine:
        (outcome,) = engine.run(engine.select()).outcomes
    assert outcome.ok, outcome.error
    return [type(step).__name__ for step in outcome.done]


def test_a_changed_public_endpoint_reaches_a_secret_whose_value_is_not_read(
    aws: None, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])
    assert run(emulator, tmp_path) == ["Rotate"]
    key = secret()["LANGSMITH_API_KEY"]
    assert run(emulator, tmp_path) == []

    assert run(emulator, tmp_path, public_endpoint="https://ls.example.test") == ["Republish"]

    assert secret()["LANGSMITH_ENDPOINT"] == "https://ls.example.test"
    assert secret()["LANGSMITH_API_KEY"] == key
    assert run(emulator, tmp_path, public_endpoint="https://ls.example.test") == []
