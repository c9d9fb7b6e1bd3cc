"""The Secrets Manager provider against moto, beyond the shared contract: the staging labels,
ownership and adoption, out-of-band changes, AWS's strictness where moto is lenient, the
native rotation primitives, the IAM action list, and one run over real HTTP.

Every request is seen through botocore's own event hooks (``Calls``), so assertions are on
what would reach AWS, not on what moto happens to keep.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bridge.config.targets import AwsTarget
from bridge.errors import OwnershipError, ProviderConflict, ProviderError, ProviderNotFound
from bridge.payload import ENDPOINT, WORKSPACE_ID, Payload, decode, encode
from bridge.secrets import Secret
from providers import Connections
from providers.aws.secret_calls import IMPLIED_ACTIONS, SECRETS_MANAGER_ACTIONS
from providers.aws.secrets_manager import SecretsManagerProvider
from tests.support.aws import fake_aws_environment, serve_moto
from tests.support.keys import new_key, rotation_id

pytestmark = pytest.mark.integration

REGION = "us-east-1"
POLICY = "aws-policy"
SECRET = "prod/langsmith"
MANAGED = {"langsmith-bridge:managed": "true", "langsmith-bridge:policy": POLICY}
WRITES = {"CreateSecret", "PutSecretValue", "UpdateSecretVersionStage", "TagResource"}


def payload(policy: str = POLICY, rotation: str | None = None, key: str | None = None) -> Payload:
    return Payload(
        policy=policy,
        rotation_id=rotation or rotation_id(),
        api_key=Secret(key or new_key()),
        settings={ENDPOINT: "https://api.smith.langchain.com", WORKSPACE_ID: str(uuid.uuid4())},
    )


class Calls:
    """Every Secrets Manager request a client sends: operation name and parameters."""

    def __init__(self, client: Any) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("before-parameter-build.secretsmanager.*", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.seen.append((model.name, dict(params)))

    def names(self) -> list[str]:
        return [name for name, _ in self.seen]

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.seen if name == operation]

    def writes(self) -> list[str]:
        return [name for name in self.names() if name in WRITES]

    def clear(self) -> None:
        self.seen.clear()


class Aws:
    """moto's Secrets Manager, a console-like raw client, and providers wired to it."""

    def __init__(self) -> None:
        self.raw = boto3.client("secretsmanager", region_name=REGION)
        self.bridge_client = boto3.client("secretsmanager", region_name=REGION)
        self.calls = Calls(self.bridge_client)

    def provider(self, policy: str = POLICY, **target: Any) -> SecretsManagerProvider:
        config = AwsTarget.model_validate(
            {"provider": "aws", "secret_id": SECRET, "region": REGION, **target}
        )
        return SecretsManagerProvider(config, policy, client=self.bridge_client)

    def stages(self) -> dict[str, list[str]]:
        described = self.raw.describe_secret(SecretId=SECRET)
        return {v: s for v, s in described.get("VersionIdsToStages", {}).items() if s}

    def tags(self) -> dict[str, str]:
        described = self.raw.describe_secret(SecretId=SECRET)
        return {t["Key"]: t["Value"] for t in described.get("Tags", [])}

    def value(self, **selector: str) -> dict[str, str]:
        # Name the stage: moto answers a bare GetSecretValue with the version that was
        # current when last *written*, not the one AWSCURRENT was moved to since.
        selector = selector or {"VersionStage": "AWSCURRENT"}
        response = self.raw.get_secret_value(SecretId=SECRET, **selector)
        return decode(response["SecretString"], "json")

    def put_by_hand(self, env: dict[str, str], **extra: Any) -> str:
        text = encode(env, "json")
        return str(
            self.raw.put_secret_value(SecretId=SECRET, SecretString=text, **extra)["VersionId"]
        )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    fake_aws_environment(monkeypatch)
    with mock_aws():
        yield Aws()


# -- the staging flow ------------------------------------------------------------------


