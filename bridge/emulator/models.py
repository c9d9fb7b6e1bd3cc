"""Request bodies and parameters, validated with pydantic the way FastAPI does it.

The models mirror ``APIKeyCreateRequest`` and ``APIKeyUpdateRequest`` of the spec.
Unknown fields are ignored and failures become FastAPI-style 422 bodies whose ``loc``
starts with ``body``, ``query`` or ``path``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bridge.emulator.responses import ApiError, validation_error

M = TypeVar("M", bound=BaseModel)
_UUID = TypeAdapter(UUID)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class APIKeyCreateRequest(_Lenient):
    """Body of ``POST /orgs/current/service-keys`` and ``POST /api-key``."""

    description: str = "Default API key"
    read_only: bool = False
    expires_at: datetime | None = None
    workspaces: list[UUID] | None = None
    role_id: UUID | None = None
    org_role_id: UUID | None = None
    default_workspace_id: UUID | None = None


class APIKeyUpdateRequest(_Lenient):
    """Body of ``PATCH /orgs/current/service-keys/{id}``."""

    role_id: UUID | None = None
    org_role_id: UUID | None = None


class ServiceKeysQuery(_Lenient):
    """Query of ``GET /orgs/current/service-keys``."""

    workspace_ids: list[UUID] = Field(default_factory=list)


class WorkspacesQuery(_Lenient):
    """Query of ``GET /workspaces`` and ``GET /workspaces/{id}`` (accepted, not used)."""

    include_deleted: bool = False
    data_plane_id: UUID | None = None


class SessionsQuery(_Lenient):
    """The ``GET /sessions`` parameters the emulator honours; other filters are ignored."""

    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=100)
    name: str | None = None
    name_contains: str | None = None
    id: list[UUID] | None = None


class SessionCreateRequest(_Lenient):
    """Body of ``POST /sessions`` (the fields the emulator keeps; the rest is ignored)."""

    name: str = Field(min_length=1)
    id: UUID | None = None
    description: str | None = None


class SessionCreateQuery(_Lenient):
    """Query of ``POST /sessions``."""

    upsert: bool = False


def _as_422(exc: ValidationError, where: str) -> ApiError:
    return validation_error(
        *(([where, *error["loc"]], error["msg"], error["type"]) for error in exc.errors())
    )


def parse_body(model: type[M], raw: bytes, *, default: dict[str, Any] | None = None) -> M:
    """Validate a JSON body into ``model``.

    Args:
        model: The body model.
        raw: The raw body.
        default: Used when the body is empty; ``None`` makes the body required.

    Raises:
        ApiError: 422 for a missing body, bad JSON or a failed validation.
    """
    if not raw.strip():
        if default is None:
            raise validation_error((["body"], "Field required", "missing"))
        data: Any = default
    else:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            pos = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
            raise validation_error((["body", pos], "JSON decode error", "json_invalid")) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _as_422(exc, "body") from exc


def _is_list(annotation: Any) -> bool:
    """Whether a field annotation is ``list[...]``, possibly inside ``... | None``."""
    if get_origin(annotation) is list:
        return True
    return any(get_origin(arg) is list for arg in get_args(annotation))


def parse_query(model: type[M], query: Mapping[str, list[str]]) -> M:
    """Validate query parameters; list fields take every value, others the last one.

    Raises:
        ApiError: 422 naming the bad parameter.
    """
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in query:
            data[name] = query[name] if _is_list(info.annotation) else query[name][-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _as_422(exc, "query") from exc


def parse_uuid(name: str, value: str) -> str:
    """A path parameter as a canonical UUID string.

    Raises:
        ApiError: 422 if it is not a UUID.
    """
    try:
        return str(_UUID.validate_python(value))
    except ValidationError as exc:
        raise validation_error(
            *((["path", name], e["msg"], e["type"]) for e in exc.errors())
        ) from exc
