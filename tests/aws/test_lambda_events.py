"""The Lambda entry: scheduled runs, SQS batches with partial failures, fan-out."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from bridge.errors import ConfigError
from tests.aws.conftest import REGION, make_queue, scheduled_event, sqs_event
from tests.support.config import with_default_workspace

pytestmark = pytest.mark.integration


def file_policies(tmp_path: Path, *names: str) -> str:
    return "".join(
        f'[[policy]]\nname = "{name}"\nack = "grace"\n'
        f'[[policy.target]]\nprovider = "file"\npath = "{tmp_path}/out/{name}.env"\n'
        for name in names
    )


def state(tmp_path: Path) -> str:
    return f'[state]\npath = "{tmp_path}/state.json"\n[run]\nverify_attempts = 1\n'


def test_scheduled_event_reconciles_every_policy(lambda_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    handler = lambda_env(state(tmp_path) + file_policies(tmp_path, "a", "b"))
    result = handler(scheduled_event(), None)
    assert result == {"policies": 2, "changed": 2, "skipped": 0, "failed": []}
    assert (tmp_path / "out/a.env").exists() and (tmp_path / "out/b.env").exists()
    assert handler(scheduled_event(), None)["changed"] == 0  # warm container, nothing due


def test_sqs_batch_reports_only_the_failed_messages(lambda_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    handler = lambda_env(state(tmp_path) + file_policies(tmp_path, "good", "blocked"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out/blocked.env").write_text("LANGSMITH_API_KEY=hand-written\n")  # not ours
    result = handler(
        sqs_event(
            json.dumps({"policy": "good"}),
            json.dumps({"policy": "blocked"}),
            "not json",
            json.dumps({"policy": "no-such-policy"}),
            json.dumps({"policy": "good"}),  # a duplicate delivery is harmless
        ),
        None,
    )
    assert result == {"batchItemFailures": [{"itemIdentifier": m} for m in ("m2", "m3", "m1")]}
    assert (tmp_path / "out/good.env").exists()


def test_scheduled_event_fans_out_one_message_per_policy(lambda_env, tmp_path: Path, aws) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue()
    names = [f"p{i:02d}" for i in range(23)]
    handler = lambda_env(
        f'[state]\npath = "{tmp_path}/state.json"\n[run]\nfanout_queue_url = "{queue}"\n'
        + file_policies(tmp_path, *names)
    )
    assert handler(scheduled_event(), None) == {"fanned_out": 23}
    sqs = boto3.client("sqs", region_name=REGION)
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        bodies += [m["Body"] for m in messages]
        for m in messages:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(json.loads(b)["policy"] for b in bodies) == names
    assert not (tmp_path / "out").exists()  # the scheduled run itself touched nothing
    assert handler(sqs_event(*bodies), None) == {"batchItemFailures": []}
    assert len(list((tmp_path / "out").iterdir())) == 23


def test_unknown_event_is_a_clear_error(lambda_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    handler = lambda_env(state(tmp_path) + file_policies(tmp_path, "a"))
    with pytest.raises(ConfigError, match="unrecognised event"):
        handler({"hello": "world"}, None)


def test_failed_policy_fails_the_scheduled_invocation(lambda_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from bridge.aws_lambda import RunFailed

    handler = lambda_env(state(tmp_path) + file_policies(tmp_path, "ok", "blocked"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out/blocked.env").write_text("SOMETHING=else\n")
    with pytest.raises(RunFailed, match="blocked"):
        handler(scheduled_event(), None)
    assert (tmp_path / "out/ok.env").exists()


def test_an_unreachable_langsmith_fails_the_scheduled_invocation_and_the_whole_batch(  # type: ignore[no-untyped-def]
    lambda_env, emulator, tmp_path: Path
) -> None:
    from bridge.aws_lambda import RunFailed

    handler = lambda_env(state(tmp_path) + file_policies(tmp_path, "a", "b"))
    handler(scheduled_event(), None)  # both published: nothing is due any more
    emulator.set_faults(fault_rate=1.0, fault_status=503)

    with pytest.raises(RunFailed, match="key listing failed"):
        handler(scheduled_event(), None)
    result = handler(sqs_event(json.dumps({"policy": "a"}), json.dumps({"policy": "b"})), None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}


def test_bad_config_reference_is_a_config_error(lambda_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bridge import aws_lambda

    monkeypatch.setenv("LANGSMITH_BRIDGE_CONFIG", "/nonexistent/bridge.toml")
    aws_lambda.reset_runtime()
    with pytest.raises(ConfigError, match="not found"):
        aws_lambda.handler(scheduled_event(), None)


def test_config_from_s3_and_ssm(lambda_env, tmp_path: Path, aws, emulator, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bridge import aws_lambda

    body = (
        f'[langsmith]\nendpoint = "{emulator.url}"\nadmin_key_env = "LANGSMITH_ADMIN_KEY"\n'
        + state(tmp_path)
        + with_default_workspace(
            file_policies(tmp_path, "from-remote"), emulator.bootstrap["workspace_ids"][0]
        )
    )
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="cfg")
    s3.put_object(Bucket="cfg", Key="bridge.toml", Body=body.encode())
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/bridge/config", Value=body, Type="SecureString"
    )
    for reference in ("s3://cfg/bridge.toml", "ssm:/bridge/config"):
        monkeypatch.setenv("LANGSMITH_BRIDGE_CONFIG", reference)
        aws_lambda.reset_runtime()
        assert aws_lambda.handler(scheduled_event(), None)["policies"] == 1


def test_logs_are_json_lines_without_secrets(
    lambda_env, tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    from bridge.secrets import KEY_PATTERN

    monkeypatch.setenv("LANGSMITH_BRIDGE_LOG_LEVEL", "debug")
    handler = lambda_env(state(tmp_path) + file_policies(tmp_path, "a"))
    monkeypatch.setenv("LANGSMITH_BRIDGE_LOG_LEVEL", "debug")
    handler(scheduled_event(), None)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert {"minted", "published", "current", "run_finished"} <= {r.get("event") for r in records}
    assert not KEY_PATTERN.search("\n".join(lines))
