"""The emulator's records: roles, workspaces, projects, keys and the seed they start from.

Frozen dataclasses, replaced on change by ``EmulatorState``; only a key's SHA-256 is kept.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

KEY_PREFIX = "lsv2_sk_"
PAT_PREFIX = "lsv2_pt_"
AccessScope = Literal["organization", "workspace"]
KeyKind = Literal["service", "pat"]

# (name, display name, scope) of the system roles the emulator knows.
ROLE_TABLE: tuple[tuple[str, str, AccessScope], ...] = (
    ("ORGANIZATION_ADMIN", "Organization Admin", "organization"),
    ("ORGANIZATION_USER", "Organization User", "organization"),
    ("ORGANIZATION_VIEWER", "Organization Viewer", "organization"),
    ("WORKSPACE_ADMIN", "Admin", "workspace"),
    ("WORKSPACE_EDITOR", "Editor", "workspace"),
    ("WORKSPACE_VIEWER", "Viewer", "workspace"),
)


class KeyRuleError(ValueError):
    """A create/update request is well-formed but breaks a rule; becomes a 422.

    Args:
        field: The body field at fault (for the 422 ``loc``).
        message: Why.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def new_key(prefix: str = KEY_PREFIX) -> str:
    """A fresh key: ``lsv2_sk_`` (or ``lsv2_pt_``) + 32 hex + ``_`` + 10 hex (51 characters)."""
    return f"{prefix}{secrets.token_hex(16)}_{secrets.token_hex(5)}"


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


def short_key(key: str) -> str:
    """The non-secret display form: prefix, first 4 and last 4 hex digits (32 of 168 bits).

    The real format is undocumented; this one keeps the ``lsv2_sk_`` (or ``lsv2_pt_``)
    prefix so a reader can tell the key type, and shows both ends so two keys are easy to
    tell apart.
    """
    prefix = PAT_PREFIX if key.startswith(PAT_PREFIX) else KEY_PREFIX
    body = key.removeprefix(prefix)
    return f"{prefix}{body[:4]}...{key[-4:]}"


@dataclass(frozen=True)
class Role:
    """A system role as ``GET /orgs/current/roles`` lists it."""

    id: str
    name: str
    display_name: str
    access_scope: AccessScope


@dataclass(frozen=True)
class Workspace:
    """A workspace (tenant)."""

    id: str
    name: str
    handle: str
    created_at: datetime


@dataclass(frozen=True)
class Project:
    """A tracing project (a "session" in the API)."""

    id: str
    name: str
    tenant_id: str
    start_time: datetime
    description: str | None = None


@dataclass(frozen=True)
class KeyRecord:
    """A stored service key or personal access token, without its secret.

    ``workspace_ids`` is ``None`` for an organization-scoped key, and for every PAT: a
    PAT acts as its user, who reaches every workspace of the organization.
    ``revoked_at`` is set only on a revoked PAT (service keys cannot be revoked).
    ``accepted_from`` is when a stale auth cache first accepts a new key (creation plus
    the auth-cache delay in force then); ``None`` means from creation.
    """

    id: str
    key_hash: str
    short_key: str
    description: str
    created_at: datetime
    role_id: str
    org_role_id: str | None
    workspace_ids: tuple[str, ...] | None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    deleted_at: datetime | None = None
    kind: KeyKind = "service"
    default_workspace_id: str | None = None
    revoked_at: datetime | None = None
    accepted_from: datetime | None = None

    @property
    def access_scope(self) -> AccessScope:
        return "organization" if self.workspace_ids is None else "workspace"

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def reaches(self, workspace_id: str) -> bool:
        """Whether the key may act in ``workspace_id`` (org-scoped keys reach all)."""
        return self.workspace_ids is None or workspace_id in self.workspace_ids

    def usable_at(self, now: datetime) -> bool:
        """Neither deleted, revoked nor expired at ``now``."""
        return self.refused_since(now) is None

    def refused_since(self, now: datetime) -> datetime | None:
        """When the key stopped working, if it has by ``now``: the earliest of its
        deletion, revocation and expiry; ``None`` while it still works."""
        ends = [self.deleted_at, self.revoked_at]
        if self.expires_at is not None and self.expires_at <= now:
            ends.append(self.expires_at)
        return min((end for end in ends if end is not None), default=None)


@dataclass(frozen=True)
class Seed:
    """The bootstrap world; ``reset()`` rebuilds the state from it, ids and key included."""

    organization_id: str
    organization_name: str
    roles: tuple[Role, ...]
    workspaces: tuple[Workspace, ...]
    projects: tuple[Project, ...]
    admin_key_id: str
    admin_key: str = field(repr=False)
    created_at: datetime

    @classmethod
    def generate(cls, now: datetime) -> Seed:
        """A new organization with two workspaces, two projects each, and an admin key."""
        roles = tuple(Role(str(uuid.uuid4()), *row) for row in ROLE_TABLE)
        workspaces = tuple(
            Workspace(str(uuid.uuid4()), name, f"emulated-{name.lower()}", now)
            for name in ("Production", "Staging")
        )
        projects = tuple(
            Project(str(uuid.uuid4()), name, ws.id, now, f"Seeded project in {ws.name}")
            for ws in workspaces
            for name in ("default", "bridge-demo")
        )
        return cls(
            organization_id=str(uuid.uuid4()),
            organization_name="Emulated Organization",
            roles=roles,
            workspaces=workspaces,
            projects=projects,
            admin_key_id=str(uuid.uuid4()),
            admin_key=new_key(),
            created_at=now,
        )

    def role(self, name: str) -> Role:
        """The role called ``name`` (e.g. ``WORKSPACE_ADMIN``)."""
        return next(role for role in self.roles if role.name == name)