def test_the_first_payload_is_created_without_a_value_and_goes_through_awspending(
    aws: Aws,
) -> None:
    first = payload()

    version = aws.provider().publish(first)

    created = aws.calls.of("CreateSecret")[0]
    assert "SecretString" not in created and "SecretBinary" not in created
    assert {t["Key"]: t["Value"] for t in created["Tags"]} == MANAGED
    put = aws.calls.of("PutSecretValue")[0]
    assert (put["ClientRequestToken"], put["VersionStages"]) == (first.rotation_id, ["AWSPENDING"])
    assert version == first.rotation_id
    assert aws.stages() == {version: ["AWSCURRENT"]}
    assert aws.value()["LANGSMITH_API_KEY"] == first.api_key.reveal()


def test_a_new_generation_is_staged_read_back_then_made_current(aws: Aws) -> None:
    provider = aws.provider()
    old, new = payload(), payload()
    old_version = provider.publish(old)
    aws.calls.clear()

    new_version = provider.publish(new)

    # Five calls: AWSCURRENT is on a version the provider knows it wrote (so it is not read
    # again), and the rotation's token carries no label (so it is unused, or AWS itself
    # refuses its reuse with other content).
    assert aws.calls.names() == [
        "DescribeSecret",
        "PutSecretValue",  # as AWSPENDING
        "GetSecretValue",  # read back
        "UpdateSecretVersionStage",  # AWSCURRENT
        "UpdateSecretVersionStage",  # clear AWSPENDING
    ]
    move, clear = aws.calls.of("UpdateSecretVersionStage")
    assert move == {
        "SecretId": SECRET,
        "VersionStage": "AWSCURRENT",
        "MoveToVersionId": new_version,
        "RemoveFromVersionId": old_version,
    }
    assert clear == {
        "SecretId": SECRET,
        "VersionStage": "AWSPENDING",
        "RemoveFromVersionId": new_version,
    }
    assert aws.stages() == {old_version: ["AWSPREVIOUS"], new_version: ["AWSCURRENT"]}
    assert aws.value(VersionStage="AWSPREVIOUS")["LANGSMITH_API_KEY"] == old.api_key.reveal()


def test_retire_clears_awsprevious_and_never_touches_awscurrent(aws: Aws) -> None:
    provider = aws.provider()
    old_version = provider.publish(payload())
    new_version = provider.publish(payload())

    provider.retire(old_version)
    provider.retire(old_version)  # already cleared: nothing to do
    provider.retire(new_version)  # current, not previous: nothing to do

    assert aws.stages() == {new_version: ["AWSCURRENT"]}
    assert aws.calls.of("UpdateSecretVersionStage")[-1] == {
        "SecretId": SECRET,
        "VersionStage": "AWSPREVIOUS",
        "RemoveFromVersionId": old_version,
    }


def test_republishing_the_same_payload_writes_nothing(aws: Aws) -> None:
    provider = aws.provider()
    written = payload()
    version = provider.publish(written)
    aws.calls.clear()

    assert provider.publish(written) == version
    assert aws.calls.writes() == []
    assert aws.stages() == {version: ["AWSCURRENT"]}


def test_changed_settings_for_the_same_key_go_to_a_new_version_of_the_same_rotation(
    aws: Aws,
) -> None:
    """A version's content never changes, so the rotation's token cannot be reused."""
    provider = aws.provider()
    first = payload()
    moved = Payload(POLICY, first.rotation_id, first.api_key, {ENDPOINT: "https://eu.example"})
    first_version = provider.publish(first)

    moved_version = provider.publish(moved)

    assert moved_version != first_version and moved_version.startswith(first.rotation_id)
    assert 32 <= len(moved_version) <= 64
    assert aws.value()[ENDPOINT] == "https://eu.example"
    assert provider.publish(moved) == moved_version  # and it is stable


def test_republishing_after_a_crash_between_the_two_moves_clears_awspending(aws: Aws) -> None:
    provider = aws.provider()
    written = payload()
    version = provider.publish(written)
    aws.raw.update_secret_version_stage(
        SecretId=SECRET, VersionStage="AWSPENDING", MoveToVersionId=version
    )  # as left by a run killed after moving AWSCURRENT, before clearing AWSPENDING

    assert provider.publish(written) == version
    assert aws.stages() == {version: ["AWSCURRENT"]}


