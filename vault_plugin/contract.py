"""What the plugin's transport (``vault_plugin.serve``: go-plugin, gRPC, TLS) and the
engine's router (``vault_plugin.router``) hand each other: plain Python, no protobuf.

The transport turns a ``pb.Request`` into a ``PluginRequest`` and a ``PluginResponse`` back
into a ``pb.Response`` (JSON text for ``data`` and ``internal_data``, durations as Go
nanoseconds, ``issue_time`` set); the router decides everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from bridge.secrets_engine.storage import EngineStorage

# ProtoError.err_type values (openbao sdk/plugin/pb/translation.go)
ERR_USER = 1
ERR_INTERNAL = 2
ERR_BAD_REQUEST = 4
ERR_UNSUPPORTED_OPERATION = 5
ERR_UNSUPPORTED_PATH = 6
ERR_PERMISSION_DENIED = 8


@dataclass(frozen=True)
class LeasedSecret:
    """A secret a request carries (renew, revoke) or a response hands out."""

    internal: dict[str, object]
    ttl: timedelta = timedelta(0)
    max_ttl: timedelta = timedelta(0)
    renewable: bool = True
    increment: timedelta = timedelta(0)  # a renew's requested increment
    lease_id: str = ""


@dataclass(frozen=True)
class PluginRequest:
    operation: str  # read, create, update, delete, list, renew, revoke, rollback, help, ...
    path: str  # relative to the mount: "config", "roles/ci", "creds/ci", ""
    data: dict[str, object] = field(default_factory=dict)
    secret: LeasedSecret | None = None
    display_name: str = ""
    mount_point: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class PluginError:
    err_type: int
    message: str


@dataclass(frozen=True)
class PluginResponse:
    data: dict[str, object] | None = None
    secret: LeasedSecret | None = None
    warnings: tuple[str, ...] = ()
    error: PluginError | None = None

    @classmethod
    def failure(cls, err_type: int, message: str) -> PluginResponse:
        return cls(error=PluginError(err_type, message))


@dataclass(frozen=True)
class SpecialPaths:
    root: tuple[str, ...] = ()
    unauthenticated: tuple[str, ...] = ()
    local_storage: tuple[str, ...] = ()
    seal_wrap_storage: tuple[str, ...] = ()


class Host(Protocol):
    """What the host offers the router over the brokered connection."""

    @property
    def storage(self) -> EngineStorage: ...

    def default_lease_ttl(self) -> timedelta: ...

    def max_lease_ttl(self) -> timedelta: ...


class Router(Protocol):
    """The backend's behaviour; one per mount (process)."""

    def handle(self, request: PluginRequest) -> PluginResponse: ...

    def special_paths(self) -> SpecialPaths: ...

    def existence(self, operation: str, path: str) -> tuple[bool, bool]:
        """``(check_found, exists)`` for a create/update (see the wire README)."""
        ...

    def cleanup(self) -> None: ...

    def invalidate(self, key: str) -> None: ...


RouterFactory = Callable[[Host, str, Mapping[str, str]], Router]
"""``make(host, backend_uuid, setup_config) -> Router``: what ``serve`` is given."""


__all__ = [
    "ERR_BAD_REQUEST",
    "ERR_INTERNAL",
    "ERR_PERMISSION_DENIED",
    "ERR_UNSUPPORTED_OPERATION",
    "ERR_UNSUPPORTED_PATH",
    "ERR_USER",
    "Host",
    "LeasedSecret",
    "PluginError",
    "PluginRequest",
    "PluginResponse",
    "Router",
    "RouterFactory",
    "SpecialPaths",
]
