"""The emulator's request and response values, and the errors routes raise.

Error bodies follow what the real API sends (FastAPI): ``{"detail": "..."}`` for most
failures, ``{"detail": [{"loc", "msg", "type"}]}`` for 422, and the
``org_scoped_key_requires_workspace`` marker the official SDKs look for on 403.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    """One HTTP request, as the routes see it.

    Attributes:
        method: Upper-case HTTP method.
        route: The path without the ``/api/v1`` prefix or a trailing slash, e.g. ``/info``.
        query: Query parameters, each with all its values in order.
        headers: Header values keyed by lower-case name.
        body: The raw request body (empty if none was sent).
        client_ip: The peer's address.
    """

    method: str
    route: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        """A header's value by case-insensitive name, ``None`` if absent or blank."""
        value = self.headers.get(name.lower())
        return value.strip() if value and value.strip() else None


@dataclass(frozen=True)
class Response:
    """A JSON response: status, body and extra headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """Raised by a route to answer with an error response.

    Args:
        status: The HTTP status.
        body: The JSON body.
        headers: Extra response headers.
    """

    def __init__(
        self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"HTTP {status}")
        self.response = Response(status, body, dict(headers or {}))


def detail(status: int, message: str, **extra: Any) -> ApiError:
    """An error whose body is ``{"detail": message, **extra}``."""
    return ApiError(status, {"detail": message, **extra})


def invalid_token() -> ApiError:
    """401 for a missing, unknown, deleted or expired key."""
    return detail(401, "Invalid token")


def validation_error(*errors: tuple[Sequence[str | int], str, str]) -> ApiError:
    """422 in FastAPI's shape, from ``(loc, msg, type)`` triples."""
    items = [{"loc": list(loc), "msg": msg, "type": kind} for loc, msg, kind in errors]
    return ApiError(422, {"detail": items})


def too_many_requests(retry_after: int) -> Response:
    """429 with ``Retry-After`` in seconds."""
    return Response(429, {"detail": "Too many requests"}, {"Retry-After": str(retry_after)})
