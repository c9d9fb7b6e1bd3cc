"""What the secrets engine keeps in its storage, and the durations Vault users write.

Storage layout (one JSON document each):

    config                 the LangSmith endpoint and the admin key (never read back)
    roles/<name>           a dynamic role
    wal/<id>               a mint in flight: written before, deleted after
    issued/<key id>        a dynamic key handed out under a lease, until revoked
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bridge.config.durations import parse_duration
from bridge.config.langsmith import uuid_text

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
DEFAULT_DESCRIPTION = "vault {{role}} {{display_name}}"
_GO_DURATION = re.compile(r"^(\d+)(ms|s|m|h)?$")


def parse_ttl(value: object) -> timedelta:
    """A TTL as Vault users write it: seconds (``300``), or a duration (``5m``, ``1h30m``,
    ``30d``). Zero means "the system default".

    Raises:
        ValueError: not a duration.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a TTL is a number of seconds or a duration such as 5m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a TTL cannot be negative")
        return timedelta(seconds=value)
    text = str(value).strip().lower()
    simple = _GO_DURATION.match(text)
    if simple and simple.group(2) in (None, "ms"):
        number = int(simple.group(1))
        return timedelta(milliseconds=number) if simple.group(2) else timedelta(seconds=number)
    return parse_duration(text)


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class EngineConfig(_Document):
    """``langsmith/config``: where LangSmith is and the key the engine mints with."""

    endpoint: str = Field(min_length=1)
    admin_key: str = Field(min_length=1, repr=False)
    admin_key_id: str | None = None  # given, or known once rotate-root made the key
    admin_org_role_id: str | None = None  # the org role rotate-root gives its successor
    organization_id: str | None = None
    public_endpoint: str | None = None  # LANGSMITH_ENDPOINT handed to consumers, if other
    # How old a write-ahead record, or a key no lease holds, must be before rollback deletes
    # its key: longer than any mint takes, retries included.
    sweep_after: timedelta = timedelta(minutes=10)

    @field_validator("sweep_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str) and value.upper().startswith("P"):
            return value  # ISO 8601, as stored: pydantic reads it
        return parse_ttl(value)

    @property
    def consumer_endpoint(self) -> str:
        return (self.public_endpoint or self.endpoint).rstrip("/")


class Role(_Document):
    """``roles/<name>``: the keys ``creds/<name>`` mints."""

    name: str = Field(pattern=NAME)
    workspaces: tuple[str, ...] = Field(min_length=1)
    role_id: str | None = None  # LangSmith's workspace role; its default is Admin
    default_workspace: str | None = None  # LANGSMITH_WORKSPACE_ID when several
    ttl: timedelta = timedelta(0)  # 0: the mount's default lease TTL
    max_ttl: timedelta = timedelta(0)  # 0: the mount's maximum
    description: str = Field(DEFAULT_DESCRIPTION, max_length=200)

    @field_validator("workspaces")
    @classmethod
    def _uuids(cls, workspaces: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(uuid_text(w) for w in workspaces)

    @property
    def workspace_id(self) -> str | None:
        """What consumers send as ``X-Tenant-Id``: the one workspace, or the default."""
        return self.default_workspace or (self.workspaces[0] if self.workspaces else None)


class Wal(_Document):
    """A mint in flight. Left behind by a crash, ``rollback`` deletes its key."""

    id: str
    role: str
    started_at: datetime


class Issued(_Document):
    """A dynamic key under a lease."""

    key_id: str
    role: str
    short_key: str
    issued_at: datetime
    expires_at: datetime


__all__ = ["EngineConfig", "Issued", "Role", "Wal", "parse_ttl"]
