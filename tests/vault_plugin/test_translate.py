"""Translation between the host's protobuf messages and the router's plain Python values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from vault_plugin import translate
from vault_plugin.broker import duration, nanoseconds
from vault_plugin.contract import LeasedSecret, PluginResponse, SpecialPaths
from vault_plugin.wire import backend_pb2


def test_durations_are_go_nanoseconds() -> None:
    assert nanoseconds(timedelta(minutes=1, microseconds=5)) == 60_000_005_000
    assert duration(60_000_005_999) == timedelta(minutes=1, microseconds=5)
    assert nanoseconds(timedelta(days=400)) == 400 * 86_400 * 10**9


def test_a_request_carries_its_data_and_the_leases_secret() -> None:
    secret = backend_pb2.Secret(
        lease_options=backend_pb2.LeaseOptions(TTL=60 * 10**9, MaxTTL=600 * 10**9, increment=5),
        internal_data='{"secret_type": "creds", "key_id": "k"}',
        lease_id="langsmith/creds/ci/abc",
    )
    wire = backend_pb2.Request(
        id="r1",
        operation="renew",
        path="creds/ci",
        data='{"a": 1}',
        secret=secret,
        display_name="root",
        mount_point="langsmith/",
    )
    request = translate.request_from_wire(wire)
    assert (request.operation, request.path, request.data) == ("renew", "creds/ci", {"a": 1})
    assert request.secret is not None
    assert request.secret.internal == {"secret_type": "creds", "key_id": "k"}
    assert request.secret.ttl == timedelta(minutes=1)
    assert request.secret.max_ttl == timedelta(minutes=10)
    assert request.secret.lease_id == "langsmith/creds/ci/abc"
    assert (request.request_id, request.mount_point) == ("r1", "langsmith/")


@pytest.mark.parametrize("data", ["", "null", "{}"])
def test_empty_request_data_is_an_empty_dict(data: str) -> None:
    request = translate.request_from_wire(backend_pb2.Request(operation="read", data=data))
    assert request.data == {} and request.secret is None


def test_request_data_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(translate.TranslationError):
        translate.request_from_wire(backend_pb2.Request(operation="read", data="[1]"))


def test_a_secret_gets_json_internal_data_ns_durations_and_an_issue_time() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    response = PluginResponse(
        data={"api_key": "x"},
        secret=LeasedSecret(
            internal={"secret_type": "creds"}, ttl=timedelta(seconds=90), max_ttl=timedelta(hours=1)
        ),
        warnings=("careful",),
    )
    reply = translate.reply_to_wire(response, now)
    assert not reply.HasField("err")
    wire = reply.response
    assert json.loads(wire.data) == {"api_key": "x"} and list(wire.warnings) == ["careful"]
    options = wire.secret.lease_options
    assert (options.TTL, options.MaxTTL, options.renewable) == (90 * 10**9, 3600 * 10**9, True)
    assert options.issue_time.ToDatetime(UTC) == now
    assert json.loads(wire.secret.internal_data) == {"secret_type": "creds"}


def test_a_secret_without_data_sends_null_which_the_host_can_parse() -> None:
    reply = translate.reply_to_wire(PluginResponse(secret=LeasedSecret(internal={})))
    assert reply.response.data == "null"
    assert reply.response.secret.lease_options.HasField("issue_time")


def test_an_empty_response_is_left_unset_so_a_read_is_a_404() -> None:
    assert not translate.reply_to_wire(PluginResponse()).HasField("response")


def test_an_error_becomes_a_proto_error() -> None:
    reply = translate.reply_to_wire(PluginResponse.failure(4, "ttl must be below max_ttl"))
    assert (reply.err.err_type, reply.err.err_msg) == (4, "ttl must be below max_ttl")
    assert not reply.HasField("response")


def test_special_paths() -> None:
    reply = translate.paths_to_wire(SpecialPaths(root=("config",), local_storage=("wal/",)))
    assert list(reply.paths.root) == ["config"] and list(reply.paths.local_storage) == ["wal/"]
