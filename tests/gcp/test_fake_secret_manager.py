"""The fake Secret Manager, held to the documented API through the official client."""

from __future__ import annotations

import socket
import subprocess
import sys

import google_crc32c
import grpc
import pytest
from google.api_core import exceptions
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
    SecretManagerServiceGrpcTransport,
)
from google.cloud.secretmanager_v1.types import Replication, Secret, SecretPayload, SecretVersion
from google.protobuf import field_mask_pb2

from providers.gcp.fake import FakeSecretManager
from tests.gcp.conftest import PROJECT

pytestmark = pytest.mark.integration

ENABLED = SecretVersion.State.ENABLED
DISABLED = SecretVersion.State.DISABLED
DESTROYED = SecretVersion.State.DESTROYED
NO_RETRY = None  # the client's default retry would mask an injected UNAVAILABLE


def _create(client: SecretManagerServiceClient, secret_id: str = "app", **fields: object) -> Secret:  # noqa: S107
    fields.setdefault("replication", Replication(automatic=Replication.Automatic()))
    return client.create_secret(
        request={"parent": PROJECT, "secret_id": secret_id, "secret": Secret(**fields)}
    )


def _add(client: SecretManagerServiceClient, secret: Secret, data: bytes) -> SecretVersion:
    crc = int(google_crc32c.value(data))
    payload = SecretPayload(data=data, data_crc32c=crc)
    return client.add_secret_version(request={"parent": secret.name, "payload": payload})


def _access(client: SecretManagerServiceClient, name: str) -> bytes:
    return bytes(client.access_secret_version(request={"name": name}).payload.data)


def _set_aliases(
    client: SecretManagerServiceClient, secret: Secret, aliases: dict[str, int], etag: str
) -> Secret:
    update = Secret(name=secret.name, version_aliases=aliases, etag=etag)
    mask = field_mask_pb2.FieldMask(paths=["version_aliases"])
    return client.update_secret(request={"secret": update, "update_mask": mask})


# -- secrets ----------------------------------------------------------------------------


def test_create_get_and_duplicate_create(sm_client: SecretManagerServiceClient) -> None:
    created = _create(
        sm_client,
        labels={"managed-by": "langsmith-bridge"},
        annotations={"langsmith-bridge.policy": "p1"},
    )
    assert created.name == f"{PROJECT}/secrets/app"
    assert created.etag
    fetched = sm_client.get_secret(request={"name": created.name})
    assert fetched.labels["managed-by"] == "langsmith-bridge"
    assert fetched.annotations["langsmith-bridge.policy"] == "p1"
    assert "automatic" in fetched.replication
    with pytest.raises(exceptions.AlreadyExists):
        _create(sm_client)
    with pytest.raises(exceptions.InvalidArgument):  # keys allow no "/" (documented)
        _create(sm_client, "bad", annotations={"a/b": "x"})


def test_user_managed_replication_with_cmek_is_stored(
    sm_client: SecretManagerServiceClient,
) -> None:
    key = "projects/k/locations/europe-west1/keyRings/r/cryptoKeys/c"
    replica = Replication.UserManaged.Replica(
        location="europe-west1", customer_managed_encryption={"kms_key_name": key}
    )
    created = _create(sm_client, replication=Replication(user_managed={"replicas": [replica]}))
    got = sm_client.get_secret(request={"name": created.name})
    assert got.replication.user_managed.replicas[0].customer_managed_encryption.kms_key_name == key


def test_create_without_replication_is_invalid(sm_client: SecretManagerServiceClient) -> None:
    with pytest.raises(exceptions.InvalidArgument):
        sm_client.create_secret(request={"parent": PROJECT, "secret_id": "x", "secret": Secret()})


def test_missing_secret_is_not_found(sm_client: SecretManagerServiceClient) -> None:
    with pytest.raises(exceptions.NotFound):
        sm_client.get_secret(request={"name": f"{PROJECT}/secrets/nope"})
    with pytest.raises(exceptions.NotFound):
        _access(sm_client, f"{PROJECT}/secrets/nope/versions/latest")


