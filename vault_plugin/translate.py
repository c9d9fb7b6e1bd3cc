"""``pb.Request`` -> ``PluginRequest`` and ``PluginResponse`` -> ``pb.Response``/``ProtoError``.

Wire facts (``wire/README.md``): ``data`` and ``internal_data`` are JSON object text, which the
host parses unconditionally, so nil is ``null`` (never the empty string: "unexpected end of JSON
input"); durations are Go nanoseconds; every returned secret carries ``issue_time`` (now), or
the core answers 500 "invalid nil Timestamp".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from vault_plugin.broker import duration, nanoseconds
from vault_plugin.contract import (
    LeasedSecret,
    PluginRequest,
    PluginResponse,
    SpecialPaths,
)
from vault_plugin.wire import backend_pb2


class TranslationError(ValueError):
    """The host sent something that is not what the wire promises (e.g. data not an object)."""


def _object(text: str, what: str) -> dict[str, object]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise TranslationError(f"{what} is not JSON") from exc
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TranslationError(f"{what} is not a JSON object")
    return value


def secret_from_wire(secret: backend_pb2.Secret) -> LeasedSecret:
    options = secret.lease_options
    return LeasedSecret(
        internal=_object(secret.internal_data, "secret internal_data"),
        ttl=duration(options.TTL),
        max_ttl=duration(options.MaxTTL),
        renewable=options.renewable,
        increment=duration(options.increment),
        lease_id=secret.lease_id,
    )


def request_from_wire(request: backend_pb2.Request) -> PluginRequest:
    """The router's view of a host request."""
    return PluginRequest(
        operation=request.operation,
        path=request.path,
        data=_object(request.data, "request data"),
        secret=secret_from_wire(request.secret) if request.HasField("secret") else None,
        display_name=request.display_name,
        mount_point=request.mount_point,
        request_id=request.id,
    )


def _timestamp(now: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(now)
    return stamp


def secret_to_wire(secret: LeasedSecret, now: datetime | None = None) -> backend_pb2.Secret:
    options = backend_pb2.LeaseOptions(
        TTL=nanoseconds(secret.ttl),
        MaxTTL=nanoseconds(secret.max_ttl),
        renewable=secret.renewable,
        increment=nanoseconds(secret.increment),
        issue_time=_timestamp(now or datetime.now(UTC)),
    )
    return backend_pb2.Secret(
        lease_options=options,
        internal_data=json.dumps(secret.internal, separators=(",", ":")),
        lease_id=secret.lease_id,
    )


def reply_to_wire(
    response: PluginResponse, now: datetime | None = None
) -> backend_pb2.HandleRequestReply:
    """The host's reply. A response with nothing in it is left unset, so a read becomes 404."""
    reply = backend_pb2.HandleRequestReply()
    if response.error is not None:
        reply.err.CopyFrom(
            backend_pb2.ProtoError(err_type=response.error.err_type, err_msg=response.error.message)
        )
    if response.data is None and response.secret is None and not response.warnings:
        return reply
    wire = backend_pb2.Response(
        # The host unmarshals this unconditionally: "" fails ("unexpected end of JSON input");
        # Go's own side sends json.Marshal(nil) = "null".
        data=json.dumps(response.data, separators=(",", ":")),
        warnings=list(response.warnings),
    )
    if response.secret is not None:
        wire.secret.CopyFrom(secret_to_wire(response.secret, now))
    reply.response.CopyFrom(wire)
    return reply


def error_reply(err_type: int, message: str) -> backend_pb2.HandleRequestReply:
    return reply_to_wire(PluginResponse.failure(err_type, message))


def paths_to_wire(paths: SpecialPaths) -> backend_pb2.SpecialPathsReply:
    return backend_pb2.SpecialPathsReply(
        paths=backend_pb2.Paths(
            root=list(paths.root),
            unauthenticated=list(paths.unauthenticated),
            local_storage=list(paths.local_storage),
            seal_wrap_storage=list(paths.seal_wrap_storage),
        )
    )


__all__ = [
    "TranslationError",
    "error_reply",
    "paths_to_wire",
    "reply_to_wire",
    "request_from_wire",
    "secret_from_wire",
    "secret_to_wire",
]