# -- ownership -------------------------------------------------------------------------


def test_an_unowned_secret_is_refused_without_adopt(aws: Aws) -> None:
    aws.raw.create_secret(Name=SECRET, SecretString=encode({"DB_PASSWORD": "hunter2"}, "json"))

    with pytest.raises(OwnershipError, match="adopt"):
        aws.provider().publish(payload())
    with pytest.raises(OwnershipError):
        aws.provider().validate()

    assert aws.calls.writes() == []
    assert aws.tags() == {}


def test_adopt_tags_an_unowned_secret_and_keeps_its_value_as_previous(aws: Aws) -> None:
    foreign = aws.raw.create_secret(Name=SECRET, SecretString=encode({"A": "b"}, "json"))
    provider = aws.provider(adopt=True)
    provider.validate()
    assert aws.calls.writes() == []

    version = provider.publish(payload())

    assert aws.tags() == MANAGED
    assert aws.stages() == {foreign["VersionId"]: ["AWSPREVIOUS"], version: ["AWSCURRENT"]}
    aws.provider().publish(payload())  # owned now, adopt or not


def test_a_secret_of_another_policy_is_refused_even_with_adopt(aws: Aws) -> None:
    aws.provider("other-policy").publish(payload("other-policy"))
    aws.calls.clear()

    for provider in (aws.provider(), aws.provider(adopt=True)):
        with pytest.raises(OwnershipError, match="other-policy"):
            provider.publish(payload())
        with pytest.raises(OwnershipError):
            provider.validate()
    assert aws.calls.writes() == []


# -- out-of-band changes ---------------------------------------------------------------


def test_a_value_put_by_hand_as_awscurrent_is_reported_not_overwritten(aws: Aws) -> None:
    provider = aws.provider()
    provider.publish(payload())
    by_hand = aws.put_by_hand({"LANGSMITH_API_KEY": new_key()})
    aws.calls.clear()

    with pytest.raises(ProviderConflict, match=by_hand):
        provider.publish(payload())
    with pytest.raises(ProviderConflict):
        provider.validate()

    assert aws.calls.writes() == []
    assert aws.stages()[by_hand] == ["AWSCURRENT"]


def test_awscurrent_moved_while_publishing_fails_the_move(aws: Aws) -> None:
    """RemoveFromVersionId is a compare-and-swap: a label moved meanwhile is not stolen."""
    provider = aws.provider()
    provider.publish(payload())

    def hand_edit_after_the_put(**_: Any) -> None:
        aws.bridge_client.meta.events.unregister(
            "after-call.secretsmanager.PutSecretValue", hand_edit_after_the_put
        )
        aws.put_by_hand({"LANGSMITH_API_KEY": new_key()})

    aws.bridge_client.meta.events.register(
        "after-call.secretsmanager.PutSecretValue", hand_edit_after_the_put
    )
    with pytest.raises(ProviderConflict):
        provider.publish(payload())


def test_a_stray_awspending_staged_by_someone_else_is_reported(aws: Aws) -> None:
    provider = aws.provider()
    current = provider.publish(payload())
    stray = aws.put_by_hand({"LANGSMITH_API_KEY": new_key()}, VersionStages=["AWSPENDING"])
    aws.calls.clear()

    with pytest.raises(ProviderConflict, match=stray):
        provider.publish(payload())
    with pytest.raises(ProviderConflict, match=stray):
        provider.validate()

    assert aws.calls.writes() == []
    assert aws.stages() == {current: ["AWSCURRENT"], stray: ["AWSPENDING"]}


def test_our_own_crashed_stage_is_replaced(aws: Aws) -> None:
    provider = aws.provider()
    current = provider.publish(payload())
    crashed = provider.staging.stage_pending(payload())  # a run died before promoting it
    provider.validate()

    version = provider.publish(payload())

    assert aws.stages() == {current: ["AWSPREVIOUS"], version: ["AWSCURRENT"]}
    assert aws.calls.of("UpdateSecretVersionStage")[-3] == {
        "SecretId": SECRET,
        "VersionStage": "AWSPENDING",
        "RemoveFromVersionId": crashed,
    }


