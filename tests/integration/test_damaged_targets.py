"""Bad input gets one clear line, and nothing is touched: a run over a policy whose target
is damaged blocks that policy alone with a line naming the target (never its content) and
reconciles the others; a Secrets Manager value that is no payload is reported the same way
by moto-backed providers, and its secret is left as it is."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bridge.config.targets import AwsTarget
from bridge.emulator import Emulator
from bridge.engine import observe_targets
from bridge.errors import ProviderConflict, ProviderError
from bridge.payload import API_KEY, ENDPOINT, MARKER, Payload, encode
from bridge.secrets import KEY_PATTERN, Secret
from providers.aws.secret_view import owner_tags
from providers.aws.secrets_manager import SecretsManagerProvider
from tests.integration.conftest import Bridge, policy_toml
from tests.support.aws import fake_aws_environment
from tests.support.keys import new_key, rotation_id

pytestmark = pytest.mark.integration

REGION = "us-east-1"
SECRET = "prod/langsmith"
POLICY = "aws-policy"
REFERENCE = f"{SECRET}@{REGION}"


def hides(key: str, text: str) -> bool:
    return key not in text and key[8:40] not in text and key[-10:] not in text


# -- a run over file targets -----------------------------------------------------------


def _replaced_by(make: Callable[[Path], None]) -> Callable[[Path, str], None]:
    def damage(path: Path, key: str) -> None:
        path.unlink()
        make(path)

    return damage


def _written(build: Callable[[str], bytes]) -> Callable[[Path, str], None]:
    def damage(path: Path, key: str) -> None:
        path.write_bytes(build(key))

    return damage


FILE_DAMAGE: dict[str, Callable[[Path, str], None]] = {
    "JSON nested 60000 deep": _written(lambda k: b"[" * 60_000 + json.dumps(k).encode()),
    "a JSON array": _written(lambda k: json.dumps([k]).encode()),
    "a non-string value": _written(lambda k: json.dumps({API_KEY: k, "N": 1}).encode()),
    "binary garbage": _written(lambda k: b"\x00\xff" + k.encode() + b"\xfe"),
    "a huge file": _written(lambda k: json.dumps({API_KEY: k, "PAD": "x" * 100_000}).encode()),
    "a directory": _replaced_by(Path.mkdir),
    "a FIFO": _replaced_by(os.mkfifo),
    "a dangling symlink": _replaced_by(lambda p: p.symlink_to(p.with_name("gone.json"))),
}


@pytest.fixture
def two_policies(make_bridge: Callable[..., Bridge], emulator: Emulator) -> Bridge:
    """Policies ``good`` and ``bad``, each with one JSON file target, published once."""
    workspace = emulator.bootstrap["workspace_ids"][0]
    policies = (
        policy_toml(name, workspaces=[workspace], fmt="json", ack="grace")
        for name in ("good", "bad")
    )
    bridge = make_bridge(*policies)
    bridge.run()
    return bridge


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", FILE_DAMAGE)
def test_a_damaged_target_blocks_its_policy_alone_with_one_clear_line(
    two_policies: Bridge, damage: str
) -> None:
    bridge = two_policies
    target = bridge.root / "out" / "bad.env"
    key = bridge.payload("bad")[API_KEY]
    FILE_DAMAGE[damage](target, key)
    before = _snapshot(target)
    good_key = bridge.payload("good")[API_KEY]

    code, out, err = bridge.cli("run")
    json_code, json_out, _ = bridge.cli("run", "--json")
    rotate_code, _, rotate_err = bridge.cli("rotate", "good")

    assert (code, json_code, rotate_code) == (1, 1, 0), rotate_err
    output = out + err + json_out + rotate_err
    assert "Traceback" not in output
    assert hides(key, output) and not KEY_PATTERN.search(output)
    errors = {p["policy"]: p["error"] for p in json.loads(json_out)["policies"]}
    assert errors["good"] is None
    assert errors["bad"].startswith(f"target file:{target} cannot be read: file observe {target}: ")
    assert "\n" not in errors["bad"]
    assert [line for line in (out + err).splitlines() if str(target) in line]
    assert _snapshot(target) == before  # nothing touched
    assert bridge.payload("good")[API_KEY] != good_key  # the other policy still rotates


def test_the_engine_reports_the_blocked_policy_and_reconciles_the_rest(
    two_policies: Bridge,
) -> None:
    bridge = two_policies
    target = bridge.root / "out" / "bad.env"
    target.write_text("[" * 60_000)

    with bridge.engine() as engine:
        report = engine.run(engine.select(None), force=frozenset({"good", "bad"}))

    outcomes = {o.policy: o for o in report.outcomes}
    assert outcomes["good"].ok and outcomes["good"].done
    assert not outcomes["bad"].done
    assert outcomes["bad"].error == (
        f"target file:{target} cannot be read: file observe {target}: "
        "unreadable json: JSON nested too deeply to be a payload"
    )
    assert target.read_text() == "[" * 60_000


def _snapshot(path: Path) -> tuple[str, Any]:
    if path.is_symlink():
        return "link", str(path.readlink())
    if path.is_dir():
        return "dir", sorted(p.name for p in path.iterdir())
    if path.is_fifo():
        return "fifo", None
    return "file", path.read_bytes()


# -- Secrets Manager values ------------------------------------------------------------


@pytest.fixture
def sm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_aws_environment(monkeypatch)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def provider(client: Any, **target: Any) -> SecretsManagerProvider:
    config = AwsTarget.model_validate(
        {"provider": "aws", "secret_id": SECRET, "region": REGION, **target}
    )
    return SecretsManagerProvider(config, POLICY, client=client)


def payload() -> Payload:
    return Payload(POLICY, rotation_id(), Secret(new_key()), {ENDPOINT: "https://x.test"})


SECRET_DAMAGE: dict[str, tuple[Callable[[str], dict[str, Any]], str]] = {
    "not JSON": (lambda k: {"SecretString": f"{API_KEY}={k}"}, "not valid JSON (line 1)"),
    "a JSON array": (lambda k: {"SecretString": json.dumps([k])}, "a JSON array"),
    "a non-string value": (
        lambda k: {"SecretString": json.dumps({API_KEY: k, MARKER: 1})},
        "LANGSMITH_BRIDGE_MANAGED is a JSON number, not a string",
    ),
    "JSON nested 60000 deep": (
        lambda k: {"SecretString": "[" * 60_000 + json.dumps(k)},
        "JSON nested too deeply to be a payload",
    ),
    "a NUL": (
        lambda k: {"SecretString": json.dumps({API_KEY: k + "\x00"})},
        "holds a NUL character",
    ),
    "binary": (lambda k: {"SecretBinary": b"\xff\x00" + k.encode()}, "no SecretString"),
    "huge (AWS refuses it; moto does not)": (
        lambda k: {"SecretString": json.dumps({API_KEY: k, "PAD": "x" * 100_000})},
        "too large to be a payload",
    ),
}


@pytest.mark.parametrize("damage", SECRET_DAMAGE)
def test_a_damaged_value_in_an_owned_secret_is_reported_and_left_alone(
    sm: Any, damage: str
) -> None:
    build, reason = SECRET_DAMAGE[damage]
    key = new_key()
    sm.create_secret(Name=SECRET, Tags=owner_tags(POLICY))
    damaged = sm.put_secret_value(SecretId=SECRET, **build(key))["VersionId"]

    (view,) = observe_targets({"aws": provider(sm)})
    with pytest.raises(ProviderError) as reading:
        provider(sm).read()
    with pytest.raises(ProviderConflict) as publishing:
        provider(sm).publish(payload())

    assert view.ownership == "foreign"
    assert view.detail is not None and reason in view.detail and damaged in view.detail
    assert str(reading.value).startswith(f"aws read {REFERENCE}: unreadable payload")
    assert str(publishing.value).startswith(f"aws publish {REFERENCE}: ")
    for text in (view.detail, str(reading.value), str(publishing.value)):
        assert hides(key, text) and "\n" not in text
    stages = sm.describe_secret(SecretId=SECRET)["VersionIdsToStages"]
    assert {v: s for v, s in stages.items() if s} == {damaged: ["AWSCURRENT"]}  # untouched


def test_a_deeply_nested_value_in_a_secret_to_adopt_is_judged_not_raised(sm: Any) -> None:
    """Before parsing was total, RecursionError escaped here and ended the run."""
    sm.create_secret(Name=SECRET, SecretString="[" * 60_000)
    adopting = provider(sm, adopt=True)

    (view,) = observe_targets({"aws": adopting})

    assert view.error is None
    assert view.ownership == "adoptable" and view.fingerprint is None


def test_a_payload_the_bridge_wrote_is_still_read(sm: Any) -> None:
    written = payload()
    sm.create_secret(Name=SECRET, Tags=owner_tags(POLICY))
    sm.put_secret_value(SecretId=SECRET, SecretString=encode(written.reveal_env(), "json"))

    stored = provider(sm).read()

    assert stored is not None and stored.same_content(written)
