"""infra/aws/template.yaml deploys a self-sufficient bridge: for given parameters, the
template is resolved here as CloudFormation would (its Conditions, ``Fn::If``, ``Ref`` of
parameters, ``Fn::Sub``, ``Fn::Join``, ``Fn::Split``), and what the stack would hold is
checked: the one configuration source's access and reference, the admin key, the log
group's retention, the alarms on the metrics the Lambda prints, concurrency, the optional
VPC and native rotation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bridge.config import parse_config
from tests.aws.test_iam_policy import ROOT, template

ADMIN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:langsmith-admin-AbCdEf"
CONFIG_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bridge-config-XyZ123"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "langsmith-bridge",
}
NO_VALUE = object()


class Resolved:
    """The template as deployed with ``parameters`` (defaults for the rest)."""

    def __init__(self, **parameters: Any) -> None:
        self.raw = template()
        self.values: dict[str, Any] = dict(PSEUDO)
        for name, spec in self.raw["Parameters"].items():
            value = parameters.pop(name, spec.get("Default"))
            assert value is not None, f"parameter {name} has no default"
            if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            self.values[name] = value
        assert not parameters, f"unknown parameters {parameters}"
        self.conditions: dict[str, bool] = {}
        for name in self.raw["Conditions"]:
            self.condition(name)

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = self.truth(self.raw["Conditions"][name])
        return self.conditions[name]

    def truth(self, node: dict[str, Any]) -> bool:
        ((function, args),) = node.items()
        if function == "Condition":
            return self.condition(args)
        if function == "Fn::Equals":
            left, right = (self.value(a) for a in args)
            return bool(str(left) == str(right))
        if function == "Fn::Not":
            return not self.truth(args[0])
        if function == "Fn::And":
            return all(self.truth(a) for a in args)
        if function == "Fn::Or":
            return any(self.truth(a) for a in args)
        raise AssertionError(f"unexpected condition function {function}")

    def value(self, node: Any) -> Any:
        """``node`` resolved; a resource's ``Ref``/``GetAtt`` stays as it is."""
        if isinstance(node, list):
            items = [self.value(n) for n in node]
            return [i for i in items if i is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((function, args),) = node.items()
            if function == "Ref" and args == "AWS::NoValue":
                return NO_VALUE
            if function == "Ref" and args in self.values:
                return self.values[args]
            if function == "Fn::If":
                name, then, otherwise = args
                return self.value(then if self.condition(name) else otherwise)
            if function == "Fn::Sub":
                return self.sub(args)
            if function == "Fn::Join":
                separator, items = args
                return separator.join(str(i) for i in self.value(items))
            if function == "Fn::Split":
                separator, text = args
                return str(self.value(text)).split(separator)
            if function in ("Ref", "Fn::GetAtt"):
                return node
        members = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in members.items() if v is not NO_VALUE}

    def sub(self, args: Any) -> str:
        text, variables = (args, {}) if isinstance(args, str) else args
        local = {k: self.value(v) for k, v in variables.items()}

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if name in self.values:
                return str(self.values[name])
            return "${" + name + "}"  # a resource: left for CloudFormation

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def resources(self) -> dict[str, dict[str, Any]]:
        return {
            name: self.value(resource)
            for name, resource in self.raw["Resources"].items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    def function(self) -> dict[str, Any]:
        return self.resources()["BridgeFunction"]["Properties"]  # type: ignore[no-any-return]

    def environment(self) -> dict[str, Any]:
        return self.function()["Environment"]["Variables"]  # type: ignore[no-any-return]

    def statements(self) -> dict[str, dict[str, Any]]:
        role = self.resources()["BridgeRole"]["Properties"]
        return {
            s["Sid"]: s
            for policy in role["Policies"]
            for s in policy["PolicyDocument"]["Statement"]
        }

    def rule_refuses(self) -> bool:
        """Whether one of the template's Rules refuses these parameters."""
        for rule in self.raw.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.truth(rule["RuleCondition"]):
                continue
            if not all(self.truth(a["Assert"]) for a in rule["Assertions"]):
                return True
        return False


def deployed(**parameters: Any) -> Resolved:
    return Resolved(AdminKeySecretArn=ADMIN, **parameters)


CONFIG_STATEMENTS = {"ReadConfigObject", "ReadConfigParameter", "ReadConfigSecret"}


@pytest.mark.parametrize(
    ("source", "location", "sid", "resource", "reference"),
    [
        ("Package", "bridge.toml", None, None, "bridge.toml"),
        ("Package", "conf/prod.toml", None, None, "conf/prod.toml"),
        (
            "S3",
            "s3://ops-config/langsmith/bridge.toml",
            "ReadConfigObject",
            "arn:aws:s3:::ops-config/langsmith/bridge.toml",
            "s3://ops-config/langsmith/bridge.toml",
        ),
        (
            "SSM",
            "/langsmith-bridge/config",
            "ReadConfigParameter",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/langsmith-bridge/config",
            "ssm:/langsmith-bridge/config",
        ),
        (
            "SSM",
            "langsmith-bridge-config",
            "ReadConfigParameter",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/langsmith-bridge-config",
            "ssm:langsmith-bridge-config",
        ),
        (
            "SecretsManager",
            CONFIG_SECRET,
            "ReadConfigSecret",
            CONFIG_SECRET,
            f"secretsmanager:{CONFIG_SECRET}",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_the_config_source_gets_exactly_its_read_access_and_reference(
    source: str, location: str, sid: str | None, resource: str | None, reference: str
) -> None:
    stack = deployed(ConfigSource=source, ConfigLocation=location)
    assert not stack.rule_refuses()
    statements = stack.statements()
    assert CONFIG_STATEMENTS & set(statements) == ({sid} if sid else set())
    if sid:
        assert statements[sid]["Resource"] == resource
    assert "ConfigKmsKey" not in statements
    assert stack.environment()["LANGSMITH_BRIDGE_CONFIG"] == reference


def test_the_references_are_the_forms_the_lambda_loads_remotely() -> None:
    from providers.aws.runtime import AwsRuntime

    class Clients:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str, dict[str, Any]]] = []

        def client(self, service: str, region: str | None = None, **_: Any) -> Any:
            calls = self.calls

            class Client:
                def __getattr__(self, operation: str) -> Any:
                    def call(**params: Any) -> Any:
                        calls.append((service, operation, params))
                        body = type("Body", (), {"read": lambda _: b"x"})()
                        return {"Body": body, "SecretString": "x", "Parameter": {"Value": "x"}}

                    return call

            return Client()

    expected = {
        "S3": ("s3", "get_object", {"Bucket": "b", "Key": "k/bridge.toml"}),
        "SSM": ("ssm", "get_parameter", {"Name": "/b/config", "WithDecryption": True}),
        "SecretsManager": ("secretsmanager", "get_secret_value", {"SecretId": CONFIG_SECRET}),
    }
    locations = {"S3": "s3://b/k/bridge.toml", "SSM": "/b/config", "SecretsManager": CONFIG_SECRET}
    for source, call in expected.items():
        clients = Clients()
        reference = deployed(ConfigSource=source, ConfigLocation=locations[source]).environment()[
            "LANGSMITH_BRIDGE_CONFIG"
        ]
        assert AwsRuntime(clients).fetch_text(reference) == "x"  # type: ignore[arg-type]
        assert clients.calls == [call]


@pytest.mark.parametrize("source", ["S3", "SSM", "SecretsManager"])
def test_a_remote_source_without_a_location_is_refused(source: str) -> None:
    stack = deployed(ConfigSource=source)
    assert stack.rule_refuses()
    assert not CONFIG_STATEMENTS & set(stack.statements())


@pytest.mark.parametrize(
    ("source", "location", "service"),
    [
        ("S3", "s3://b/k", "s3"),
        ("SSM", "/b/config", "ssm"),
        ("SecretsManager", CONFIG_SECRET, "secretsmanager"),
    ],
)
def test_the_config_kms_key_is_used_only_through_the_config_service(
    source: str, location: str, service: str
) -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    statement = deployed(
        ConfigSource=source, ConfigLocation=location, ConfigKmsKeyArn=key
    ).statements()["ConfigKmsKey"]
    assert statement["Action"] == ["kms:Decrypt"]
    assert statement["Resource"] == key
    assert statement["Condition"] == {
        "StringEquals": {"kms:ViaService": f"{service}.eu-west-1.amazonaws.com"}
    }
    assert "ConfigKmsKey" not in deployed(ConfigKmsKeyArn=key).statements()  # Package


def test_the_admin_key_is_given_once_and_read_from_exactly_that_secret() -> None:
    stack = deployed()
    assert stack.environment()["LANGSMITH_ADMIN_KEY_SECRET"] == ADMIN
    assert stack.statements()["ReadAdminKey"]["Resource"] == ADMIN


def test_the_documented_lambda_config_loads_with_the_template_environment() -> None:
    # What CloudFormation fills in for the table's and the queue's references.
    made = {
        "StateTable": "langsmith-bridge-StateTable-1A2B3C4D5E6F",
        "PolicyQueue": "https://sqs.eu-west-1.amazonaws.com/123456789012/langsmith-bridge-q",
    }
    environ = {
        name: value if isinstance(value, str) else made[value["Ref"]]
        for name, value in deployed().environment().items()
    }
    config = parse_config(
        {
            "langsmith": {"admin_key_secret": "${LANGSMITH_ADMIN_KEY_SECRET}"},
            "state": {"backend": "dynamodb", "table": "${BRIDGE_STATE_TABLE}"},
            "run": {"fanout_queue_url": "${BRIDGE_FANOUT_QUEUE_URL}"},
            "policy": [
                {
                    "name": "tracing-prod",
                    "consumers": ["api"],
                    "workspaces": ["00000000-0000-4000-8000-000000000001"],
                    "target": [{"provider": "aws", "secret_id": "langsmith/tracing-prod"}],
                }
            ],
        },
        environ=environ,
    )
    assert config.langsmith.admin_key_secret == ADMIN
    assert config.run.fanout_queue_url == made["PolicyQueue"]


def test_logs_go_to_a_group_with_a_retention() -> None:
    resources = deployed(LogRetentionInDays=90).resources()
    group = resources["FunctionLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == 90
    assert group["Properties"]["LogGroupName"] == "/aws/lambda/langsmith-bridge"
    assert template()["Parameters"]["LogRetentionInDays"]["Default"] == 30
    function = resources["BridgeFunction"]["Properties"]
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "FunctionLogGroup"}}
    writes = deployed().statements()["WriteLogs"]
    assert writes["Resource"] == {"Fn::GetAtt": ["FunctionLogGroup", "Arn"]}


def alarms(stack: Resolved) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["MetricName"]: r["Properties"]
        for r in stack.resources().values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_the_alarms_watch_errors_dead_letters_and_the_bridge_metrics() -> None:
    from bridge.aws_lambda import METRIC_NAMESPACE
    from bridge.engine.tally import COUNTS

    found = alarms(deployed())
    assert set(found) == {
        "Errors",
        "ApproximateNumberOfMessagesVisible",
        "GatesOverdue",
        "KeysExpiring",
    }
    errors = found["Errors"]
    assert (errors["Namespace"], errors["Statistic"]) == ("AWS/Lambda", "Sum")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "BridgeFunction"}}]
    assert errors["TreatMissingData"] == "notBreaching"
    dead = found["ApproximateNumberOfMessagesVisible"]
    assert dead["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}
    for name in ("GatesOverdue", "KeysExpiring"):
        alarm = found[name]
        assert name in COUNTS  # a figure the Lambda prints
        assert alarm["Namespace"] == METRIC_NAMESPACE
        assert "Dimensions" not in alarm  # the run's aggregate, not one policy's
        assert alarm["Statistic"] == "Maximum"
        assert alarm["TreatMissingData"] == "ignore"
    for alarm in found.values():
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert alarm["Period"] * alarm["EvaluationPeriods"] <= 1800


def test_alarms_notify_the_topic_only_when_one_is_given() -> None:
    topic = "arn:aws:sns:eu-west-1:123456789012:ops"
    for alarm in alarms(deployed(AlarmTopicArn=topic)).values():
        assert alarm["AlarmActions"] == alarm["OKActions"] == [topic]
    for alarm in alarms(deployed()).values():
        assert "AlarmActions" not in alarm and "OKActions" not in alarm


def test_concurrency_is_reserved_and_the_queue_cannot_take_every_slot() -> None:
    parameters = template()["Parameters"]
    assert parameters["ReservedConcurrency"]["Default"] > parameters["QueueConcurrency"]["Default"]
    resources = deployed(ReservedConcurrency=5, QueueConcurrency=4).resources()
    function = resources["BridgeFunction"]["Properties"]
    assert function["ReservedConcurrentExecutions"] == 5
    queue = function["Events"]["Queue"]["Properties"]
    assert queue["ScalingConfig"] == {"MaximumConcurrency": 4}


def test_vpc_settings_are_optional_and_bring_their_managed_policy() -> None:
    outside = deployed().resources()
    assert "VpcConfig" not in outside["BridgeFunction"]["Properties"]
    assert outside["BridgeRole"]["Properties"]["ManagedPolicyArns"] == []
    inside = deployed(SubnetIds="subnet-1,subnet-2", SecurityGroupIds="sg-1").resources()
    assert inside["BridgeFunction"]["Properties"]["VpcConfig"] == {
        "SubnetIds": ["subnet-1", "subnet-2"],
        "SecurityGroupIds": ["sg-1"],
    }
    assert inside["BridgeRole"]["Properties"]["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    ]


def test_the_function_uses_the_declared_role_only() -> None:
    function = deployed().function()
    assert function["Role"] == {"Fn::GetAtt": ["BridgeRole", "Arn"]}
    assert "Policies" not in function  # SAM would generate a role with broader grants


def test_secrets_manager_may_invoke_the_function_from_this_account() -> None:
    permission = deployed().resources()["RotationPermission"]["Properties"]
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["SourceAccount"] == "123456789012"
    assert permission["FunctionName"] == {"Fn::GetAtt": ["BridgeFunction", "Arn"]}


def test_one_secret_can_be_given_a_native_rotation_schedule() -> None:
    assert "ExampleRotationSchedule" not in deployed().resources()
    secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:langsmith/prod-AbCdEf"
    resources = deployed(
        ExampleManagedSecretArn=secret, RotationScheduleExpression="rate(14 days)"
    ).resources()
    schedule = resources["ExampleRotationSchedule"]
    assert schedule["DependsOn"] == "RotationPermission"
    assert schedule["Properties"] == {
        "SecretId": secret,
        "RotationLambdaARN": {"Fn::GetAtt": ["BridgeFunction", "Arn"]},
        "RotateImmediatelyOnUpdate": False,
        "RotationRules": {"ScheduleExpression": "rate(14 days)"},
    }


def test_every_parameter_is_used() -> None:
    text = (ROOT / "infra/aws/template.yaml").read_text()
    body = text.split("\nConditions:", 1)[1]
    for name in template()["Parameters"]:
        assert re.search(rf"\b{name}\b", body), name
