"""Turning a failed LangSmith response into the ``bridge.errors`` class it stands for.

Messages carry the operation and status (via ``LangSmithError``) plus a short excerpt of
the body. The excerpt is whitespace-collapsed, passed through ``bridge.secrets.redact``
and then cut, so a key echoed by a server cannot reach a message or a log line.

The classes beyond ``bridge.errors`` (409, 425) are in ``bridge.langsmith.errors``, which
also explains when each is retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from bridge.errors import (
    LangSmithAuthError,
    LangSmithError,
    LangSmithNotFound,
    LangSmithPermissionError,
    LangSmithProtocolError,
    LangSmithRateLimited,
    LangSmithServerError,
    LangSmithValidationError,
    WorkspaceRequired,
)
from bridge.langsmith.errors import IDEMPOTENT_METHODS, LangSmithConflict, LangSmithTooEarly
from bridge.langsmith.retry import parse_retry_after
from bridge.secrets import redact

EXCERPT_LIMIT = 200
ORG_SCOPED_KEY_REQUIRES_WORKSPACE = "org_scoped_key_requires_workspace"


def excerpt(text: str, limit: int = EXCERPT_LIMIT, *, scrub: str | None = None) -> str:
    """``text`` collapsed to one line, redacted, and cut to at most ``limit`` characters.

    Args:
        text: Server- or library-supplied text.
        limit: The maximum length of the result.
        scrub: A secret to remove even if it is not key-shaped (the key just sent).
    """
    if scrub:
        text = text.replace(scrub, "<redacted>")
    flat = redact(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_for_response(
    operation: str,
    response: httpx.Response,
    now: float,
    *,
    scrub: str | None = None,
    method: str = "GET",
) -> LangSmithError:
    """The error for a non-2xx ``response`` to ``operation``.

    Args:
        operation: The client method, for the message.
        response: The (fully read) response.
        now: Current POSIX time, to resolve an HTTP-date ``Retry-After``.
        scrub: The key sent with the request, removed from the excerpt if echoed.
        method: The request's HTTP method: a 409 is retryable only for idempotent ones.
    """
    status = response.status_code
    body = _json_or_none(response)
    detail = _summary(body) or response.text
    said = f": {excerpt(detail, scrub=scrub)}" if detail.strip() else ""
    kw: dict[str, Any] = {"operation": operation, "status": status}
    if status == 401:
        return LangSmithAuthError(f"API key rejected{said}", **kw)
    if status == 403:
        if isinstance(body, Mapping) and body.get("error") == ORG_SCOPED_KEY_REQUIRES_WORKSPACE:
            msg = "an organization-scoped key needs a workspace (X-Tenant-Id)"
            return WorkspaceRequired(f"{msg}{said}", **kw)
        return LangSmithPermissionError(f"permission denied{said}", **kw)
    if status == 404:
        return LangSmithNotFound(f"not found{said}", **kw)
    if status == 409:
        retryable = method.upper() in IDEMPOTENT_METHODS
        return LangSmithConflict(f"conflict{said}", retryable=retryable, **kw)
    if status == 422:
        return LangSmithValidationError(f"request rejected{said}", **kw)
    if status == 425:
        return LangSmithTooEarly(f"too early, not processed{said}", **kw)
    if status == 429:
        hint = parse_retry_after(response.headers, now)
        wait = "" if hint is None else f" (retry after {hint:g}s)"
        return LangSmithRateLimited(f"rate limited{wait}{said}", retry_after=hint, **kw)
    if status == 408 or status >= 500:
        return LangSmithServerError(f"server error{said}", **kw)
    if 300 <= status < 400:
        return LangSmithProtocolError(f"unexpected redirect, not followed{said}", **kw)
    return LangSmithError(f"unexpected status{said}", **kw)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _summary(body: Any) -> str:
    """A one-line reading of a JSON error body, or ``""`` if it has no known field.

    FastAPI bodies carry ``detail`` (a string, or for 422 a list of ``{loc, msg}`` items,
    or in the newest docs a list of strings); others carry ``error``/``message``/``title``.
    """
    if not isinstance(body, Mapping):
        return ""
    detail = body.get("detail")
    if isinstance(detail, list):
        return "; ".join(_problem(item) for item in detail)
    parts = [body.get(name) for name in ("error", "title", "message")]
    parts.append(detail)
    return " - ".join(str(part) for part in parts if isinstance(part, str) and part)


def _problem(item: Any) -> str:
    if isinstance(item, Mapping):
        loc = item.get("loc")
        where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
        msg = str(item.get("msg", ""))
        return f"{where}: {msg}" if where else msg
    return str(item)