def test_update_labels_needs_a_mask_and_a_current_etag(
    sm_client: SecretManagerServiceClient,
) -> None:
    secret = _create(sm_client, labels={"a": "1"})
    mask = field_mask_pb2.FieldMask(paths=["labels"])
    changed = Secret(name=secret.name, labels={"b": "2"}, etag=secret.etag)
    updated = sm_client.update_secret(request={"secret": changed, "update_mask": mask})
    assert dict(updated.labels) == {"b": "2"}
    assert updated.etag != secret.etag
    with pytest.raises(exceptions.FailedPrecondition):
        sm_client.update_secret(request={"secret": changed, "update_mask": mask})
    with pytest.raises(exceptions.InvalidArgument):
        sm_client.update_secret(request={"secret": Secret(name=secret.name, labels={})})
    replication = field_mask_pb2.FieldMask(paths=["replication"])
    with pytest.raises(exceptions.InvalidArgument):
        sm_client.update_secret(request={"secret": changed, "update_mask": replication})


def test_delete_checks_etag_and_removes_versions(sm_client: SecretManagerServiceClient) -> None:
    secret = _create(sm_client)
    _add(sm_client, secret, b"v1")
    with pytest.raises(exceptions.FailedPrecondition):
        sm_client.delete_secret(request={"name": secret.name, "etag": '"stale"'})
    sm_client.delete_secret(request={"name": secret.name, "etag": secret.etag})
    with pytest.raises(exceptions.NotFound):
        _access(sm_client, f"{secret.name}/versions/1")


def test_list_secrets_filters_by_label_and_pages(sm_client: SecretManagerServiceClient) -> None:
    for index in range(3):
        _create(sm_client, f"owned-{index}", labels={"managed-by": "langsmith-bridge"})
    _create(sm_client, "foreign")
    owned = sm_client.list_secrets(
        request={"parent": PROJECT, "filter": "labels.managed-by=langsmith-bridge", "page_size": 2}
    )
    assert [s.name.rsplit("/", 1)[-1] for s in owned] == ["owned-0", "owned-1", "owned-2"]
    everything = sm_client.list_secrets(request={"parent": PROJECT})
    assert len(list(everything)) == 4


# -- versions, latest and aliases -------------------------------------------------------


def test_add_and_access_by_number_and_latest(sm_client: SecretManagerServiceClient) -> None:
    secret = _create(sm_client)
    first = _add(sm_client, secret, b"one")
    second = _add(sm_client, secret, b"two")
    assert first.name.endswith("/versions/1")
    assert second.name.endswith("/versions/2")
    assert second.state == ENABLED
    assert second.client_specified_payload_checksum
    assert _access(sm_client, first.name) == b"one"
    response = sm_client.access_secret_version(request={"name": f"{secret.name}/versions/latest"})
    assert response.name == second.name
    assert response.payload.data == b"two"
    assert response.payload.data_crc32c == google_crc32c.value(b"two")


def test_add_version_leaves_the_secret_etag_alone(sm_client: SecretManagerServiceClient) -> None:
    secret = _create(sm_client)
    _add(sm_client, secret, b"one")
    assert sm_client.get_secret(request={"name": secret.name}).etag == secret.etag


def test_bad_checksum_is_rejected(sm_client: SecretManagerServiceClient) -> None:
    secret = _create(sm_client)
    payload = SecretPayload(data=b"data", data_crc32c=12345)
    with pytest.raises(exceptions.InvalidArgument):
        sm_client.add_secret_version(request={"parent": secret.name, "payload": payload})
    unchecked = sm_client.add_secret_version(
        request={"parent": secret.name, "payload": SecretPayload(data=b"data")}
    )
    assert not unchecked.client_specified_payload_checksum


def test_oversized_payload_is_rejected(sm_client: SecretManagerServiceClient) -> None:
    secret = _create(sm_client)
    with pytest.raises(exceptions.InvalidArgument):
        _add(sm_client, secret, b"x" * (64 * 1024 + 1))


