"""The host's side of the go-plugin broker: the ``ConnInfo`` offers the host streams to us,
and the ``contract.Host`` built on the brokered connection (``pb.Storage``, ``pb.SystemView``).

In ``Setup`` the host has already offered, on ``plugin.GRPCBroker/StartStream``, a unix socket
whose ``service_id`` is ``SetupArgs.broker_id``; we dial it (over a TLS relay when AutoMTLS is
on, see ``tls.py``) and speak gRPC to it with a plain grpcio channel.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import grpc

from bridge.secrets_engine.storage import EngineStorage
from vault_plugin.wire import backend_pb2, backend_pb2_grpc, goplugin_pb2

CALL_TIMEOUT_S = 30.0
OFFER_WAIT_S = 5.0  # go-plugin's own wait for a brokered service
MAX_MESSAGE = 2**31 - 1  # the host uses MaxInt32 both ways
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.default_authority", "localhost"),
]


class HostError(RuntimeError):
    """The host answered a storage or system-view call with an error."""


class Offers:
    """The ``ConnInfo`` messages the host has sent, by ``service_id``."""

    def __init__(self) -> None:
        self._offers: dict[int, goplugin_pb2.ConnInfo] = {}
        self._changed = threading.Condition()

    def add(self, info: goplugin_pb2.ConnInfo) -> None:
        with self._changed:
            self._offers[info.service_id] = info
            self._changed.notify_all()

    def wait(self, service_id: int, timeout: float = OFFER_WAIT_S) -> goplugin_pb2.ConnInfo:
        """The offer for ``service_id``; ``TimeoutError`` if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while service_id not in self._offers:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the host offered no broker service {service_id}")
                self._changed.wait(left)
            return self._offers[service_id]


Dialer = Callable[[goplugin_pb2.ConnInfo], Path]
"""Turns an offer into a plaintext unix socket that reaches it (a TLS relay, or its own path)."""


def nanoseconds(value: timedelta) -> int:
    """A ``timedelta`` as a Go ``time.Duration`` (int64 ns)."""
    return (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1000


def duration(ns: int) -> timedelta:
    """A Go ``time.Duration`` (int64 ns) as a ``timedelta`` (microsecond precision)."""
    return timedelta(microseconds=ns // 1000)


class BrokeredStorage:
    """``EngineStorage`` on the host's ``pb.Storage``."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = backend_pb2_grpc.StorageStub(channel)

    def get(self, key: str) -> bytes | None:
        reply = self._stub.Get(backend_pb2.StorageGetArgs(key=key), timeout=CALL_TIMEOUT_S)
        _check("get", reply.err)
        return bytes(reply.entry.value) if reply.HasField("entry") else None

    def put(self, key: str, value: bytes) -> None:
        entry = backend_pb2.StorageEntry(key=key, value=value)
        reply = self._stub.Put(backend_pb2.StoragePutArgs(entry=entry), timeout=CALL_TIMEOUT_S)
        _check("put", reply.err)

    def delete(self, key: str) -> None:
        reply = self._stub.Delete(backend_pb2.StorageDeleteArgs(key=key), timeout=CALL_TIMEOUT_S)
        _check("delete", reply.err)

    def list(self, prefix: str) -> list[str]:
        reply = self._stub.List(backend_pb2.StorageListArgs(prefix=prefix), timeout=CALL_TIMEOUT_S)
        _check("list", reply.err)
        return sorted(reply.keys)


def _check(operation: str, err: str) -> None:
    if err:
        raise HostError(f"host storage {operation} failed: {err}")


class BrokeredHost:
    """``contract.Host``: storage and lease defaults, over one brokered connection."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel
        self._storage = BrokeredStorage(channel)
        self._system = backend_pb2_grpc.SystemViewStub(channel)

    @property
    def storage(self) -> EngineStorage:
        return self._storage

    def default_lease_ttl(self) -> timedelta:
        reply = self._system.DefaultLeaseTTL(backend_pb2.Empty(), timeout=CALL_TIMEOUT_S)
        return duration(reply.TTL)

    def max_lease_ttl(self) -> timedelta:
        reply = self._system.MaxLeaseTTL(backend_pb2.Empty(), timeout=CALL_TIMEOUT_S)
        return duration(reply.TTL)

    def close(self) -> None:
        self._channel.close()


def connect(offers: Offers, broker_id: int, dial: Dialer) -> BrokeredHost:
    """Wait for the host's offer ``broker_id``, dial it and return the ``Host`` on it."""
    info = offers.wait(broker_id)
    if info.network != "unix":
        raise HostError(f"broker offer {broker_id} is on {info.network!r}, not unix")
    socket_path = dial(info)
    channel = grpc.insecure_channel(f"unix:{socket_path}", options=CHANNEL_OPTIONS)
    return BrokeredHost(channel)


__all__ = [
    "BrokeredHost",
    "BrokeredStorage",
    "Dialer",
    "HostError",
    "Offers",
    "connect",
    "duration",
    "nanoseconds",
]
