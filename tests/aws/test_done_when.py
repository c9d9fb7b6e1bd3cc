"""The issue's acceptance flow: a Secrets Manager target and DynamoDB state, driven through
the Lambda handler (schedule, native rotation) and the CLI (rotate, ack), against moto and
the emulator. Every AWS call the product makes is recorded and checked against the IAM
policy of infra/aws."""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import pytest
from langsmith import Client

from bridge import aws_lambda
from bridge.cli import main as cli
from bridge.emulator import Emulator
from bridge.secrets import KEY_PATTERN
from providers.aws.dynamodb import table_definition
from tests.aws.conftest import REGION, SECRET, TABLE, scheduled_event, secret, stages
from tests.aws.test_iam_policy import granted
from tests.contract.state_backends import atomic_moto_writes
from tests.support.config import with_default_workspace

pytestmark = pytest.mark.integration


class CallRecorder:
    """Every AWS API call the product makes while ``recording``, as IAM action names."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.actions: set[str] = set()
        self._on = False
        original = botocore.client.BaseClient._make_api_call
        recorder = self

        def recorded(client: Any, operation: str, params: Any) -> Any:
            if recorder._on:
                prefix = client.meta.service_model.signing_name
                # IAM has no action for these calls: it checks what they are made of.
                actions = {
                    "SendMessageBatch": ("SendMessage",),
                    "TransactWriteItems": ("ConditionCheckItem", "PutItem"),
                }.get(operation, (operation,))
                recorder.actions.update(f"{prefix}:{action}" for action in actions)
            return original(client, operation, params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recorded)

    @contextmanager
    def recording(self) -> Iterator[None]:
        self._on = True
        try:
            yield
        finally:
            self._on = False


def run_cli(path: Path, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli(["-c", str(path), *args])
    import logging

    logging.getLogger("bridge").handlers.clear()
    assert not KEY_PATTERN.search(out.getvalue() + err.getvalue())
    return code, out.getvalue()


def status(path: Path) -> dict[str, Any]:
    code, out = run_cli(path, "status", "--json")
    assert code == 0
    return json.loads(out)["policies"][0]  # type: ignore[no-any-return]


def deleted(emulator: Emulator, key_id: str) -> bool:
    return next(k for k in emulator.state.inspect_keys() if k["id"] == key_id)["deleted"]  # type: ignore[no-any-return]


def test_lambda_with_secrets_manager_and_dynamodb_end_to_end(
    world: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = CallRecorder(monkeypatch)

    # 1. A scheduled invocation publishes a working key.
    with recorder.recording():
        assert aws_lambda.handler(scheduled_event(), None)["changed"] == 1
    payload = secret()
    for name in ("LANGSMITH_API_KEY", "LANGSMITH_ENDPOINT"):
        monkeypatch.setenv(name, payload[name])
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    assert list(Client().list_projects())  # the official SDK, configured from the secret's JSON
    first = status(world)["current"]

    # 2. rotate: a second generation; AWSPREVIOUS keeps the old payload.
    with recorder.recording():
        assert run_cli(world, "rotate", "tracing-prod")[0] == 0
    second = status(world)
    assert second["current"]["key_id"] != first["key_id"]
    assert second["superseded"][0]["waiting_for"] == ["api", "worker"]
    assert secret("AWSPREVIOUS")["LANGSMITH_API_KEY"] == payload["LANGSMITH_API_KEY"]
    with recorder.recording():
        aws_lambda.handler(scheduled_event(), None)
    assert not deleted(emulator, first["key_id"])

    # 3. Both consumers acknowledge: one with the helper (reads the secret, acks in DynamoDB).
    from bridge.consumer import load_settings

    environ: dict[str, str] = {}
    load_settings("tracing-prod", "api", config=world, environ=environ)
    monkeypatch.setenv("LANGSMITH_API_KEY", environ["LANGSMITH_API_KEY"])
    assert run_cli(world, "ack", "tracing-prod", "--consumer", "worker", "--from-env")[0] == 0

    # 4. The next scheduled invocation revokes the old key and clears AWSPREVIOUS.
    with recorder.recording():
        aws_lambda.handler(scheduled_event(), None)
    assert deleted(emulator, first["key_id"])
    assert all("AWSPREVIOUS" not in s for s in stages().values())
    assert status(world)["superseded"] == []

    # 5. Native rotation: the four steps, as `aws secretsmanager rotate-secret` sends them.
    token = str(uuid.uuid4())
    before = status(world)["current"]
    with recorder.recording():
        step = lambda name: aws_lambda.handler(  # noqa: E731
            {"Step": name, "SecretId": SECRET, "ClientRequestToken": token}, None
        )
        step("createSecret")
        step("createSecret")  # AWS retries steps: idempotent
        assert stages()[token] == ["AWSPENDING"]
        aws_lambda.handler(scheduled_event(), None)  # a scheduled run in between leaves it be
        step("setSecret")
        step("testSecret")
        step("finishSecret")
        step("finishSecret")
    assert stages()[token] == ["AWSCURRENT"]
    after = status(world)
    assert after["current"]["rotation_id"] == token
    assert after["superseded"][0]["key_id"] == before["key_id"]
    assert not deleted(emulator, before["key_id"])  # still waits for the consumers

    # Every AWS call the product made is granted by the template, and nothing is missing.
    assert recorder.actions <= granted(), recorder.actions - granted()


def test_concurrent_runners_mint_exactly_once_per_policy(
    aws, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    atomic_moto_writes(monkeypatch)
    boto3.client("dynamodb", region_name=REGION).create_table(**table_definition(TABLE))
    names = [f"p{i}" for i in range(6)]
    policies = "".join(
        f'[[policy]]\nname = "{n}"\nack = "grace"\n[[policy.target]]\nprovider = "aws"\n'
        f'secret_id = "langsmith/{n}"\nregion = "{REGION}"\n'
        for n in names
    )
    path = tmp_path / "bridge.toml"
    path.write_text(
        f'[langsmith]\nendpoint = "{emulator.url}"\nadmin_key_env = "LANGSMITH_ADMIN_KEY"\n'
        f'[state]\nbackend = "dynamodb"\ntable = "{TABLE}"\nregion = "{REGION}"\n'
        f"{with_default_workspace(policies, emulator.bootstrap['workspace_ids'][0])}"
    )
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])
    emulator.set_faults(latency_ms=15)
    runners = 4
    barrier = threading.Barrier(runners)
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            engine = aws_lambda.build_engine(aws_lambda.load_reference(str(path)))
            with engine:
                barrier.wait()
                engine.run(engine.select())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    minted = [
        k for k in emulator.state.inspect_keys() if k["description"].startswith("langsmith-bridge:")
    ]
    assert sorted(k["description"].split()[1] for k in minted) == [f"policy={n}" for n in names]
