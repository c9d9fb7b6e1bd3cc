"""The GCS state backend against a real fake-gcs-server: the preconditions it relies on
(and the one the server does not enforce), what its objects look like, how failures map
into the error tree, and one client per process."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.api_core.exceptions import PreconditionFailed

from bridge.config.gcp import GcsStateSettings
from bridge.errors import LeaseHeld, StateError
from bridge.state.model import Ack
from providers.gcp import GcpConnection
from providers.gcp.gcs_objects import StateUnavailable
from providers.gcp.gcs_state import GcsStateStore
from tests.support.gcs import GcsServer

pytestmark = pytest.mark.integration

PREFIX = "langsmith-bridge/bridge-state"
TTL = timedelta(minutes=5)


@pytest.fixture
def settings(gcs: GcsServer) -> GcsStateSettings:
    bucket = gcs.fresh_bucket()
    return GcsStateSettings(backend="gcs", bucket=bucket, prefix=PREFIX, endpoint=gcs.endpoint)


@pytest.fixture
def client(gcs: GcsServer) -> Any:
    return gcs.client()


@pytest.fixture
def store(settings: GcsStateSettings, client: Any) -> Iterator[GcsStateStore]:
    opened = GcsStateStore(settings, client)
    yield opened
    opened.close()


def read_json(client: Any, settings: GcsStateSettings, path: str) -> Any:
    blob = client.bucket(settings.bucket).blob(f"{PREFIX}/{path}")
    return json.loads(blob.download_as_bytes())


# -- what the server enforces ----------------------------------------------------------


def test_the_server_refuses_an_upload_whose_generation_does_not_match(
    settings: GcsStateSettings, client: Any
) -> None:
    blob = client.bucket(settings.bucket).blob("probe.json")
    blob.upload_from_string(b"1", if_generation_match=0)
    first = blob.generation

    with pytest.raises(PreconditionFailed):
        client.bucket(settings.bucket).blob("probe.json").upload_from_string(
            b"2", if_generation_match=0
        )
    with pytest.raises(PreconditionFailed):
        client.bucket(settings.bucket).blob("probe.json").upload_from_string(
            b"2", if_generation_match=first + 1
        )
    blob.upload_from_string(b"3", if_generation_match=first)
    assert blob.generation != first


def test_the_server_ignores_the_generation_precondition_of_a_delete(
    settings: GcsStateSettings, client: Any
) -> None:
    """fake-gcs-server deletes whatever the precondition says (GCS itself answers 412):
    so the backend never deletes a lease, it overwrites it with an empty holder."""
    blob = client.bucket(settings.bucket).blob("probe.json")
    blob.upload_from_string(b"1", if_generation_match=0)

    client.bucket(settings.bucket).blob("probe.json").delete(
        if_generation_match=blob.generation + 1
    )

    assert client.bucket(settings.bucket).get_blob("probe.json") is None


# -- the objects -----------------------------------------------------------------------


def test_the_layout_is_one_json_object_per_record_run_lease_ack_and_the_deployment(
    store: GcsStateStore, settings: GcsStateSettings, client: Any
) -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    with store.lease("p", "host:1", TTL):
        store.save(store.load("p"))
        store.record_run("p", at, None)
        store.record_ack("p", Ack(consumer="team/api", fingerprint="f" * 16, at=at, replica="a"))
        store.record_ack("p", Ack(consumer="team/api", fingerprint="f" * 16, at=at, replica="b"))
        deployment = store.deployment_id()

    names = sorted(b.name for b in client.list_blobs(settings.bucket))
    assert names == [
        f"{PREFIX}/{path}"
        for path in (
            "acks/p/team/api.json",
            "leases/p.json",
            "meta/deployment.json",
            "policies/p.json",
            "runs/p.json",
        )
    ]
    assert read_json(client, settings, "policies/p.json")["version"] == 1
    assert set(read_json(client, settings, "acks/p/team/api.json")["replicas"]) == {"a", "b"}
    assert read_json(client, settings, "meta/deployment.json") == {"id": deployment}


def test_a_released_lease_is_overwritten_empty_never_deleted(
    store: GcsStateStore, settings: GcsStateSettings, client: Any
) -> None:
    with store.lease("p", "host:1", TTL):
        assert read_json(client, settings, "leases/p.json")["holder"].startswith("host:1#")

    assert read_json(client, settings, "leases/p.json")["holder"] == ""
    with store.lease("p", "host:2", TTL):  # free again
        pass


def test_a_late_release_leaves_the_successors_lease_in_place(
    settings: GcsStateSettings, client: Any
) -> None:
    now = [datetime.now(UTC)]
    first = GcsStateStore(settings, client, clock=lambda: now[0])
    second = GcsStateStore(settings, client, clock=lambda: now[0])
    with contextlib.ExitStack() as successor:
        with first.lease("p", "host:1", TTL):
            now[0] += TTL + timedelta(seconds=1)  # the first holder froze past its lease
            successor.enter_context(second.lease("p", "host:2", TTL))
        # The first block has ended: its release found another holder and wrote nothing.
        assert read_json(client, settings, "leases/p.json")["holder"].startswith("host:2#")
        with pytest.raises(LeaseHeld, match="host:2"), first.lease("p", "host:1", TTL):
            pass


# -- errors ----------------------------------------------------------------------------


def test_a_missing_bucket_is_a_state_error_naming_it(gcs: GcsServer, client: Any) -> None:
    settings = GcsStateSettings(backend="gcs", bucket="no-such-bucket", endpoint=gcs.endpoint)
    store = GcsStateStore(settings, client)

    with pytest.raises(StateError, match="no-such-bucket") as caught:
        store.save(store.load("p"))

    assert not caught.value.retryable


def test_an_unreachable_endpoint_is_retryable_state_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = GcsStateSettings(
        backend="gcs", bucket="bridge-state", endpoint=f"http://127.0.0.1:{port}"
    )
    store = GcsStateStore(settings)

    with pytest.raises(StateUnavailable, match="gs://bridge-state/") as caught:
        store.load("p")

    assert caught.value.retryable
    store.close()


def test_a_damaged_record_names_the_object_and_policy_never_its_content(
    store: GcsStateStore, settings: GcsStateSettings, client: Any
) -> None:
    blob = client.bucket(settings.bucket).blob(f"{PREFIX}/policies/broken.json")
    blob.upload_from_string(b'{"version": 1, "record": "lsv2_sk_secret-looking"}')

    with pytest.raises(StateError) as caught:
        store.load("broken")

    message = str(caught.value)
    assert f"gs://{settings.bucket}/{PREFIX}/policies/broken.json" in message
    assert "'broken'" in message and "malformed" in message
    assert "lsv2" not in message and "\n" not in message


# -- one client per process ------------------------------------------------------------


def test_the_connection_shares_one_storage_client_between_its_stores(
    settings: GcsStateSettings,
) -> None:
    connection = GcpConnection()
    try:
        first, second = connection.state(settings), connection.state(settings)
        first.save(first.load("p"))

        assert second.load("p").version == 1
        assert connection.storage_client(settings) is connection.storage_client(settings)
    finally:
        connection.close()
