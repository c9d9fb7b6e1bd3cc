"""The plugin process against a fake go-plugin host on real sockets: the handshake line and
certificate, TLS with the host's P-521 client certificate, every service the host dials, the
brokered storage round trip, and the ways the process ends."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.bao_plugin import FAKE_KEY, plugin_script
from tests.vault_plugin import fakehost
from vault_plugin import tls
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

pytestmark = pytest.mark.integration


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = fakehost.short_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def identity() -> tls.Identity:
    return fakehost.host_identity()


@pytest.fixture
def plugin(identity: tls.Identity, workdir: Path) -> Iterator[fakehost.Spawned]:
    spawned = fakehost.spawn(fakehost.host_env(identity), workdir)
    yield spawned
    fakehost.kill_quietly(spawned.process)


@pytest.fixture
def client(
    plugin: fakehost.Spawned, identity: tls.Identity, workdir: Path
) -> Iterator[grpc.Channel]:
    tls_client = fakehost.TlsClient(plugin, identity, workdir)
    yield tls_client.channel
    tls_client.close()


def test_the_handshake_line_names_a_private_unix_socket_and_our_certificate(
    plugin: fakehost.Spawned,
) -> None:
    print(f"\nhandshake (spawn -> line): {plugin.handshake_s * 1000:.0f} ms")
    core, app, network, address, protocol, cert = plugin.fields
    assert (core, app, network, protocol) == ("1", "5", "unix", "grpc")
    assert "=" not in cert  # unpadded standard base64
    mode = Path(address).stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(Path(address).parent.stat().st_mode) == 0o700
    parsed = plugin.cert()
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    eku = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(eku)
    assert parsed.issuer == parsed.subject  # its own root


def test_nothing_but_the_line_is_written_to_stdout_and_logs_are_hclog_json(
    plugin: fakehost.Spawned, client: grpc.Channel
) -> None:
    health_pb2_grpc.HealthStub(client).Check(health_pb2.HealthCheckRequest(service="plugin"))
    goplugin_pb2_grpc.GRPCControllerStub(client).Shutdown(goplugin_pb2.Empty())
    assert fakehost.wait_exit(plugin.process) == 0
    assert plugin.process.stdout is not None
    assert plugin.process.stdout.read() == b""
    lines = [json.loads(line) for line in plugin.stderr().splitlines() if line]
    assert lines, "the plugin logged nothing"
    for entry in lines:
        assert {"@level", "@message", "@timestamp"} <= set(entry)


def test_services_answer_over_tls_with_the_hosts_p521_client_certificate(
    client: grpc.Channel,
) -> None:
    health = health_pb2_grpc.HealthStub(client)
    for service in ("plugin", ""):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    backend = backend_pb2_grpc.BackendStub(client)
    assert backend.Type(backend_pb2.Empty(), timeout=5).type == 1
    assert not backend.Initialize(backend_pb2.InitializeArgs(), timeout=5).HasField("err")
    version = logical_pb2_grpc.PluginVersionStub(client).Version(logical_pb2.Empty(), timeout=5)
    assert version.plugin_version == "v0.1.0"
    multiplexing = multiplexing_pb2_grpc.PluginMultiplexingStub(client)
    reply = multiplexing.MultiplexingSupport(multiplexing_pb2.MultiplexingSupportRequest())
    assert reply.supported is False


def test_a_client_without_the_hosts_certificate_is_refused(
    plugin: fakehost.Spawned, workdir: Path
) -> None:
    stranger = fakehost.TlsClient(plugin, fakehost.host_identity(), workdir)
    try:
        with pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(stranger.channel).Check(
                health_pb2.HealthCheckRequest(service="plugin"), timeout=3
            )
    finally:
        stranger.close()


def test_setup_dials_the_broker_and_requests_reach_the_hosts_storage(
    plugin: fakehost.Spawned, client: grpc.Channel, identity: tls.Identity, workdir: Path
) -> None:
    broker = fakehost.FakeBroker(plugin, identity, workdir)
    stream = goplugin_pb2_grpc.GRPCBrokerStub(client).StartStream(broker.offers(7))
    try:
        backend = backend_pb2_grpc.BackendStub(client)
        setup = backend.Setup(
            backend_pb2.SetupArgs(broker_id=7, Config={"plugin_name": "langsmith"}), timeout=10
        )
        assert setup.err == ""

        def call(operation: str, path: str, data: str = "") -> backend_pb2.HandleRequestReply:
            request = backend_pb2.Request(operation=operation, path=path, data=data)
            args = backend_pb2.HandleRequestArgs(request=request)
            reply: backend_pb2.HandleRequestReply = backend.HandleRequest(args, timeout=10)
            return reply

        assert not call("update", "kv/a", '{"x": "1"}').HasField("err")
        assert json.loads(broker.storage.entries["kv/a"]) == {"x": "1"}
        assert json.loads(call("read", "kv/a").response.data) == {"x": "1"}
        assert not call("read", "kv/missing").HasField("response")  # -> 404 at the core

        creds = call("read", "creds/x").response
        assert json.loads(creds.data)["default_ttl_s"] == 3600  # SystemView, ns -> timedelta
        assert creds.secret.lease_options.TTL == 60 * 10**9
        assert creds.secret.lease_options.MaxTTL == 300 * 10**9
        assert creds.secret.lease_options.issue_time.seconds > time.time() - 60
        assert json.loads(creds.secret.internal_data)["secret_type"] == "echo_creds"

        bad = call("update", "bad")
        assert (bad.err.err_type, bad.err.err_msg) == (4, "bad input")
        boom = call("read", "boom")
        assert boom.err.err_type == 2 and FAKE_KEY not in boom.err.err_msg
        exists = backend.HandleExistenceCheck(
            backend_pb2.HandleExistenceCheckArgs(
                request=backend_pb2.Request(operation="create", path="kv/a")
            )
        )
        assert (exists.check_found, exists.exists) == (True, True)
        paths = backend.SpecialPaths(backend_pb2.Empty())
        assert list(paths.paths.local_storage) == ["events/"]
        backend.Cleanup(backend_pb2.Empty())
    finally:
        stream.cancel()
        broker.close()
    goplugin_pb2_grpc.GRPCControllerStub(client).Shutdown(goplugin_pb2.Empty())
    assert fakehost.wait_exit(plugin.process) == 0
    stderr = plugin.stderr()
    assert FAKE_KEY not in stderr and "<redacted sha256:" in stderr
    assert not plugin.socket.parent.exists()  # the private directory is gone


def test_setup_without_the_brokers_offer_fails_the_mount_in_about_five_seconds(
    client: grpc.Channel,
) -> None:
    started = time.monotonic()
    reply = backend_pb2_grpc.BackendStub(client).Setup(backend_pb2.SetupArgs(broker_id=9))
    assert reply.err and 4.5 < time.monotonic() - started < 8


def test_sigterm_stops_the_plugin_and_removes_its_directory(plugin: fakehost.Spawned) -> None:
    plugin.process.send_signal(signal.SIGTERM)
    assert fakehost.wait_exit(plugin.process) == 0
    assert not plugin.socket.parent.exists()


def test_the_plugin_exits_when_its_parent_dies(identity: tls.Identity, workdir: Path) -> None:
    launcher = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {plugin_script()!r}],"
        " stdout=subprocess.DEVNULL)\n"
        "print(child.pid, flush=True)\n"
        "child.wait()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", launcher],
        stdout=subprocess.PIPE,
        env=fakehost.host_env(identity),
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    time.sleep(1.0)  # let it serve
    assert fakehost.pid_alive(pid)
    parent.kill()
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while fakehost.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not fakehost.pid_alive(pid)


def test_metadata_mode_serves_plain_h2c_and_an_empty_certificate(workdir: Path) -> None:
    env = fakehost.host_env(None, BAO_PLUGIN_METADATA_MODE="true")
    spawned = fakehost.spawn(env, workdir)
    try:
        assert spawned.line.startswith("1|5|unix|") and spawned.line.endswith("|grpc|")
        with grpc.insecure_channel(f"unix:{spawned.socket}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="plugin"), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        fakehost.kill_quietly(spawned.process)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"VAULT_BACKEND_PLUGIN": "wrong"}, "meant to be run by the server"),
        ({"VAULT_BACKEND_PLUGIN": None, "VAULT_DATABASE_PLUGIN": "x"}, "not a database plugin"),
        ({"VAULT_DATABASE_PLUGIN": "x"}, "not a database plugin"),
        ({"VAULT_BACKEND_PLUGIN": None}, "meant to be run by the server"),
        ({"PLUGIN_PROTOCOL_VERSIONS": "4"}, "only 5 is served"),
        ({"PLUGIN_CLIENT_CERT": None}, "wrapped-token TLS bootstrap is not supported"),
    ],
)
def test_a_host_we_cannot_serve_gets_exit_1_and_one_clear_line(
    change: dict[str, str | None], message: str, identity: tls.Identity, workdir: Path
) -> None:
    env = fakehost.host_env(identity, BAO_PLUGIN_METADATA_MODE="false")
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    spawned = fakehost.spawn(env, workdir, expect_line=False)
    try:
        assert fakehost.wait_exit(spawned.process) == 1
        assert spawned.process.stdout is not None
        assert spawned.process.stdout.read() == b""
        assert message in spawned.stderr()
    finally:
        fakehost.kill_quietly(spawned.process)
    assert os.environ.get("PLUGIN_CLIENT_CERT") is None  # nothing leaked into the test process


def test_many_concurrent_streams_and_large_messages_cross_both_relays(
    plugin: fakehost.Spawned, client: grpc.Channel, identity: tls.Identity, workdir: Path
) -> None:
    broker = fakehost.FakeBroker(plugin, identity, workdir)
    stream = goplugin_pb2_grpc.GRPCBrokerStub(client).StartStream(broker.offers(3))
    backend = backend_pb2_grpc.BackendStub(client)
    try:
        assert backend.Setup(backend_pb2.SetupArgs(broker_id=3), timeout=10).err == ""
        big = "y" * (3 * 1024 * 1024)  # several HTTP/2 windows, both ways, on both hops

        def round_trip(n: int) -> bool:
            data = json.dumps({"n": n, "big": big if n % 8 == 0 else ""})
            request = backend_pb2.Request(operation="update", path=f"kv/{n}", data=data)
            backend.HandleRequest(backend_pb2.HandleRequestArgs(request=request), timeout=30)
            read = backend_pb2.Request(operation="read", path=f"kv/{n}")
            reply = backend.HandleRequest(backend_pb2.HandleRequestArgs(request=read), timeout=30)
            return bool(json.loads(reply.response.data)["n"] == n)

        with ThreadPoolExecutor(max_workers=24) as pool:
            assert all(pool.map(round_trip, range(96)))
        assert len(broker.storage.entries) == 96
    finally:
        stream.cancel()
        broker.close()
