"""The Secrets Manager rotation steps: matching the secret, ordering and retry errors."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bridge import aws_lambda
from bridge.engine.native import _same_secret
from bridge.errors import ConfigError, RotationError
from tests.aws.conftest import SECRET, scheduled_event, stages

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("configured", "given", "same"),
    [
        ("langsmith/prod", "langsmith/prod", True),
        (
            "langsmith/prod",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:langsmith/prod-AbCdEf",
            True,
        ),
        (
            "langsmith/prod",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:langsmith/prod-x-AbCdEf",
            False,
        ),
        (
            "langsmith/prod-x",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:langsmith/prod-x-AbCdEf",
            True,
        ),
        ("langsmith/prod", "langsmith/other", False),
    ],
)
def test_a_secret_is_matched_by_name_or_arn(configured: str, given: str, same: bool) -> None:
    assert _same_secret(configured, given) is same


def rotation(step: str, token: str, secret: str = SECRET) -> None:
    aws_lambda.handler({"Step": step, "SecretId": secret, "ClientRequestToken": token}, None)


def test_a_secret_no_policy_targets_is_refused(world: Path) -> None:
    with pytest.raises(ConfigError, match="no policy targets secret"):
        rotation("createSecret", str(uuid.uuid4()), "someone/else")


def test_an_unknown_step_is_refused(world: Path) -> None:
    with pytest.raises(ConfigError, match="unknown rotation step"):
        rotation("deleteSecret", str(uuid.uuid4()))


def test_test_step_without_a_staged_version_fails_so_aws_retries(world: Path) -> None:
    aws_lambda.handler(scheduled_event(), None)
    with pytest.raises(RotationError, match="no pending version"):
        rotation("testSecret", str(uuid.uuid4()))


def test_finish_is_idempotent_and_a_retry_of_create_mints_nothing(world: Path, emulator) -> None:  # type: ignore[no-untyped-def]
    aws_lambda.handler(scheduled_event(), None)
    token = str(uuid.uuid4())
    rotation("createSecret", token)
    keys_after_create = len(emulator.state.inspect_keys())
    rotation("createSecret", token)
    assert len(emulator.state.inspect_keys()) == keys_after_create
    for step in ("setSecret", "testSecret", "finishSecret", "finishSecret"):
        rotation(step, token)
    assert stages()[token] == ["AWSCURRENT"]


def test_a_stalled_native_rotation_is_abandoned_and_unstaged(world: Path, emulator) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from bridge.config import DynamoDBStateSettings
    from bridge.state import Phase
    from providers.aws.dynamodb import DynamoDBStateStore
    from tests.aws.conftest import REGION, TABLE

    aws_lambda.handler(scheduled_event(), None)
    token = str(uuid.uuid4())
    rotation("createSecret", token)
    assert stages()[token] == ["AWSPENDING"]
    # AWS gave up on the rotation two hours ago: age the generation past the native window.
    store = DynamoDBStateStore(
        DynamoDBStateSettings(backend="dynamodb", table=TABLE, region=REGION)
    )
    record = store.load("tracing-prod")
    stalled = record.find(token)
    store.save(
        record.with_generation(
            stalled.model_copy(update={"started_at": stalled.started_at - timedelta(hours=2)})
        )
    )

    aws_lambda.handler(scheduled_event(), None)

    assert token not in stages()  # no AWSPENDING left pointing at a deleted key
    assert store.load("tracing-prod").find(token).phase is Phase.ABANDONED
    assert next(k for k in emulator.state.inspect_keys() if k["id"] == stalled.key_id)["deleted"]
    store.close()
