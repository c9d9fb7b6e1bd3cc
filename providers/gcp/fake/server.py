"""The fake served over gRPC on a loopback port, for the real ``SecretManagerServiceClient``.

The client library ships no servicer base, so the methods are registered with a generic
handler under the service's own name, (de)serialised by the library's proto-plus types.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures
from types import TracebackType
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
from google.cloud.secretmanager_v1.types import service

from providers.gcp.fake.faults import Faults
from providers.gcp.fake.rules import FakeStatus
from providers.gcp.fake.store import SecretStore

SERVICE_NAME = "google.cloud.secretmanager.v1.SecretManagerService"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _resource(request: Any) -> str:
    """The resource a request names, for IAM denials scoped by prefix."""
    for attribute in ("name", "parent"):
        value = getattr(request, attribute, "")
        if value:
            return str(value)
    secret = getattr(request, "secret", None)
    return str(getattr(secret, "name", "") or "")


def _serialize(message: Any) -> bytes:
    data: bytes = type(message).serialize(message)
    return data


def _no_bytes(_message: object) -> bytes:
    return b""


class FakeSecretManager:
    """A Secret Manager on ``127.0.0.1:port`` (port 0 picks a free one).

    Use as a context manager, or ``start``/``stop``. ``store`` holds the state and
    ``faults`` the switches; ``target`` is what ``grpc.insecure_channel`` takes.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, max_workers: int = 8) -> None:
        if host not in LOOPBACK:
            raise ValueError(f"the fake Secret Manager listens on loopback only, not {host!r}")
        self.store = SecretStore()
        self.faults = Faults()
        self._host = host
        self._requested_port = port
        self._max_workers = max_workers
        self._server: Any = None
        self.port = 0

    @property
    def target(self) -> str:
        return f"{self._host}:{self.port}"

    def start(self) -> FakeSecretManager:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers))
        server.add_generic_rpc_handlers((self._handler(),))
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.port = int(server.add_insecure_port(f"{host}:{self._requested_port}"))
        if self.port == 0:
            raise OSError(f"cannot listen on {self._host}:{self._requested_port}")
        server.start()
        self._server = server
        return self

    def stop(self, grace: float | None = None) -> None:
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def wait(self) -> None:
        """Block until the server stops (the standalone entry point)."""
        if self._server is not None:
            self._server.wait_for_termination()

    def __enter__(self) -> FakeSecretManager:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- wiring -----------------------------------------------------------------------

    def _handler(self) -> Any:
        s = self.store
        empty = object()  # marks google.protobuf.Empty, which serialises to no bytes

        def delete(request: service.DeleteSecretRequest) -> object:
            s.delete_secret(request)
            return empty

        table: dict[str, tuple[Any, Any, Callable[[Any], Any]]] = {
            "CreateSecret": (service.CreateSecretRequest, None, s.create_secret),
            "GetSecret": (service.GetSecretRequest, None, s.get_secret),
            "UpdateSecret": (service.UpdateSecretRequest, None, s.update_secret),
            "DeleteSecret": (service.DeleteSecretRequest, empty, delete),
            "ListSecrets": (service.ListSecretsRequest, None, s.list_secrets),
            "AddSecretVersion": (service.AddSecretVersionRequest, None, s.add_secret_version),
            "GetSecretVersion": (service.GetSecretVersionRequest, None, s.get_secret_version),
            "AccessSecretVersion": (
                service.AccessSecretVersionRequest,
                None,
                s.access_secret_version,
            ),
            "ListSecretVersions": (service.ListSecretVersionsRequest, None, s.list_secret_versions),
            "EnableSecretVersion": (
                service.EnableSecretVersionRequest,
                None,
                s.enable_secret_version,
            ),
            "DisableSecretVersion": (
                service.DisableSecretVersionRequest,
                None,
                s.disable_secret_version,
            ),
            "DestroySecretVersion": (
                service.DestroySecretVersionRequest,
                None,
                s.destroy_secret_version,
            ),
        }
        handlers = {
            method: grpc.unary_unary_rpc_method_handler(
                self._wrap(method, call),
                request_deserializer=request_type.deserialize,
                response_serializer=(_no_bytes if response_type is empty else _serialize),
            )
            for method, (request_type, response_type, call) in table.items()
        }
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    def _wrap(self, method: str, call: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
        def handle(request: Any, context: Any) -> Any:
            delay, fault = self.faults.before(method, _resource(request))
            if delay:
                time.sleep(delay)
            if fault is not None:
                context.abort(getattr(grpc.StatusCode, fault.code), fault.message)
            try:
                return call(request)
            except FakeStatus as exc:
                context.abort(getattr(grpc.StatusCode, exc.code), exc.message)

        return handle
