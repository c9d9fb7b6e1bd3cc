"""Dynamic credentials: ``creds/<role>`` mints a LangSmith service key under a Vault lease.

* **Issue.** A write-ahead record (``wal/<id>``) goes in before the mint; the key is minted
  with ``expires_at = now + max_ttl + margin``, so LangSmith itself deletes it should every
  revocation fail; the key is indexed (``issued/<key id>``) and the record removed. The
  lease carries the key id in ``internal_data`` with a secret type, for renew and revoke.
* **Renew** moves only the Vault lease (the core caps it at ``max_ttl``); LangSmith's
  ``expires_at`` cannot move, and it does not need to: it was set past ``max_ttl``.
* **Revoke** deletes the key; a key LangSmith no longer has counts as revoked.
* **Rollback** (the host's periodic call): a write-ahead record older than the config's
  ``sweep_after`` belongs to a mint a crash cut short: its key, found by the record's id in
  the key's description, is deleted, then the record. A key of this mount that is neither
  indexed nor in flight, and older than ``sweep_after``, is deleted too.

Every key carries the mark ``langsmith-bridge:<instance> policy=vault.<role>
rotation=<wal id>`` at the end of its description; the bridge's own runs leave keys of
another instance alone.
"""

from __future__ import annotations

import logging
import secrets as _random
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bridge.engine.ports import KeyService
from bridge.errors import LangSmithNotFound
from bridge.logs import event
from bridge.marker import Marker
from bridge.secrets_engine.errors import BadRequest, NotFound
from bridge.secrets_engine.models import EngineConfig, Issued, Role, Wal
from bridge.secrets_engine.storage import Documents, EngineStorage

log = logging.getLogger("bridge.secrets_engine")

SECRET_TYPE = "langsmith_key"  # noqa: S105 - the lease's secret type, not a secret
MARGIN = timedelta(minutes=10)  # LangSmith's expires_at past the lease's max_ttl
WAL_GRACE = ORPHAN_GRACE = timedelta(minutes=10)  # EngineConfig.sweep_after's default
POLICY_PREFIX = "vault."


@dataclass(frozen=True)
class Limits:
    """The mount's lease TTLs (the host's SystemView)."""

    default_ttl: timedelta
    max_ttl: timedelta


@dataclass(frozen=True)
class Lease:
    """A response with a secret: what the caller reads, and what renew/revoke get back."""

    data: dict[str, object]
    internal: dict[str, object]
    ttl: timedelta
    max_ttl: timedelta
    renewable: bool = True


@dataclass
class Swept:
    """What one rollback did."""

    wal_cleared: list[str] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)  # short keys


