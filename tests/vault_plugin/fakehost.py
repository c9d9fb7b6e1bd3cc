"""A fake go-plugin host for the transport tests: the environment the host gives its plugin
(cookie, protocol, a P-521 AutoMTLS certificate shaped like go-plugin's), the plugin process
started the way the host starts it, a client that dials it over TLS with that certificate, and
the brokered Storage/SystemView the host would serve back."""

from __future__ import annotations

import base64
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.bao_plugin import plugin_script
from vault_plugin import tls
from vault_plugin.broker import CHANNEL_OPTIONS
from vault_plugin.wire import backend_pb2, backend_pb2_grpc, goplugin_pb2

COOKIE = {"VAULT_BACKEND_PLUGIN": "6669da05-b1c8-4f49-97d9-c8e5bed98e20"}
LINE_TIMEOUT_S = 10.0


def host_identity() -> tls.Identity:
    """What go-plugin's ``mtls.go`` makes: a self-signed P-521 CA for localhost."""
    return tls.make_identity(ec.SECP521R1(), organization="HashiCorp")


def host_env(identity: tls.Identity | None, **extra: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        **COOKIE,
        "PLUGIN_PROTOCOL_VERSIONS": "5",
        "PLUGIN_MIN_PORT": "10000",
        "PLUGIN_MAX_PORT": "25000",
        "BAO_VERSION": "2.7.2",
        "VAULT_VERSION": "2.7.2",
    }
    if identity is not None:
        env |= {
            "PLUGIN_CLIENT_CERT": identity.cert_pem.decode(),
            "BAO_PLUGIN_AUTOMTLS_ENABLED": "true",
            "VAULT_PLUGIN_AUTOMTLS_ENABLED": "true",
            "BAO_PLUGIN_METADATA_MODE": "false",
            "VAULT_PLUGIN_METADATA_MODE": "false",
        }
    return env | extra


@dataclass
class Spawned:
    process: subprocess.Popen[bytes]
    line: str
    handshake_s: float
    stderr_path: Path

    @property
    def fields(self) -> list[str]:
        return self.line.split("|")

    @property
    def socket(self) -> Path:
        return Path(self.fields[3])

    def cert(self) -> x509.Certificate:
        raw = self.fields[5]
        return x509.load_der_x509_certificate(base64.b64decode(raw + "=" * (-len(raw) % 4)))

    def cert_pem(self) -> bytes:
        return self.cert().public_bytes(serialization.Encoding.PEM)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def spawn(env: dict[str, str], workdir: Path, *, expect_line: bool = True) -> Spawned:
    """Start the plugin as the host does and read its handshake line (spawn -> line timed)."""
    stderr_path = workdir / f"plugin-{time.monotonic_ns()}.stderr"
    started = time.monotonic()
    with stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", plugin_script()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
    assert process.stdout is not None
    line = b""
    if expect_line:
        ready, _, _ = select.select([process.stdout], [], [], LINE_TIMEOUT_S)
        assert ready, f"no handshake line in {LINE_TIMEOUT_S}s: {stderr_path.read_text()}"
        line = process.stdout.readline()
    return Spawned(process, line.decode().rstrip("\n"), time.monotonic() - started, stderr_path)


def short_dir() -> Path:
    """A 0700 directory with a short path (unix socket paths are limited to 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="fh-", dir="/tmp"))


class TlsClient:
    """A grpcio channel that reaches the plugin's TLS socket through a Python-ssl relay,
    presenting ``identity`` (the host's P-521 certificate) as the client certificate."""

    def __init__(self, spawned: Spawned, identity: tls.Identity, workdir: Path) -> None:
        self.relay = tls.Relay()
        listen = workdir / f"c{time.monotonic_ns() % 10**6}.sock"
        context = tls.client_context(identity, spawned.cert_pem(), workdir)
        self.relay.originate(listen, context, str(spawned.socket))
        self.channel = grpc.insecure_channel(f"unix:{listen}", options=CHANNEL_OPTIONS)

    def close(self) -> None:
        self.channel.close()
        self.relay.stop()


@dataclass
class FakeStorage(backend_pb2_grpc.StorageServicer):
    entries: dict[str, bytes] = field(default_factory=dict)

    def Get(
        self, request: backend_pb2.StorageGetArgs, context: object
    ) -> backend_pb2.StorageGetReply:
        if request.key not in self.entries:
            return backend_pb2.StorageGetReply()
        entry = backend_pb2.StorageEntry(key=request.key, value=self.entries[request.key])
        return backend_pb2.StorageGetReply(entry=entry)

    def Put(
        self, request: backend_pb2.StoragePutArgs, context: object
    ) -> backend_pb2.StoragePutReply:
        self.entries[request.entry.key] = request.entry.value
        return backend_pb2.StoragePutReply()

    def Delete(
        self, request: backend_pb2.StorageDeleteArgs, context: object
    ) -> backend_pb2.StorageDeleteReply:
        self.entries.pop(request.key, None)
        return backend_pb2.StorageDeleteReply()

    def List(
        self, request: backend_pb2.StorageListArgs, context: object
    ) -> backend_pb2.StorageListReply:
        keys = sorted(
            k[len(request.prefix) :] for k in self.entries if k.startswith(request.prefix)
        )
        return backend_pb2.StorageListReply(keys=keys)


class FakeSystemView(backend_pb2_grpc.SystemViewServicer):
    def DefaultLeaseTTL(self, request: backend_pb2.Empty, context: object) -> backend_pb2.TTLReply:
        return backend_pb2.TTLReply(TTL=3600 * 10**9)

    def MaxLeaseTTL(self, request: backend_pb2.Empty, context: object) -> backend_pb2.TTLReply:
        return backend_pb2.TTLReply(TTL=7200 * 10**9)


class FakeBroker:
    """The host's brokered Storage/SystemView behind TLS (its P-521 certificate, requiring the
    plugin's certificate), offered on the plugin's StartStream stream as ``service_id``."""

    def __init__(self, spawned: Spawned, identity: tls.Identity, workdir: Path) -> None:
        self.storage = FakeStorage()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        backend_pb2_grpc.add_StorageServicer_to_server(self.storage, self.server)
        backend_pb2_grpc.add_SystemViewServicer_to_server(FakeSystemView(), self.server)
        plain = workdir / "host-plain.sock"
        self.server.add_insecure_port(f"unix:{plain}")
        self.server.start()
        self.address = workdir / "host-broker.sock"
        self.relay = tls.Relay()
        context = tls.server_context(identity, spawned.cert_pem(), workdir)
        self.relay.terminate(self.address, context, plain)
        self._done = threading.Event()

    def offers(self, service_id: int) -> Iterator[goplugin_pb2.ConnInfo]:
        yield goplugin_pb2.ConnInfo(
            service_id=service_id, network="unix", address=str(self.address)
        )
        self._done.wait()

    def close(self) -> None:
        self._done.set()
        self.server.stop(0)
        self.relay.stop()


def wait_exit(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    return process.wait(timeout=timeout)


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def kill_quietly(process: subprocess.Popen[bytes]) -> None:
    """Stop the plugin as a host would (SIGTERM: it cleans up), killing it only if stuck."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()
