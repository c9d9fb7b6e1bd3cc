"""Frozen views of the LangSmith responses the bridge reads.

Parsers are strict about the fields the spec marks required and lenient about the
rest: older and self-hosted servers omit ``role_id``, ``org_role_id`` and
``access_scope``, and unknown extra fields are ignored. A wrong shape raises
``ShapeError`` naming the field path, never its value (a create response holds the key).

The org's key listing is the exception: one malformed entry is skipped (and counted) rather
than failing the whole listing, because a run that cannot list keys acts on no policy at
all, while a key it cannot read is one it merely cannot reason about.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload

from bridge.secrets import Secret, redact

# What may be shown of a malformed entry's id: the shape of an id, nothing longer.
_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SHORT_KEY_LIMIT = 40


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
class KeyListing(Sequence[ApiKey]):
    """The org's service keys as listed at one instant, by LangSmith's own clock.

    A ``Sequence[ApiKey]``: iterate, index and ``len()`` it as the list it replaces.

    Attributes:
        keys: The keys that parsed.
        served_at: The response's ``Date`` header (aware UTC), i.e. when LangSmith
            produced the listing by its clock; ``None`` when absent or unreadable. A key
            created after this instant may be missing from the listing without being gone.
        skipped: How many malformed entries were left out (each logged as a warning).
    """

    keys: tuple[ApiKey, ...] = ()
    served_at: datetime | None = None
    skipped: int = 0

    @overload
    def __getitem__(self, index: int) -> ApiKey: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[ApiKey, ...]: ...

    def __getitem__(self, index: int | slice) -> ApiKey | tuple[ApiKey, ...]:
        return self.keys[index]

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(self.keys)


@dataclass(frozen=True)
class Skipped:
    """A listing entry that did not parse: where it was and what was wrong, no values.

    Attributes:
        index: Its position in the response array.
        reason: The ``ShapeError`` message (a field path and the expected type).
        key_id: Its ``id`` when that is a plausible id string and not key-shaped.
        short_key: Its ``short_key`` when that is a string, redacted and cut to 40
            characters: not secret by contract, but a broken server could put anything
            there.
    """

    index: int
    reason: str
    key_id: str | None = None
    short_key: str | None = None


@dataclass(frozen=True)
class OrgInfo:
    """The parts of ``OrganizationInfo`` (``GET /orgs/current/info``) the bridge reads.

    Each cap is the longest lifetime, in days, the organisation allows for that kind of
    key; ``None`` means no cap (or a server too old to report one).
    """

    id: str | None = None
    display_name: str | None = None
    max_service_key_expiry_days: int | None = None
    max_pat_expiry_days: int | None = None
    max_api_key_expiry_days: int | None = None


@dataclass(frozen=True)
class Role:
    """One role of ``GET /orgs/current/roles``.

    ``access_scope`` is ``"organization"`` for org roles (a key's ``org_role_id``) and
    ``"workspace"`` for workspace roles (its ``role_id``); ``None`` if the server omits it.
    """

    id: str
    display_name: str | None = None
    access_scope: str | None = None
    name: str | None = None


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


def _opt_int(obj: Mapping[str, Any], name: str, where: str) -> int | None:
    value = obj.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ShapeError(f"{where}{name}: expected an integer or null")
    return value


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


def parse_api_keys_leniently(value: object) -> tuple[list[ApiKey], list[Skipped]]:
    """Parse an ``APIKeyGetResponse[]`` body, setting aside entries that do not parse.

    Raises:
        ShapeError: The body itself is not an array.
    """
    keys: list[ApiKey] = []
    skipped: list[Skipped] = []
    for i, item in enumerate(_list(value, "")):
        try:
            keys.append(parse_api_key(item, f"[{i}]."))
        except ShapeError as exc:
            skipped.append(_skipped(i, item, str(exc)))
    return keys, skipped


def _skipped(index: int, item: object, reason: str) -> Skipped:
    """What can be said of a bad entry without repeating anything secret-looking."""
    if not isinstance(item, Mapping):
        return Skipped(index, reason)
    key_id = item.get("id")
    if (
        not isinstance(key_id, str)
        or not _PLAUSIBLE_ID.fullmatch(key_id)
        or redact(key_id) != key_id
    ):
        key_id = None
    short_key = item.get("short_key")
    short_key = redact(short_key)[:_SHORT_KEY_LIMIT] if isinstance(short_key, str) else None
    return Skipped(index, reason, key_id=key_id, short_key=short_key)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date (RFC 7231 section 7.1.1.1) as an aware UTC datetime, else ``None``.

    Accepts the IMF-fixdate form servers send (``Sun, 06 Nov 1994 08:49:37 GMT``) and
    the two obsolete forms recipients must still read (RFC 850 and asctime). A date
    without a zone is taken as GMT, as HTTP-dates always are.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    from email.utils import parsedate_to_datetime  # rare enough to load on first use

    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_org_info(value: object) -> OrgInfo:
    """Parse an ``OrganizationInfo`` body; absent caps read as ``None`` (no cap)."""
    obj = _object(value, "")
    return OrgInfo(
        id=_opt_str(obj, "id", ""),
        display_name=_opt_str(obj, "display_name", ""),
        max_service_key_expiry_days=_opt_int(obj, "max_service_key_expiry_days", ""),
        max_pat_expiry_days=_opt_int(obj, "max_pat_expiry_days", ""),
        max_api_key_expiry_days=_opt_int(obj, "max_api_key_expiry_days", ""),
    )


def parse_roles(value: object) -> list[Role]:
    """Parse the ``GET /orgs/current/roles`` array; each role needs a string ``id``."""
    roles = []
    for i, item in enumerate(_list(value, "")):
        where = f"[{i}]."
        obj = _object(item, where.rstrip("."))
        roles.append(
            Role(
                id=_str(obj, "id", where),
                display_name=_opt_str(obj, "display_name", where),
                access_scope=_opt_str(obj, "access_scope", where),
                name=_opt_str(obj, "name", where),
            )
        )
    return roles


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
