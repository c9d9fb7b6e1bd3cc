"""Frozen views of the LangSmith responses the bridge reads.

Parsers are strict about the fields the spec marks required and lenient about the
rest: older and self-hosted servers omit ``role_id``, ``org_role_id`` and
``access_scope``, and unknown extra fields are ignored. A wrong shape raises
``ShapeError`` naming the field path, never its value (a create response holds the key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.secrets import Secret


class ShapeError(ValueError):
    """A response body does not have the documented shape; the message names the field."""


@dataclass(frozen=True)
class ApiKey:
    """One API key as listed by LangSmith (``APIKeyGetResponse``); never the secret itself.

    Datetimes are timezone-aware (a server value without an offset is taken as UTC).
    Optional fields are ``None`` when the server leaves them out.
    """

    id: str
    short_key: str
    description: str
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    workspace_names: tuple[str, ...] | None = None
    access_scope: str | None = None
    role_id: str | None = None
    org_role_id: str | None = None


@dataclass(frozen=True)
class CreatedKey:
    """A freshly created key: its listing plus the secret, shown by LangSmith only once.

    ``key`` is a ``Secret``, so ``repr()`` shows only its fingerprint.
    """

    info: ApiKey
    key: Secret


@dataclass(frozen=True)
class Workspace:
    """A workspace (``TenantForUser``) visible to the calling key."""

    id: str
    display_name: str
    is_deleted: bool = False


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ShapeError(f"{where or 'body'}: expected an object")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ShapeError(f"{where or 'body'}: expected an array")
    return value


def _str(obj: Mapping[str, Any], name: str, where: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ShapeError(f"{where}{name}: expected a string")
    return value


def _opt_str(obj: Mapping[str, Any], name: str, where: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise ShapeError(f"{where}{name}: expected a string or null")
    return value


def _opt_datetime(obj: Mapping[str, Any], name: str, where: str) -> datetime | None:
    text = _opt_str(obj, name, where)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ShapeError(f"{where}{name}: expected an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _opt_names(obj: Mapping[str, Any], name: str, where: str) -> tuple[str, ...] | None:
    value = obj.get(name)
    if value is None:
        return None
    items = _list(value, f"{where}{name}")
    if not all(isinstance(item, str) for item in items):
        raise ShapeError(f"{where}{name}: expected an array of strings")
    return tuple(items)


def parse_api_key(value: object, where: str = "") -> ApiKey:
    """Parse one ``APIKeyGetResponse`` (also the non-secret part of a create response).

    Args:
        value: The decoded JSON value.
        where: A path prefix for error messages, e.g. ``"[3]."``.

    Raises:
        ShapeError: A required field is missing or a field has the wrong type.
    """
    obj = _object(value, where.rstrip("."))
    return ApiKey(
        id=_str(obj, "id", where),
        short_key=_str(obj, "short_key", where),
        description=_str(obj, "description", where),
        created_at=_opt_datetime(obj, "created_at", where),
        last_used_at=_opt_datetime(obj, "last_used_at", where),
        expires_at=_opt_datetime(obj, "expires_at", where),
        workspace_names=_opt_names(obj, "workspace_names", where),
        access_scope=_opt_str(obj, "access_scope", where),
        role_id=_opt_str(obj, "role_id", where),
        org_role_id=_opt_str(obj, "org_role_id", where),
    )


def parse_api_keys(value: object) -> list[ApiKey]:
    """Parse an ``APIKeyGetResponse[]`` list body."""
    return [parse_api_key(item, f"[{i}].") for i, item in enumerate(_list(value, ""))]


def parse_created_key(value: object) -> CreatedKey:
    """Parse an ``APIKeyCreateResponse``; the ``key`` field becomes a ``Secret``."""
    obj = _object(value, "")
    key = obj.get("key")
    if not isinstance(key, str) or not key:
        raise ShapeError("key: expected a non-empty string")
    return CreatedKey(info=parse_api_key(obj), key=Secret(key))


def parse_workspace(value: object, where: str = "") -> Workspace:
    """Parse one ``TenantForUser``; a missing ``is_deleted`` reads as ``False``."""
    obj = _object(value, where.rstrip("."))
    is_deleted = obj.get("is_deleted", False)
    if not isinstance(is_deleted, bool):
        raise ShapeError(f"{where}is_deleted: expected a boolean")
    return Workspace(
        id=_str(obj, "id", where),
        display_name=_str(obj, "display_name", where),
        is_deleted=is_deleted,
    )


def parse_workspaces(value: object) -> list[Workspace]:
    """Parse a ``TenantForUser[]`` list body."""
    return [parse_workspace(item, f"[{i}].") for i, item in enumerate(_list(value, ""))]
