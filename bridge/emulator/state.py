"""The emulator's in-memory world: one organization, its workspaces, projects, roles,
service keys and the personal access tokens (PATs) of its one user.

Everything sits behind one lock, and records are frozen dataclasses replaced on change,
so a record handed out is a consistent snapshot. Only the SHA-256 of a key is stored;
the full key exists once, in the create response (and, for the bootstrap admin key, in
the ``Seed`` that lets ``reset()`` bring back the very same key).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from bridge.emulator.clock import EmulatorClock, isoformat
from bridge.emulator.keyauth import accepts, new_key_accepted_from, touched
from bridge.emulator.records import (
    PAT_PREFIX,
    AccessScope,
    KeyKind,
    KeyRecord,
    KeyRuleError,
    Project,
    Role,
    Seed,
    Workspace,
    hash_key,
    new_key,
    short_key,
)
from bridge.emulator.switches import AuthSwitches, Switch


class EmulatorState:
    """The thread-safe store behind every route.

    Args:
        seed: The bootstrap world.
        clock: The emulator clock (for ``created_at``, expiry and ``last_used_at``).
        auth: The auth switches (cache delay, ``last_used_at`` granularity); exact
            behaviour by default.
    """

    def __init__(
        self, seed: Seed, clock: EmulatorClock, auth: Switch[AuthSwitches] | None = None
    ) -> None:
        self.seed = seed
        self._clock = clock
        self._auth = auth or Switch(AuthSwitches())
        self._lock = threading.Lock()
        self._keys: dict[str, KeyRecord] = {}
        self._by_hash: dict[str, str] = {}
        self.reset()

    # -- world ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every key but the bootstrap admin key, which comes back as new."""
        admin = KeyRecord(
            id=self.seed.admin_key_id,
            key_hash=hash_key(self.seed.admin_key),
            short_key=short_key(self.seed.admin_key),
            description="Bootstrap admin key",
            created_at=self.seed.created_at,
            role_id=self.seed.role("WORKSPACE_ADMIN").id,
            org_role_id=self.seed.role("ORGANIZATION_ADMIN").id,
            workspace_ids=None,
        )
        with self._lock:
            self._keys = {admin.id: admin}
            self._by_hash = {admin.key_hash: admin.id}

    @property
    def organization_id(self) -> str:
        return self.seed.organization_id

    def role(self, name: str) -> Role:
        """The role called ``name``."""
        return self.seed.role(name)

    def role_by_id(self, role_id: str) -> Role | None:
        """The role with this id, if any."""
        return next((role for role in self.seed.roles if role.id == role_id), None)

    def workspace(self, workspace_id: str) -> Workspace | None:
        """The workspace with this id, if any."""
        return next((ws for ws in self.seed.workspaces if ws.id == workspace_id), None)

    def workspaces_for(self, key: KeyRecord) -> list[Workspace]:
        """The workspaces ``key`` can reach, in creation order."""
        return [ws for ws in self.seed.workspaces if key.reaches(ws.id)]

    def projects(self, workspace_id: str) -> list[Project]:
        """The seeded projects of one workspace (``TraceStore.projects`` adds those that
        tracing created)."""
        return [p for p in self.seed.projects if p.tenant_id == workspace_id]

    def is_org_admin(self, key: KeyRecord) -> bool:
        """Whether ``key`` holds the Organization Admin role."""
        return key.org_role_id == self.role("ORGANIZATION_ADMIN").id

    def can_admin_workspace(self, key: KeyRecord, workspace_id: str) -> bool:
        """Org admins, and keys with the workspace Admin role there, manage its keys."""
        if self.is_org_admin(key):
            return True
        return key.reaches(workspace_id) and key.role_id == self.role("WORKSPACE_ADMIN").id

    # -- keys ------------------------------------------------------------------------------

    def authenticate(self, key: str) -> KeyRecord | None:
        """The record for ``key`` if it is accepted now, its ``last_used_at`` updated;
        ``None`` if it is not. The auth switches decide both (see ``keyauth``)."""
        digest = hash_key(key)
        now = self._clock.now()
        switches = self._auth.value
        with self._lock:
            key_id = self._by_hash.get(digest)
            record = self._keys.get(key_id) if key_id else None
            if record is None or not accepts(record, now, switches):
                return None
            record = touched(record, now, switches)
            self._keys[record.id] = record
            return record

    def create_key(
        self,
        *,
        description: str,
        read_only: bool = False,
        expires_at: datetime | None = None,
        workspace_ids: Iterable[str] | None = None,
        role_id: str | None = None,
        org_role_id: str | None = None,
    ) -> tuple[KeyRecord, str]:
        """Mint a service key; returns its record and the full key (the only time it exists).

        Raises:
            KeyRuleError: A rule is broken (unknown workspace or role, past expiry, ...).
        """
        now = self._clock.now()
        scope = tuple(dict.fromkeys(workspace_ids)) if workspace_ids is not None else None
        self._check_expiry(expires_at, now)
        if scope is not None:
            if org_role_id is not None:
                raise KeyRuleError("org_role_id", "org_role_id is only for org-scoped keys")
            if not scope:
                raise KeyRuleError("workspaces", "workspaces must not be empty")
            unknown = [ws for ws in scope if self.workspace(ws) is None]
            if unknown:
                raise KeyRuleError("workspaces", f"unknown workspace id {unknown[0]}")
        default_role = "WORKSPACE_VIEWER" if read_only else "WORKSPACE_ADMIN"
        role = self._checked_role("role_id", role_id, "workspace") or self.role(default_role)
        org_role = self._checked_role("org_role_id", org_role_id, "organization")
        if scope is None and org_role is None:
            org_role = self.role("ORGANIZATION_USER")
        return self._mint(
            new_key(),
            now,
            description=description,
            role_id=role.id,
            org_role_id=org_role.id if org_role else None,
            workspace_ids=scope,
            expires_at=expires_at,
        )

    def create_pat(
        self,
        *,
        description: str,
        expires_at: datetime | None = None,
        default_workspace_id: str | None = None,
    ) -> tuple[KeyRecord, str]:
        """Mint a personal access token of the organization's one user, an Organization
        Admin: the token carries that user's roles and reaches every workspace.

        Raises:
            KeyRuleError: A past expiry or an unknown default workspace.
        """
        now = self._clock.now()
        self._check_expiry(expires_at, now)
        if default_workspace_id is not None and self.workspace(default_workspace_id) is None:
            raise KeyRuleError(
                "default_workspace_id", f"unknown workspace id {default_workspace_id}"
            )
        return self._mint(
            new_key(PAT_PREFIX),
            now,
            description=description,
            role_id=self.role("WORKSPACE_ADMIN").id,
            org_role_id=self.role("ORGANIZATION_ADMIN").id,
            workspace_ids=None,
            expires_at=expires_at,
            kind="pat",
            default_workspace_id=default_workspace_id,
        )

    def _mint(self, key: str, now: datetime, **fields: Any) -> tuple[KeyRecord, str]:
        """Store a new key's record (its hash, never the key) and hand back both."""
        record = KeyRecord(
            id=str(uuid.uuid4()),
            key_hash=hash_key(key),
            short_key=short_key(key),
            created_at=now,
            accepted_from=new_key_accepted_from(now, self._auth.value),
            **fields,
        )
        self._store(record)
        return record, key

    def set_revoked(self, pat_id: str, revoked: bool) -> KeyRecord | None:
        """Revoke (or reinstate) an undeleted PAT; ``None`` if there is no such PAT.

        Revoking keeps the record and its ``expires_at`` (the docs disagree on whether
        revocation moves the expiry; keeping it lets a reinstated token live out its
        original term). Revoking a revoked token keeps the first instant; reinstating
        one that is not revoked changes nothing; an expired token stays expired.
        """
        now = self._clock.now()
        with self._lock:
            record = self._keys.get(pat_id)
            if record is None or record.deleted or record.kind != "pat":
                return None
            if revoked and record.revoked_at is None:
                record = replace(record, revoked_at=now)
            elif not revoked:
                record = replace(record, revoked_at=None)
            self._keys[pat_id] = record
            return record

    def update_roles(
        self, key_id: str, *, role_id: str | None, org_role_id: str | None
    ) -> KeyRecord | None:
        """Change a live key's roles in place; ``None`` if there is no such key.

        Raises:
            KeyRuleError: Unknown role, or an org role for a workspace-scoped key.
        """
        role = self._checked_role("role_id", role_id, "workspace")
        org_role = self._checked_role("org_role_id", org_role_id, "organization")
        with self._lock:
            record = self._keys.get(key_id)
            if record is None or record.deleted or record.kind != "service":
                return None
            if org_role is not None and record.workspace_ids is not None:
                raise KeyRuleError("org_role_id", "org_role_id is only for org-scoped keys")
            changes: dict[str, Any] = {}
            if role is not None:
                changes["role_id"] = role.id
            if org_role is not None:
                changes["org_role_id"] = org_role.id
            record = replace(record, **changes)
            self._keys[key_id] = record
            return record

    def delete_key(
        self, key_id: str, workspace_id: str | None = None, *, kind: KeyKind = "service"
    ) -> KeyRecord | None:
        """Delete a live key of ``kind`` (in ``workspace_id`` if given); ``None`` if there
        is none, so a service-key route never deletes a PAT, nor a PAT route a key."""
        now = self._clock.now()
        with self._lock:
            record = self._keys.get(key_id)
            if record is None or record.deleted or record.kind != kind:
                return None
            if workspace_id is not None and record.workspace_ids is None:
                return None
            if workspace_id is not None and not record.reaches(workspace_id):
                return None
            record = replace(record, deleted_at=now)
            self._keys[key_id] = record
            return record

    def live_keys(
        self, workspace_ids: Iterable[str] | None = None, *, kind: KeyKind = "service"
    ) -> list[KeyRecord]:
        """Undeleted keys of ``kind`` (expired and revoked ones included, as the real
        lists show them).

        Args:
            workspace_ids: If given, only keys that can reach one of these workspaces.
            kind: Service keys, or personal access tokens.
        """
        wanted = list(workspace_ids) if workspace_ids is not None else None
        with self._lock:
            records = [r for r in self._keys.values() if not r.deleted and r.kind == kind]
        if wanted is not None:
            records = [r for r in records if any(r.reaches(ws) for ws in wanted)]
        return records

    def workspace_keys(self, workspace_id: str) -> list[KeyRecord]:
        """Undeleted workspace-scoped keys that include ``workspace_id``."""
        return [
            r
            for r in self.live_keys()
            if r.workspace_ids is not None and workspace_id in r.workspace_ids
        ]

    def key_ids(self) -> list[str]:
        """Ids of every key ever created, deleted ones included."""
        with self._lock:
            return list(self._keys)

    def get_key(self, key_id: str) -> KeyRecord | None:
        """The record with this id (deleted or not), without any secret."""
        with self._lock:
            return self._keys.get(key_id)

    def find_key(self, key: str) -> KeyRecord | None:
        """The record of a full key, by hash, without touching ``last_used_at``."""
        with self._lock:
            key_id = self._by_hash.get(hash_key(key))
            return self._keys.get(key_id) if key_id else None

    def inspect_keys(self) -> list[dict[str, Any]]:
        """Every key as JSON-ready data for test inspection; never a secret or hash."""
        with self._lock:
            records = list(self._keys.values())
        return [
            {
                "id": r.id,
                "kind": r.kind,
                "short_key": r.short_key,
                "description": r.description,
                "access_scope": r.access_scope,
                "deleted": r.deleted,
                "revoked": r.revoked_at is not None,
                "created_at": isoformat(r.created_at),
                "last_used_at": isoformat(r.last_used_at) if r.last_used_at else None,
                "expires_at": isoformat(r.expires_at) if r.expires_at else None,
            }
            for r in records
        ]

    def _store(self, record: KeyRecord) -> None:
        with self._lock:
            self._keys[record.id] = record
            self._by_hash[record.key_hash] = record.id

    @staticmethod
    def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
        if expires_at is not None and expires_at <= now:
            raise KeyRuleError("expires_at", "expires_at must be in the future")

    def _checked_role(self, field: str, role_id: str | None, scope: AccessScope) -> Role | None:
        if role_id is None:
            return None
        role = self.role_by_id(role_id)
        if role is None or role.access_scope != scope:
            raise KeyRuleError(field, f"{field} is not a known {scope} role")
        return role