def test_aliases_resolve_and_move_with_etag(sm_client: SecretManagerServiceClient) -> None:
    secret = _create(sm_client)
    _add(sm_client, secret, b"k1")
    secret = _set_aliases(sm_client, secret, {"current": 1}, secret.etag)
    _add(sm_client, secret, b"k2")
    assert _access(sm_client, f"{secret.name}/versions/current") == b"k1"
    assert _access(sm_client, f"{secret.name}/versions/latest") == b"k2"
    got = sm_client.get_secret_version(request={"name": f"{secret.name}/versions/current"})
    assert got.name.endswith("/versions/1")

    moved = _set_aliases(sm_client, secret, {"current": 2, "previous": 1}, secret.etag)
    assert dict(moved.version_aliases) == {"current": 2, "previous": 1}
    assert _access(sm_client, f"{secret.name}/versions/current") == b"k2"
    assert _access(sm_client, f"{secret.name}/versions/previous") == b"k1"

    with pytest.raises(exceptions.FailedPrecondition):  # a second writer with the old etag
        _set_aliases(sm_client, secret, {"current": 1}, secret.etag)
    assert _access(sm_client, f"{secret.name}/versions/current") == b"k2"


def test_aliases_must_name_existing_versions_and_valid_names(
    sm_client: SecretManagerServiceClient,
) -> None:
    secret = _create(sm_client)
    _add(sm_client, secret, b"k1")
    for aliases in ({"current": 7}, {"latest": 1}, {"1bad": 1}):
        with pytest.raises(exceptions.InvalidArgument):
            _set_aliases(sm_client, secret, aliases, "")


def test_unknown_alias_is_not_found(sm_client: SecretManagerServiceClient) -> None:
    secret = _create(sm_client)
    _add(sm_client, secret, b"k1")
    with pytest.raises(exceptions.NotFound):
        _access(sm_client, f"{secret.name}/versions/current")


# -- version states ---------------------------------------------------------------------


def test_disable_enable_destroy_with_etags(sm_client: SecretManagerServiceClient) -> None:
    secret = _create(sm_client)
    version = _add(sm_client, secret, b"old")
    _add(sm_client, secret, b"new")

    with pytest.raises(exceptions.FailedPrecondition):
        sm_client.disable_secret_version(request={"name": version.name, "etag": '"stale"'})
    disabled = sm_client.disable_secret_version(
        request={"name": version.name, "etag": version.etag}
    )
    assert disabled.state == DISABLED
    assert disabled.etag != version.etag
    with pytest.raises(exceptions.FailedPrecondition):
        _access(sm_client, version.name)
    assert _access(sm_client, f"{secret.name}/versions/latest") == b"new"

    enabled = sm_client.enable_secret_version(request={"name": version.name})
    assert enabled.state == ENABLED
    assert _access(sm_client, version.name) == b"old"

    destroyed = sm_client.destroy_secret_version(
        request={"name": version.name, "etag": enabled.etag}
    )
    assert destroyed.state == DESTROYED
    assert "destroy_time" in destroyed
    with pytest.raises(exceptions.FailedPrecondition):
        _access(sm_client, version.name)
    with pytest.raises(exceptions.FailedPrecondition):
        sm_client.enable_secret_version(request={"name": version.name})


def test_latest_is_the_newest_version_whatever_its_state(
    sm_client: SecretManagerServiceClient,
) -> None:
    """The reference: ``latest`` is an alias to the most recently created version."""
    secret = _create(sm_client)
    _add(sm_client, secret, b"one")
    newest = _add(sm_client, secret, b"two")
    sm_client.disable_secret_version(request={"name": newest.name})
    with pytest.raises(exceptions.FailedPrecondition):
        _access(sm_client, f"{secret.name}/versions/latest")


def test_alias_to_a_disabled_version_fails_to_access(
    sm_client: SecretManagerServiceClient,
) -> None:
    secret = _create(sm_client)
    version = _add(sm_client, secret, b"k1")
    _set_aliases(sm_client, secret, {"current": 1}, "")
    sm_client.disable_secret_version(request={"name": version.name})
    with pytest.raises(exceptions.FailedPrecondition):
        _access(sm_client, f"{secret.name}/versions/current")


