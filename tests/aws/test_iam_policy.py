"""The least-privilege IAM policy in infra/aws grants exactly what the code calls.

The action lists are exported by the adapters themselves (and the adapters' own tests hold
them equal to the calls they make); here the template is held equal to those lists, and a
full Lambda scenario (see ``test_done_when``) checks every recorded call against it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "infra/aws").glob("*.yaml"))

# What the Lambda service itself needs from the role to poll the fan-out queue.
SQS_EVENT_SOURCE = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# Only when the secrets use a customer managed KMS key (a condition in the template).
SECRETS_KMS = {"kms:Decrypt", "kms:GenerateDataKey"}


def template(name: str = "template.yaml") -> dict[str, Any]:
    decoded, problems = decode_str((ROOT / "infra/aws" / name).read_text())
    assert not problems
    return decoded  # type: ignore[no-any-return]


def statements() -> list[dict[str, Any]]:
    policies = template()["Resources"]["BridgeFunction"]["Properties"]["Policies"]
    found = []
    for document in policies:
        if isinstance(document, str):
            continue  # a managed policy by name: AWSLambdaBasicExecutionRole (logs only)
        for statement in document["Statement"]:
            if "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            found.append(statement)
    return found


def granted() -> set[str]:
    return {action for s in statements() for action in s["Action"]}


def needed() -> set[str]:
    from providers.aws.dynamodb import DYNAMODB_ACTIONS
    from providers.aws.secret_calls import SECRETS_MANAGER_ACTIONS

    # From providers.aws.runtime.RUNTIME_ACTIONS: the admin key and the fan-out. Remote
    # configuration (s3:GetObject, ssm:GetParameter) is opt-in and not granted by default.
    runtime = {"secretsmanager:GetSecretValue", "sqs:SendMessage"}
    return set(SECRETS_MANAGER_ACTIONS) | set(DYNAMODB_ACTIONS) | runtime


def test_every_call_the_code_makes_is_granted() -> None:
    assert needed() <= granted()


def test_nothing_broader_is_granted() -> None:
    assert granted() - needed() == SQS_EVENT_SOURCE | SECRETS_KMS


def test_no_wildcard_actions_or_resources() -> None:
    for statement in statements():
        assert all("*" not in action for action in statement["Action"])
        assert statement["Resource"] != "*"


def test_bridge_secrets_are_reached_only_through_the_ownership_tag() -> None:
    for statement in statements():
        secrets = [a for a in statement["Action"] if a.startswith("secretsmanager:")]
        if not secrets or statement["Sid"] == "ReadAdminKey":
            continue
        conditions = statement["Condition"]["StringEquals"]
        assert conditions.get("secretsmanager:ResourceTag/langsmith-bridge:managed") == "true" or (
            conditions.get("aws:RequestTag/langsmith-bridge:managed") == "true"
        )


def test_the_state_table_matches_what_the_backend_expects() -> None:
    from providers.aws.dynamodb import table_definition

    table = template()["Resources"]["StateTable"]["Properties"]
    expected = table_definition()
    assert table["AttributeDefinitions"] == expected["AttributeDefinitions"]
    assert table["KeySchema"] == expected["KeySchema"]
    assert table["BillingMode"] == expected["BillingMode"]
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_a_consumer_may_write_only_its_own_ack() -> None:
    from providers.aws.dynamodb import CONSUMER_ACK_ACTIONS

    document = template("consumer-access.yaml")["Resources"]["ConsumerPolicy"]["Properties"]
    by_sid = {s["Sid"]: s for s in document["PolicyDocument"]["Statement"]}
    ack = by_sid["WriteOwnAck"]
    assert [ack["Action"]] == list(CONSUMER_ACK_ACTIONS)
    keys = ack["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
    assert keys == [{"Fn::Sub": "ack#${PolicyName}#${ConsumerName}"}]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_is_clean(path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