class DynamicCreds:
    """Args:
    storage: The mount's storage.
    keys: Makes the LangSmith client for a config (the plugin: ``LangSmithClient``).
    clock: Now.
    instance: This mount's mark on its keys (from the mount's UUID).
    """

    def __init__(
        self,
        storage: EngineStorage,
        keys: Callable[[EngineConfig], KeyService],
        clock: Callable[[], datetime],
        instance: str,
    ) -> None:
        self.docs = Documents(storage)
        self._keys = keys
        self.clock = clock
        self.instance = instance
        self._client: tuple[tuple[str, str], KeyService] | None = None
        self._lock = threading.Lock()

    # -- helpers shared with the other paths ----------------------------------------------

    def config(self) -> EngineConfig:
        config = self.docs.read("config", EngineConfig)
        if config is None:
            raise BadRequest("the engine is not configured: write langsmith/config first")
        return config

    def role(self, name: str) -> Role:
        role = self.docs.read(f"roles/{name}", Role)
        if role is None:
            raise NotFound(f"no role named {name!r}")
        return role

    @contextmanager
    def client(self) -> Iterator[KeyService]:
        """The LangSmith client of the current config, kept while the config holds."""
        config = self.config()
        identity = (config.endpoint, config.admin_key)
        with self._lock:
            if self._client is None or self._client[0] != identity:
                if self._client is not None:
                    self._client[1].close()
                self._client = (identity, self._keys(config))
            client = self._client[1]
        yield client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client[1].close()
                self._client = None

    # -- the lease's life -------------------------------------------------------------------

    def issue(
        self,
        role_name: str,
        requested_ttl: timedelta | None,
        display_name: str,
        limits: Limits,
    ) -> Lease:
        config = self.config()
        role = self.role(role_name)
        max_ttl = min(role.max_ttl or limits.max_ttl, limits.max_ttl)
        ttl = min(requested_ttl or role.ttl or limits.default_ttl, max_ttl)
        if ttl <= timedelta(0):
            raise BadRequest("the lease TTL must be positive")
        now = self.clock()
        wal = Wal(id=_random.token_hex(8), role=role.name, started_at=now)
        self.docs.write(f"wal/{wal.id}", wal)  # before the mint: a crash leaves a trace
        marker = Marker(self.instance, f"{POLICY_PREFIX}{role.name}", wal.id)
        with self.client() as keys:
            created = keys.create_service_key(
                description=f"{_describe(role, display_name, now)} {marker.description()}",
                expires_at=now + max_ttl + MARGIN,
                workspaces=role.workspaces,
                role_id=role.role_id,
            )
        info = created.info
        expires_at = info.expires_at or now + max_ttl + MARGIN
        issued = Issued(
            key_id=info.id,
            role=role.name,
            short_key=info.short_key,
            issued_at=now,
            expires_at=expires_at,
        )
        self.docs.write(f"issued/{info.id}", issued)
        self.docs.delete(f"wal/{wal.id}")
        event(log, "creds_issued", role=role.name, short_key=info.short_key, ttl=ttl)
        data: dict[str, object] = {
            "api_key": created.key.reveal(),
            "key_id": info.id,
            "short_key": info.short_key,
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
            "LANGSMITH_ENDPOINT": config.consumer_endpoint,
        }
        if len(role.workspaces) > 1 or role.default_workspace:
            data["LANGSMITH_WORKSPACE_ID"] = role.workspace_id
        internal: dict[str, object] = {
            "secret_type": SECRET_TYPE,
            "key_id": info.id,
            "role": role.name,
        }
        return Lease(data, internal, ttl, max_ttl)

    def renew(self, internal: Mapping[str, object], limits: Limits) -> timedelta:
        """The renewed lease's TTL. Raises ``NotFound`` once the key was revoked."""
        key_id = _key_id(internal)
        issued = self.docs.read(f"issued/{key_id}", Issued)
        if issued is None:
            raise NotFound(f"key {key_id} was revoked")
        role = self.docs.read(f"roles/{issued.role}", Role)
        return (role.ttl if role else timedelta(0)) or limits.default_ttl

    def revoke(self, internal: Mapping[str, object]) -> None:
        """Delete the key; idempotent (a key already gone is revoked)."""
        key_id = _key_id(internal)
        issued = self.docs.read(f"issued/{key_id}", Issued)
        with self.client() as keys, suppress(LangSmithNotFound):
            keys.delete_service_key(key_id)
        self.docs.delete(f"issued/{key_id}")
        short = issued.short_key if issued else None
        event(log, "creds_revoked", key_id=key_id, short_key=short)

    # -- the periodic sweep -----------------------------------------------------------------

    def rollback(self) -> Swept:
        """Delete what crashes left: keys of dead mints, and keys no lease holds."""
        swept = Swept()
        config = self.docs.read("config", EngineConfig)
        if config is None:
            return swept  # nothing was ever minted
        now = self.clock()
        walls = {name: self.docs.read(f"wal/{name}", Wal) for name in self.docs.names("wal/")}
        indexed = set(self.docs.names("issued/"))
        with self.client() as keys:
            listing = keys.list_service_keys()
            for key in listing.keys:
                marker = Marker.parse(key.description or "")
                if marker is None or marker.instance != self.instance:
                    continue
                if not marker.policy.startswith(POLICY_PREFIX) or key.id in indexed:
                    continue
                if key.id == config.admin_key_id:
                    continue  # the admin key rotate-root made: in charge, not an orphan
                wal = walls.get(marker.rotation_id)
                created = key.created_at or now
                if wal is not None and now - wal.started_at < config.sweep_after:
                    continue  # a mint in flight
                if wal is None and now - created < config.sweep_after:
                    continue  # issued just now, by a request still answering
                with suppress(LangSmithNotFound):
                    keys.delete_service_key(key.id)
                swept.orphans_deleted.append(key.short_key)
        for name, wal in walls.items():
            if wal is not None and now - wal.started_at >= config.sweep_after:
                self.docs.delete(f"wal/{name}")
                swept.wal_cleared.append(name)
        if swept.wal_cleared or swept.orphans_deleted:
            event(
                log,
                "rollback",
                wal_cleared=len(swept.wal_cleared),
                orphans_deleted=swept.orphans_deleted,
            )
        return swept


def _key_id(internal: Mapping[str, object]) -> str:
    key_id = internal.get("key_id")
    if internal.get("secret_type") != SECRET_TYPE or not isinstance(key_id, str):
        raise BadRequest("not a LangSmith key lease of this engine")
    return key_id


def _describe(role: Role, display_name: str, now: datetime) -> str:
    text = role.description
    for name, value in (
        ("role", role.name),
        ("display_name", display_name or "-"),
        ("unix_time", str(int(now.timestamp()))),
    ):
        text = text.replace("{{" + name + "}}", value)
    return " ".join(text.split())[:120]


__all__ = ["SECRET_TYPE", "DynamicCreds", "Lease", "Limits", "Swept"]