def test_version_numbers_are_never_reused(sm_client: SecretManagerServiceClient) -> None:
    secret = _create(sm_client)
    first = _add(sm_client, secret, b"one")
    sm_client.destroy_secret_version(request={"name": first.name})
    assert _add(sm_client, secret, b"two").name.endswith("/versions/2")


def test_list_versions_newest_first_and_by_state(sm_client: SecretManagerServiceClient) -> None:
    secret = _create(sm_client)
    for data in (b"a", b"b", b"c"):
        _add(sm_client, secret, data)
    sm_client.disable_secret_version(request={"name": f"{secret.name}/versions/2"})
    listed = sm_client.list_secret_versions(request={"parent": secret.name})
    assert [v.name.rsplit("/", 1)[-1] for v in listed] == ["3", "2", "1"]
    enabled = sm_client.list_secret_versions(
        request={"parent": secret.name, "filter": "state:ENABLED"}
    )
    assert [v.name.rsplit("/", 1)[-1] for v in enabled] == ["3", "1"]


# -- faults -----------------------------------------------------------------------------


def test_injected_permission_denied_then_recovers(
    fake_sm: FakeSecretManager, sm_client: SecretManagerServiceClient
) -> None:
    secret = _create(sm_client)
    _add(sm_client, secret, b"k")
    fake_sm.faults.fail_next("AccessSecretVersion", "PERMISSION_DENIED", times=2)
    name = f"{secret.name}/versions/latest"
    for _ in range(2):
        with pytest.raises(exceptions.PermissionDenied):
            _access(sm_client, name)
    assert _access(sm_client, name) == b"k"


def test_iam_denial_scoped_to_a_secret(
    fake_sm: FakeSecretManager, sm_client: SecretManagerServiceClient
) -> None:
    mine = _create(sm_client, "mine")
    other = _create(sm_client, "other")
    fake_sm.faults.deny(resource_prefix=other.name)
    _add(sm_client, mine, b"ok")
    with pytest.raises(exceptions.PermissionDenied):
        _add(sm_client, other, b"no")
    fake_sm.faults.reset()
    _add(sm_client, other, b"now")


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("RESOURCE_EXHAUSTED", exceptions.TooManyRequests),
        ("UNAVAILABLE", exceptions.ServiceUnavailable),
    ],
)
def test_injected_quota_and_outage(
    fake_sm: FakeSecretManager,
    sm_client: SecretManagerServiceClient,
    code: str,
    error: type[Exception],
) -> None:
    secret = _create(sm_client)
    fake_sm.faults.fail_next("AddSecretVersion", code)
    with pytest.raises(error):
        sm_client.add_secret_version(
            request={"parent": secret.name, "payload": SecretPayload(data=b"x")},
            retry=NO_RETRY,
        )
    assert fake_sm.faults.calls["AddSecretVersion"] == 1


def test_injected_latency_trips_a_client_timeout(
    fake_sm: FakeSecretManager, sm_client: SecretManagerServiceClient
) -> None:
    fake_sm.faults.set_latency(0.5, "GetSecret")
    with pytest.raises(exceptions.DeadlineExceeded):
        sm_client.get_secret(request={"name": f"{PROJECT}/secrets/x"}, timeout=0.1, retry=NO_RETRY)


def test_concurrent_adds_get_distinct_numbers(sm_client: SecretManagerServiceClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    secret = _create(sm_client)
    with ThreadPoolExecutor(max_workers=8) as pool:
        names = list(pool.map(lambda i: _add(sm_client, secret, str(i).encode()).name, range(40)))
    assert len(set(names)) == 40


# -- loopback and standalone ------------------------------------------------------------


def test_refuses_a_non_loopback_host() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FakeSecretManager(host="0.0.0.0")  # noqa: S104


def test_runs_standalone() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "providers.gcp.fake", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "listening on" in process.stdout.readline()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        client = SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=channel)
        )
        secret = _create(client)
        _add(client, secret, b"hello")
        assert _access(client, f"{secret.name}/versions/latest") == b"hello"
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
