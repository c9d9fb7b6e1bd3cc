"""The least-privilege IAM policy in infra/aws grants exactly what the code calls.

The action lists are exported by the adapters themselves (and the adapters' own tests hold
them equal to the calls they make); here the template's role is held equal to those lists,
statement by statement, and a full Lambda scenario (see ``test_done_when``) checks every
recorded call against it. What the role holds beyond the code's calls is listed below, each
with its reason. Which conditional statements exist for which parameters is
``test_template``'s business.
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

# Actions the code never calls but the role needs, each for a reason the code cannot show:
# What the Lambda service itself does with the role to poll the fan-out queue.
SQS_EVENT_SOURCE = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# What Lambda's log delivery does with the role, to the function's own log group only.
LOG_DELIVERY = {"logs:CreateLogStream", "logs:PutLogEvents"}
# Only with a customer managed KMS key (conditions in the template): the secrets' key, via
# Secrets Manager (Decrypt to read, GenerateDataKey to write), and the configuration's,
# via S3, SSM or Secrets Manager (Decrypt to read).
SECRETS_KMS = {"kms:Decrypt", "kms:GenerateDataKey"}
CONFIG_KMS = {"kms:Decrypt"}
# In a VPC only: Lambda's network interfaces (a managed policy, under a condition).
VPC_POLICY = "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


def template(name: str = "template.yaml") -> dict[str, Any]:
    decoded, problems = decode_str((ROOT / "infra/aws" / name).read_text())
    assert not problems
    return decoded  # type: ignore[no-any-return]


def role() -> dict[str, Any]:
    return template()["Resources"]["BridgeRole"]["Properties"]  # type: ignore[no-any-return]


def statements() -> list[dict[str, Any]]:
    """Every statement the role can have, whatever the parameters: a conditional one is
    taken as if its condition held (test_template checks which conditions hold when)."""
    found = []
    for policy in role()["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                _, statement, otherwise = statement["Fn::If"]
                assert otherwise == {"Ref": "AWS::NoValue"}
            found.append(statement)
    return found


def by_sid() -> dict[str, set[str]]:
    return {s["Sid"]: set(s["Action"]) for s in statements()}


def granted() -> set[str]:
    return {action for s in statements() for action in s["Action"]}


def needed() -> set[str]:
    from providers.aws.dynamodb import DYNAMODB_ACTIONS
    from providers.aws.runtime import RUNTIME_ACTIONS
    from providers.aws.secret_calls import SECRETS_MANAGER_ACTIONS
    from providers.aws.sns import SNS_ACTIONS

    return (
        set(SECRETS_MANAGER_ACTIONS)
        | set(DYNAMODB_ACTIONS)
        | set(RUNTIME_ACTIONS)
        | set(SNS_ACTIONS)
    )


def test_every_call_the_code_makes_is_granted() -> None:
    assert needed() <= granted()


def test_nothing_broader_is_granted() -> None:
    assert granted() - needed() == SQS_EVENT_SOURCE | LOG_DELIVERY | SECRETS_KMS | CONFIG_KMS


def test_each_statement_holds_exactly_the_calls_of_one_purpose() -> None:
    from providers.aws.dynamodb import DYNAMODB_ACTIONS
    from providers.aws.runtime import RUNTIME_ACTIONS
    from providers.aws.secret_calls import SECRETS_MANAGER_ACTIONS
    from providers.aws.sns import SNS_ACTIONS

    runtime = set(RUNTIME_ACTIONS)
    sids = by_sid()
    # The secrets adapter's calls, split by the tag condition that confines them.
    assert sids.pop("ManageBridgeSecrets") | sids.pop("CreateBridgeSecrets") == set(
        SECRETS_MANAGER_ACTIONS
    )
    expected = {
        "ReadAdminKey": {"secretsmanager:GetSecretValue"} & runtime,
        "ReadConfigObject": {"s3:GetObject"} & runtime,
        "ReadConfigParameter": {"ssm:GetParameter"} & runtime,
        "ReadConfigSecret": {"secretsmanager:GetSecretValue"} & runtime,
        "FanOut": {"sqs:SendMessage"} & runtime,
        "State": set(DYNAMODB_ACTIONS),
        "ConsumeFanOut": SQS_EVENT_SOURCE,
        "WriteLogs": LOG_DELIVERY,
        "SecretsKmsKey": SECRETS_KMS,
        "ConfigKmsKey": CONFIG_KMS,
        "PublishAlerts": set(SNS_ACTIONS),
    }
    assert sids == expected


def test_the_only_managed_policy_is_vpc_access_and_only_in_a_vpc() -> None:
    assert role()["ManagedPolicyArns"] == [
        {"Fn::If": ["InVpc", {"Fn::Sub": VPC_POLICY}, {"Ref": "AWS::NoValue"}]}
    ]


def test_no_wildcard_actions_or_resources() -> None:
    for statement in statements():
        assert all("*" not in action for action in statement["Action"])
        assert statement["Resource"] != "*"


def test_the_role_cannot_create_log_groups() -> None:
    # A group Lambda creates itself keeps its logs forever; the template's has a retention.
    assert not any(action.startswith("logs:CreateLogGroup") for action in granted())


def test_bridge_secrets_are_reached_only_through_the_ownership_tag() -> None:
    exact = {"ReadAdminKey", "ReadConfigSecret"}  # one secret each, named by a parameter
    for statement in statements():
        secrets = [a for a in statement["Action"] if a.startswith("secretsmanager:")]
        if not secrets or statement["Sid"] in exact:
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
