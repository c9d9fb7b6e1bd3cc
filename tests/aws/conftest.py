"""AWS fixtures: moto in-process with fake credentials, and a Lambda runtime wired to the
emulator through a config file in ``tmp_path``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bridge import aws_lambda
from bridge.emulator import Emulator
from providers.aws.dynamodb import table_definition
from tests.contract.state_backends import atomic_moto_writes
from tests.support.aws import REGION, fake_aws_environment
from tests.support.config import with_default_workspace

SECRET = "langsmith/tracing-prod"
TABLE = "bridge-state"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fake_aws_environment(monkeypatch)
    with mock_aws():
        yield


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator().start() as emu:
        yield emu


@pytest.fixture
def lambda_env(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Write a config, point the Lambda at it, and hand back a function to invoke it."""
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])
    monkeypatch.setenv("LANGSMITH_BRIDGE_LOG_LEVEL", "warning")
    aws_lambda.reset_runtime()

    def configure(body: str) -> Any:
        path = tmp_path / "bridge.toml"
        path.write_text(
            f'[langsmith]\nendpoint = "{emulator.url}"\nadmin_key_env = "LANGSMITH_ADMIN_KEY"\n'
            f"{with_default_workspace(body, emulator.bootstrap['workspace_ids'][0])}"
        )
        monkeypatch.setenv("LANGSMITH_BRIDGE_CONFIG", str(path))
        aws_lambda.reset_runtime()
        return aws_lambda.handler

    yield configure
    aws_lambda.reset_runtime()


def scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-27T12:00:00Z",
        "region": REGION,
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/langsmith-bridge"],
        "detail": {},
    }


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:langsmith-bridge",
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


def make_queue() -> str:
    return str(boto3.client("sqs", region_name=REGION).create_queue(QueueName="fanout")["QueueUrl"])


@pytest.fixture
def world(aws, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Secrets Manager target and DynamoDB state on moto; the Lambda reads this config."""
    atomic_moto_writes(monkeypatch)
    boto3.client("dynamodb", region_name=REGION).create_table(**table_definition(TABLE))
    workspace = emulator.bootstrap["workspace_ids"][0]
    path = tmp_path / "bridge.toml"
    path.write_text(
        f"""
[langsmith]
endpoint = "{emulator.url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"
[state]
backend = "dynamodb"
table = "{TABLE}"
region = "{REGION}"
[run]
verify_attempts = 1
[[policy]]
name = "tracing-prod"
workspaces = ["{workspace}"]
consumers = ["api", "worker"]
[[policy.target]]
provider = "aws"
secret_id = "{SECRET}"
region = "{REGION}"
"""
    )
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])
    monkeypatch.setenv("LANGSMITH_BRIDGE_CONFIG", str(path))
    monkeypatch.setenv("LANGSMITH_BRIDGE_LOG_LEVEL", "warning")
    aws_lambda.reset_runtime()
    yield path
    aws_lambda.reset_runtime()


def secret(stage: str = "AWSCURRENT", version: str | None = None) -> dict[str, str]:
    sm = boto3.client("secretsmanager", region_name=REGION)
    kwargs = {"VersionId": version} if version else {"VersionStage": stage}
    return json.loads(sm.get_secret_value(SecretId=SECRET, **kwargs)["SecretString"])  # type: ignore[no-any-return]


def stages() -> dict[str, list[str]]:
    sm = boto3.client("secretsmanager", region_name=REGION)
    return {v: s for v, s in sm.describe_secret(SecretId=SECRET)["VersionIdsToStages"].items() if s}