# -- strict where moto is lenient ------------------------------------------------------


def test_a_token_reused_with_other_content_is_refused_though_moto_accepts_it(aws: Aws) -> None:
    provider = aws.provider()
    provider.publish(payload())
    token = str(uuid.uuid4())
    staged = payload(rotation=token)
    provider.staging.stage_pending(staged)
    aws.calls.clear()

    with pytest.raises(ProviderConflict, match="ClientRequestToken"):
        provider.staging.stage_pending(payload(rotation=token))
    assert aws.calls.writes() == []
    assert aws.value(VersionId=token)["LANGSMITH_API_KEY"] == staged.api_key.reveal()

    # AWS would reject this request; moto silently replaces the version's value.
    aws.put_by_hand(
        {"LANGSMITH_API_KEY": new_key()}, ClientRequestToken=token, VersionStages=["AWSPENDING"]
    )
    assert aws.value(VersionId=token)["LANGSMITH_API_KEY"] != staged.api_key.reveal()


def test_another_key_under_a_published_rotation_id_is_refused(aws: Aws) -> None:
    provider = aws.provider()
    first = payload()
    provider.publish(first)
    aws.calls.clear()

    with pytest.raises(ProviderConflict, match=first.rotation_id):
        provider.publish(payload(rotation=first.rotation_id))
    assert aws.calls.writes() == []


def test_a_secret_pending_deletion_is_refused_though_moto_accepts_writes(aws: Aws) -> None:
    provider = aws.provider()
    version = provider.publish(payload())
    aws.raw.delete_secret(SecretId=SECRET, RecoveryWindowInDays=7)
    aws.calls.clear()

    for attempt in (lambda: provider.publish(payload()), provider.validate):
        with pytest.raises(ProviderError, match="scheduled for deletion"):
            attempt()
    provider.retire(version)  # nothing to retire in a secret on its way out
    assert aws.calls.writes() == []

    # AWS answers InvalidRequestException here; moto takes the write.
    aws.put_by_hand({"LANGSMITH_API_KEY": new_key()})


# -- creation settings -----------------------------------------------------------------


def test_kms_key_and_replica_regions_are_passed_at_creation(aws: Aws) -> None:
    provider = aws.provider(
        kms_key_id="alias/langsmith-bridge", replica_regions=["eu-west-1", "ap-southeast-2"]
    )

    provider.publish(payload())

    created = aws.calls.of("CreateSecret")[0]
    assert created["KmsKeyId"] == "alias/langsmith-bridge"
    assert created["AddReplicaRegions"] == [{"Region": "eu-west-1"}, {"Region": "ap-southeast-2"}]
    described = aws.raw.describe_secret(SecretId=SECRET)
    assert [r["Region"] for r in described["ReplicationStatus"]] == ["eu-west-1", "ap-southeast-2"]


def test_a_concurrently_created_secret_is_judged_as_found(aws: Aws) -> None:
    provider = aws.provider()

    def another_runner_creates_it(**_: Any) -> None:
        aws.bridge_client.meta.events.unregister(
            "before-call.secretsmanager.CreateSecret", another_runner_creates_it
        )
        aws.provider().publish(payload())

    aws.bridge_client.meta.events.register(
        "before-call.secretsmanager.CreateSecret", another_runner_creates_it
    )
    mine = payload()

    assert provider.publish(mine) == mine.rotation_id
    assert aws.value()["LANGSMITH_API_KEY"] == mine.api_key.reveal()


def test_an_absent_secret_named_by_arn_is_not_found_rather_than_created(aws: Aws) -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{SECRET}-AbCdEf"
    provider = aws.provider(secret_id=arn)

    for attempt in (lambda: provider.publish(payload()), provider.validate):
        with pytest.raises(ProviderNotFound, match="ARN"):
            attempt()
    assert aws.calls.writes() == []


def test_a_secret_without_a_value_yet_reads_as_absent(aws: Aws) -> None:
    aws.raw.create_secret(Name=SECRET, Tags=[{"Key": k, "Value": v} for k, v in MANAGED.items()])
    provider = aws.provider()

    assert provider.read() is None
    assert provider.staging.current_version() is None
    provider.validate()


