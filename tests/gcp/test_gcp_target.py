"""The Secret Manager target on the gRPC fake: what the contract suite does not pin down
(aliases, labels, retire, metadata-only observation, error mapping, the shared client)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from google.api_core.exceptions import InvalidArgument
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.types import resources
from pydantic import ValidationError

from bridge.config.gcp import GcpTarget
from bridge.errors import (
    OwnershipError,
    ProviderAccessDenied,
    ProviderConflict,
    ProviderThrottled,
    ProviderUnavailable,
)
from bridge.payload import ENDPOINT, WORKSPACE_ID, Payload
from bridge.secrets import Secret
from providers import Connections
from providers.gcp.fake import FakeSecretManager
from providers.gcp.secret_manager import SecretManagerProvider, secret_text
from providers.gcp.sm_calls import policy_label
from tests.support.keys import new_key

pytestmark = pytest.mark.integration

POLICY = "Team.Alpha/prod"  # not a valid label value as it is
PROJECT = "projects/demo-project"
NAME = f"{PROJECT}/secrets/langsmith-alpha"
State = resources.SecretVersion.State


def payload(policy: str = POLICY) -> Payload:
    return Payload(
        policy=policy,
        rotation_id=f"20250101T000000Z-{secrets.token_hex(3)}",
        api_key=Secret(new_key()),
        settings={ENDPOINT: "http://127.0.0.1:1984", WORKSPACE_ID: str(uuid.uuid4())},
    )


def config(fake: FakeSecretManager, **extra: object) -> GcpTarget:
    return GcpTarget.model_validate(
        {
            "provider": "gcp",
            "project": "demo-project",
            "secret": "langsmith-alpha",
            "endpoint": fake.target,
            "insecure": True,
            **extra,
        }
    )


@pytest.fixture
def connections() -> Iterator[Connections]:
    with Connections() as opened:
        yield opened


def open_target(
    connections: Connections, fake: FakeSecretManager, **extra: object
) -> SecretManagerProvider:
    provider = connections.open(config(fake, **extra), POLICY)
    assert isinstance(provider, SecretManagerProvider)
    return provider


def test_a_created_secret_is_labelled_as_the_policys_with_valid_label_values(
    fake_sm: FakeSecretManager, connections: Connections, sm_client: SecretManagerServiceClient
) -> None:
    open_target(connections, fake_sm, labels={"team": "alpha"}).publish(payload())

    secret = sm_client.get_secret(name=NAME)
    assert dict(secret.labels) == {
        "managed-by": "langsmith-bridge",
        "langsmith-bridge-policy": policy_label(POLICY),
        "team": "alpha",
    }
    assert secret.annotations["langsmith-bridge.policy"] == POLICY
    assert policy_label(POLICY) != policy_label(POLICY.lower())


def test_each_generation_is_a_version_and_current_and_previous_move_together(
    fake_sm: FakeSecretManager, connections: Connections, sm_client: SecretManagerServiceClient
) -> None:
    provider = open_target(connections, fake_sm)
    first = provider.publish(payload())
    new = payload()
    second = provider.publish(new)

    aliases = dict(sm_client.get_secret(name=NAME).version_aliases)
    assert aliases == {"current": int(second), "previous": int(first)}
    data = sm_client.access_secret_version(name=f"{NAME}/versions/current").payload.data
    assert new.api_key.reveal() in data.decode()


def test_a_recorded_current_version_is_observed_from_the_secrets_metadata_alone(
    fake_sm: FakeSecretManager, connections: Connections
) -> None:
    provider = open_target(connections, fake_sm)
    written = payload()
    version = provider.publish(written)
    fake_sm.faults.calls.clear()

    seen = provider.observe({version: written.fingerprint})

    assert (seen.ownership, seen.version, seen.content_read) == ("ours", version, False)
    assert dict(fake_sm.faults.calls) == {"GetSecret": 1}


def test_retire_disables_the_superseded_version_and_never_the_current_one(
    fake_sm: FakeSecretManager, connections: Connections, sm_client: SecretManagerServiceClient
) -> None:
    provider = open_target(connections, fake_sm)
    old = provider.publish(payload())
    new = provider.publish(payload())

    provider.retire(new)  # the current one: untouched
    provider.retire(old)
    provider.retire(old)  # already retired

    assert sm_client.get_secret_version(name=f"{NAME}/versions/{old}").state == State.DISABLED
    assert sm_client.get_secret_version(name=f"{NAME}/versions/{new}").state == State.ENABLED
    assert dict(sm_client.get_secret(name=NAME).version_aliases) == {"current": int(new)}


def test_retire_destroys_the_version_when_configured(
    fake_sm: FakeSecretManager, connections: Connections, sm_client: SecretManagerServiceClient
) -> None:
    provider = open_target(connections, fake_sm, destroy_retired=True)
    old = provider.publish(payload())
    provider.publish(payload())

    provider.retire(old)

    assert sm_client.get_secret_version(name=f"{NAME}/versions/{old}").state == State.DESTROYED


def test_a_created_secret_gets_the_configured_rotation_schedule(
    fake_sm: FakeSecretManager, connections: Connections, sm_client: SecretManagerServiceClient
) -> None:
    topic = "projects/demo-project/topics/langsmith-rotation"
    before = datetime.now(UTC)
    target = open_target(connections, fake_sm, rotation_topic=topic, rotation_period="30d")
    target.publish(payload())

    secret = sm_client.get_secret(name=NAME)
    assert [t.name for t in secret.topics] == [topic]
    assert secret.rotation.rotation_period == timedelta(days=30)
    assert before + timedelta(days=30) <= secret.rotation.next_rotation_time
    assert secret.rotation.next_rotation_time <= datetime.now(UTC) + timedelta(days=30)


def test_the_fake_refuses_a_rotation_schedule_without_topics_or_under_an_hour(
    fake_sm: FakeSecretManager, sm_client: SecretManagerServiceClient
) -> None:
    soon = datetime.now(UTC) + timedelta(hours=2)
    topics = [resources.Topic(name="projects/demo-project/topics/t")]
    cases = {
        "no-topics": resources.Secret(rotation=resources.Rotation(next_rotation_time=soon)),
        "short": resources.Secret(
            topics=topics,
            rotation=resources.Rotation(next_rotation_time=soon, rotation_period=timedelta(1 / 48)),
        ),
        "too-soon": resources.Secret(
            topics=topics,
            rotation=resources.Rotation(next_rotation_time=datetime.now(UTC)),
        ),
    }
    for secret_id, secret in cases.items():
        secret.replication = resources.Replication(automatic=resources.Replication.Automatic())
        with pytest.raises(InvalidArgument):
            sm_client.create_secret(parent=PROJECT, secret_id=secret_id, secret=secret)


def killed_after_add(sm_client: SecretManagerServiceClient, written: Payload) -> str:
    """What a run killed between ``AddSecretVersion`` and the alias move leaves behind."""
    added = sm_client.add_secret_version(
        parent=NAME, payload=resources.SecretPayload(data=secret_text(written).encode())
    )
    return str(added.name).rsplit("/", 1)[-1]


def test_a_version_a_killed_run_added_is_made_current_by_the_next_publish_not_twinned(
    fake_sm: FakeSecretManager, connections: Connections, sm_client: SecretManagerServiceClient
) -> None:
    provider = open_target(connections, fake_sm)
    first = provider.publish(payload())
    resumed = payload()
    left = killed_after_add(sm_client, resumed)

    assert provider.publish(resumed) == left

    assert dict(sm_client.get_secret(name=NAME).version_aliases) == {
        "current": int(left),
        "previous": int(first),
    }
    versions = sm_client.list_secret_versions(parent=NAME)
    assert sorted(str(v.name).rsplit("/", 1)[-1] for v in versions) == [first, left]


def test_discard_disables_the_abandoned_rotations_unaliased_version_only(
    fake_sm: FakeSecretManager, connections: Connections, sm_client: SecretManagerServiceClient
) -> None:
    provider = open_target(connections, fake_sm)
    live = provider.publish(payload())
    abandoned, other = payload(), payload()
    left = killed_after_add(sm_client, abandoned)
    unrelated = killed_after_add(sm_client, other)

    provider.discard(abandoned.rotation_id)

    def state(number: str) -> int:
        return sm_client.get_secret_version(name=f"{NAME}/versions/{number}").state

    assert (state(left), state(unrelated), state(live)) == (
        State.DISABLED,
        State.ENABLED,
        State.ENABLED,
    )
    assert dict(sm_client.get_secret(name=NAME).version_aliases) == {"current": int(live)}


def test_a_new_secret_whose_only_version_was_discarded_reads_as_empty_not_failed(
    fake_sm: FakeSecretManager, connections: Connections, sm_client: SecretManagerServiceClient
) -> None:
    provider = open_target(connections, fake_sm)
    abandoned = payload()
    provider.publish(abandoned)
    sm_client.update_secret(  # as if killed before the alias move of the first publish
        secret=resources.Secret(name=NAME, version_aliases={}),
        update_mask={"paths": ["version_aliases"]},
    )

    provider.discard(abandoned.rotation_id)
    seen = provider.observe({})

    assert (seen.ownership, seen.fingerprint, seen.version) == ("ours", None, None)
    assert provider.read() is None
    replacement = payload()
    number = provider.publish(replacement)
    assert provider.observe({}).fingerprint == replacement.fingerprint
    assert dict(sm_client.get_secret(name=NAME).version_aliases) == {"current": int(number)}


def test_an_alias_moved_after_the_observation_fails_the_publish_as_a_conflict(
    fake_sm: FakeSecretManager, connections: Connections, sm_client: SecretManagerServiceClient
) -> None:
    provider = open_target(connections, fake_sm)
    provider.publish(payload())
    provider.observe({})
    secret = sm_client.get_secret(name=NAME)
    secret.labels["touched"] = "yes"  # any write changes the etag
    sm_client.update_secret(secret=secret, update_mask={"paths": ["labels"]})

    with pytest.raises(ProviderConflict, match="etag"):
        provider.publish(payload())


def test_a_foreign_secret_is_adopted_only_when_allowed_and_then_labelled(
    fake_sm: FakeSecretManager, connections: Connections, sm_client: SecretManagerServiceClient
) -> None:
    sm_client.create_secret(
        parent="projects/demo-project",
        secret_id="langsmith-alpha",
        secret={"replication": {"automatic": {}}},
    )
    with pytest.raises(OwnershipError):
        open_target(connections, fake_sm).publish(payload())

    adopting = open_target(connections, fake_sm, adopt=True)
    assert adopting.observe({}).ownership == "adoptable"
    adopting.publish(payload())
    assert sm_client.get_secret(name=NAME).labels["managed-by"] == "langsmith-bridge"
    assert adopting.observe({}).ownership == "ours"


@pytest.mark.parametrize(
    ("code", "kind", "retryable"),
    [
        ("PERMISSION_DENIED", ProviderAccessDenied, False),
        ("RESOURCE_EXHAUSTED", ProviderThrottled, True),
        ("UNAVAILABLE", ProviderUnavailable, True),
        ("DEADLINE_EXCEEDED", ProviderUnavailable, True),
        ("ABORTED", ProviderConflict, False),
    ],
)
def test_failures_map_into_the_error_tree_once_without_the_clients_own_retries(
    fake_sm: FakeSecretManager,
    connections: Connections,
    code: str,
    kind: type[Exception],
    retryable: bool,
) -> None:
    provider = open_target(connections, fake_sm)
    fake_sm.faults.fail_next("GetSecret", code, times=5)

    with pytest.raises(kind) as caught:
        provider.observe({})

    assert caught.value.retryable is retryable  # type: ignore[attr-defined]
    assert "GetSecret" in str(caught.value) and NAME in str(caught.value)
    assert fake_sm.faults.calls["GetSecret"] == 1


def test_targets_on_one_endpoint_share_one_client(
    fake_sm: FakeSecretManager, connections: Connections
) -> None:
    connection = connections.connection("gcp")
    one, two = config(fake_sm), config(fake_sm, secret="other")

    assert connection.secret_manager_client(one) is connection.secret_manager_client(two)


@pytest.mark.parametrize("endpoint", ["secretmanager.googleapis.com:443", "10.0.0.1:8080"])
def test_insecure_is_refused_off_loopback(endpoint: str) -> None:
    with pytest.raises(ValidationError, match="loopback"):
        GcpTarget.model_validate(
            {
                "provider": "gcp",
                "project": "p-1",
                "secret": "s",
                "endpoint": endpoint,
                "insecure": True,
            }
        )


def test_the_target_id_names_project_and_secret() -> None:
    target = GcpTarget.model_validate({"provider": "gcp", "project": "my-proj", "secret": "key"})
    assert target.target_id == "gcp:my-proj/key"
    assert target.replication == "automatic"
