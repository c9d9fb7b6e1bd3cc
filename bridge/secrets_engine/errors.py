"""The engine's refusals, each with the HTTP status Vault answers with (a ``ProtoError``
type on the wire: 400 bad request, 404 unsupported path)."""

from __future__ import annotations

from bridge.errors import BridgeError


class EngineError(BridgeError):
    """A request the engine cannot serve; ``status`` is what the caller sees."""

    status = 500


class BadRequest(EngineError):
    status = 400


class NotFound(EngineError):
    status = 404


__all__ = ["BadRequest", "EngineError", "NotFound"]