# -- the native rotation primitives ----------------------------------------------------


def test_native_rotation_stages_reads_and_promotes_under_aws_token(aws: Aws) -> None:
    provider = aws.provider()
    old_version = provider.publish(payload())
    token = str(uuid.uuid4())
    new = payload(rotation=token)

    assert provider.staging.stage_pending(new) == token
    assert provider.staging.stage_pending(new) == token  # AWS retries createSecret: no new write
    assert aws.calls.of("PutSecretValue")[-1]["ClientRequestToken"] == token
    assert len(aws.calls.of("PutSecretValue")) == 2  # the first publish, and this stage
    assert aws.stages() == {old_version: ["AWSCURRENT"], token: ["AWSPENDING"]}
    staged = provider.staging.read_version(token)
    assert staged is not None and staged.fingerprint == new.fingerprint
    assert provider.staging.current_version() == old_version
    assert provider.staging.read_version(str(uuid.uuid4())) is None

    provider.staging.promote(token)

    assert provider.staging.current_version() == token
    assert aws.stages() == {old_version: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    provider.staging.promote(token)  # finishSecret retried: already current
    assert aws.stages() == {old_version: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}


def test_an_explicit_token_must_be_32_to_64_characters(aws: Aws) -> None:
    with pytest.raises(ProviderError, match="32-64"):
        aws.provider().staging.stage_pending(payload(), token="too-short")
    assert aws.calls.names() == []


def test_promote_refuses_a_version_this_policy_did_not_stage(aws: Aws) -> None:
    provider = aws.provider()
    provider.publish(payload())
    stray = aws.put_by_hand({"LANGSMITH_API_KEY": new_key()}, VersionStages=["AWSPENDING"])

    with pytest.raises(ProviderConflict, match=stray):
        provider.staging.promote(stray)


# -- the IAM action list ---------------------------------------------------------------


def test_the_iam_action_list_is_exactly_the_calls_made(aws: Aws) -> None:
    aws.raw.create_secret(Name=SECRET, SecretString=encode({"A": "b"}, "json"))
    adopter = aws.provider(adopt=True)
    adopter.validate()
    first = adopter.publish(payload())
    adopter.publish(payload())
    adopter.retire(first)
    adopter.read()
    adopter.staging.promote(adopter.staging.stage_pending(payload(rotation=str(uuid.uuid4()))))
    aws.provider(secret_id="another", replica_regions=["eu-west-1"]).publish(payload())

    called = {f"secretsmanager:{name}" for name in aws.calls.names()}
    assert called == set(SECRETS_MANAGER_ACTIONS) - IMPLIED_ACTIONS
    assert len(set(SECRETS_MANAGER_ACTIONS)) == len(SECRETS_MANAGER_ACTIONS)


# -- over real HTTP --------------------------------------------------------------------


def test_publish_and_read_back_through_a_moto_server(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_moto(monkeypatch) as endpoint:
        config = AwsTarget.model_validate(
            {"provider": "aws", "secret_id": SECRET, "region": REGION, "endpoint_url": endpoint}
        )
        written = payload()
        with Connections() as connections:
            provider = connections.open(config, POLICY)
            version = provider.publish(written)
            stored = provider.read()
        assert stored is not None
        assert (stored.fingerprint, stored.version) == (written.fingerprint, version)
        sdk = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
        try:
            value = sdk.get_secret_value(SecretId=SECRET, VersionStage="AWSCURRENT")
        finally:
            sdk.close()
        assert (
            decode(value["SecretString"], "json")["LANGSMITH_API_KEY"] == written.api_key.reveal()
        )


def test_discard_unstages_an_abandoned_rotation_only(aws: Aws) -> None:
    provider = aws.provider()
    provider.publish(payload())
    token = str(uuid.uuid4())
    provider.staging.stage_pending(payload(rotation=token), token)
    provider.discard(rotation_id())  # another rotation's: left alone
    assert aws.stages()[token] == ["AWSPENDING"]
    provider.discard(token)
    assert token not in aws.stages()
    assert provider.read() is not None  # consumers still read the current payload
