"""A Vault / OpenBao KV v2 secret as a target: the payload as the secret's fields.

* The fields are the payload's environment map (``LANGSMITH_API_KEY``, ``_ENDPOINT``,
  ``_WORKSPACE_ID`` and the marker ``LANGSMITH_BRIDGE_MANAGED``), read by Vault Agent
  templates, the Vault Secrets Operator and External Secrets as any secret's fields. The
  marker stays in the data, as in every store: it names the generation of one *version*,
  which ``custom_metadata`` (one map per secret, shared by all its versions) cannot.
* Ownership lives in ``custom_metadata`` (``langsmith-bridge:managed = true`` and
  ``langsmith-bridge:policy``, the AWS target's tag names): another policy's or nobody's
  secret is refused unless ``adopt = true``, and a current version without this policy's
  marker was changed out of band and is not overwritten.
* The version reference is the KV version number. A write's ``cas`` is the version the
  observation saw (``0``: none yet), so a write in between fails instead of being lost;
  the previous version stays readable until ``retire`` destroys it.

A no-op run reads the metadata only (a recorded version still current holds what the
bridge wrote); a rotation adds the write and its read-back. A new secret gets its
``custom_metadata`` first, so a crash before the data leaves a secret already the policy's.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bridge.config.vault import VaultSettings, VaultTarget
from bridge.errors import (
    OwnershipError,
    ProviderAccessDenied,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderThrottled,
    ProviderUnavailable,
)
from bridge.payload import Payload, Stored, decode
from bridge.provider import ABSENT, Known, Observed, Ownership
from bridge.secrets import redact
from providers.vault.errors import Kind
from providers.vault.kv import Caller, Kv, KvError, Metadata, sender

MANAGED_KEY = "langsmith-bridge:managed"
POLICY_KEY = "langsmith-bridge:policy"

_ERRORS: dict[Kind, type[ProviderError]] = {
    "not_found": ProviderNotFound,
    "denied": ProviderAccessDenied,
    "conflict": ProviderConflict,
    "throttled": ProviderThrottled,
    "unavailable": ProviderUnavailable,
}


class Clients(Caller, Protocol):
    """Where the authenticated clients come from (``VaultClients``, or a test's own)."""

    settings: VaultSettings


@dataclass(frozen=True)
class _Current:
    """The current version as read: its payload, or why its data is none."""

    version: int
    stored: Stored | None
    unreadable: str | None = None


@dataclass(frozen=True)
class _Seen:
    """What the last observation saw, for the publish that follows it: the ``cas`` is the
    version it judged, and what it read is not read again."""

    metadata: Metadata
    current: _Current | None = None
    read: bool = False


class VaultKvProvider:
    """One KV v2 secret, written on behalf of one policy.

    Args:
        target: The secret's mount, path, namespace and settings.
        policy: The policy the bridge acts for (its ``custom_metadata`` and marker).
        clients: The process's authenticated clients; one is asked for on every call.
    """

    name = "vault"
    staging = None  # KV has no pending/current pointers of its own: a write is current

    def __init__(self, target: VaultTarget, policy: str, clients: Clients) -> None:
        self.target = target
        self.policy = policy
        self.mount, self.path = target.mount, target.path
        namespace = target.namespace or clients.settings.namespace
        prefix = f"{namespace.strip('/')}:" if namespace else ""
        self.reference = f"{prefix}{self.mount}/{self.path}"
        self._kv = Kv(sender(clients, target.namespace), self.mount)
        self._known: dict[str, str] = {}  # version -> fingerprint, recorded or written
        self._seen: _Seen | None = None
        self._mount_ok = False

    # -- the Provider protocol ---------------------------------------------------------

    def observe(self, known: Known) -> Observed:
        operation = "observe"
        self._known.update(known)
        self._seen = None
        meta = self._metadata(operation)
        if meta is None:
            return ABSENT
        refused = self._refusal(meta)
        if refused:
            return Observed("foreign", owner=meta.custom_metadata.get(POLICY_KEY), detail=refused)
        adopting = self._adopting(meta)
        ownership: Ownership = "adoptable" if adopting else "ours"
        live = meta.live_current
        if live is not None and str(live) in self._known and not adopting:
            self._seen = _Seen(meta)
            recorded = self._known[str(live)]
            return Observed("ours", recorded, str(live), owner=self.policy, content_read=False)
        current = None if live is None else self._current(live, operation)
        self._seen = _Seen(meta, current, read=live is not None)
        if current is None:  # no version yet, or the current one deleted or destroyed
            owner = None if adopting else self.policy
            return Observed(ownership, owner=owner, content_read=False)
        stored = current.stored
        fingerprint, owner = (stored.fingerprint, stored.policy) if stored else (None, None)
        refused = self._current_refusal(current, adopting)
        if refused:
            return Observed("foreign", fingerprint, str(live), owner=owner, detail=refused)
        digest = stored.settings_digest if stored else None
        return Observed(ownership, fingerprint, str(live), owner=owner, settings_digest=digest)

    def read(self) -> Stored | None:
        operation = "read"
        with self._translating(operation):
            entry = self._kv.read(self.path)
        if entry is None:
            self._require_mount(operation)  # a KV v1 mount reads as "nothing there" too
            return None
        stored, unreadable = _payload(entry.data, entry.version)
        if stored is None:
            message = f"unreadable payload: version {entry.version} {unreadable}"
            raise self._error(ProviderError, operation, message)
        return stored

    def publish(self, payload: Payload) -> str:
        operation = "publish"
        seen, self._seen = self._seen, None
        meta = seen.metadata if seen else self._metadata(operation)
        if meta is not None:
            same = self._check_writable(meta, payload, seen, operation)
            if same is not None:
                return same
        self._claim(meta, operation)
        cas = meta.current_version if meta else 0
        try:
            number = self._kv.write(self.path, payload.reveal_env(), cas=cas)
        except KvError as exc:
            if exc.failure.kind != "conflict":
                raise self._translated(exc, operation) from exc
            message = (
                f"changed since version {cas} was read (check-and-set failed on "
                f"{exc.api_path}); nothing was overwritten"
            )
            raise self._error(ProviderConflict, operation, message) from exc
        back = self._current(number, operation)
        if back is None or back.stored is None or not back.stored.same_content(payload):
            message = f"version {number} does not hold the payload just written"
            raise self._error(ProviderConflict, operation, message)
        self._known[str(number)] = payload.fingerprint
        return str(number)

    def retire(self, version: str) -> None:
        """Destroy ``version`` if it is an older version still holding data; never the
        current one. The metadata is read afresh: what is destroyed cannot come back."""
        operation = "retire"
        self._seen = None
        if not version.isdigit():
            return  # no KV version of that name: nothing to retire
        number = int(version)
        meta = self._metadata(operation)
        if meta is None or number >= meta.current_version:
            return
        self._check_owned(meta, operation)
        if self._ownership(meta) != "ours":
            return  # adoptable, but never published to: no version of it is this policy's
        info = meta.versions.get(number)
        if info is None or info.destroyed:
            return  # trimmed by max_versions, or destroyed already
        with self._translating(operation):
            self._kv.destroy(self.path, [number])

    def discard(self, rotation_id: str) -> None:
        """KV stages nothing: a write is current at once."""

    def validate(self) -> None:
        """The mount is KV v2, the secret (if any) is the policy's, and the token's
        policies allow what publishing and retiring need: asked of
        ``sys/capabilities-self``, so nothing is written."""
        operation = "validate"
        self._seen = None
        self._require_mount(operation)
        meta = self._metadata(operation)
        if meta is not None:
            self._check_owned(meta, operation)
            adopting = self._adopting(meta)
            live = meta.live_current
            current = None if live is None else self._current(live, operation)
            if current is not None:
                self._check_current(current, adopting, operation)
        self._check_capabilities(meta, operation)

    # -- ownership ---------------------------------------------------------------------

    def _ownership(self, meta: Metadata) -> Literal["ours", "unowned", "theirs"]:
        tagged = meta.custom_metadata.get(POLICY_KEY)
        if tagged == self.policy and meta.custom_metadata.get(MANAGED_KEY) == "true":
            return "ours"
        return "theirs" if tagged not in (None, self.policy) else "unowned"

    def _adopting(self, meta: Metadata) -> bool:
        return self._ownership(meta) == "unowned"

    def _refusal(self, meta: Metadata) -> str | None:
        """Why the secret is not the policy's to write at all, or ``None`` when it is."""
        ownership = self._ownership(meta)
        if ownership == "theirs":
            tagged = meta.custom_metadata.get(POLICY_KEY)
            return f"belongs to policy {tagged!r} (its custom_metadata); refusing to overwrite it"
        if ownership == "unowned" and not self.target.adopt:
            return (
                f"was not written by langsmith-bridge (no {POLICY_KEY} in its custom_metadata); "
                "set adopt = true to take it over"
            )
        return None

    def _current_refusal(self, current: _Current, adopting: bool) -> str | None:
        """Why the current version's data may not be replaced, or ``None`` when it may."""
        owner = current.stored.policy if current.stored else None
        if adopting and owner not in (None, self.policy):
            return f"version {current.version} holds a payload of policy {owner!r}; not adopting it"
        if adopting or owner == self.policy:
            return None
        refused = (
            f"version {current.version}, the current one, was not written by this policy "
            "(changed out of band); refusing to overwrite it"
        )
        if current.unreadable:
            refused += f"; its data is not a payload: {current.unreadable}"
        return refused

    def _check_current(self, current: _Current, adopting: bool, operation: str) -> None:
        refused = self._current_refusal(current, adopting)
        if refused:
            raise self._error(OwnershipError if adopting else ProviderConflict, operation, refused)

    def _check_owned(self, meta: Metadata, operation: str) -> None:
        refused = self._refusal(meta)
        if refused:
            raise self._error(OwnershipError, operation, refused)

    def _check_writable(
        self, meta: Metadata, payload: Payload, seen: _Seen | None, operation: str
    ) -> str | None:
        """Refuse what may not be replaced; the current version when it already holds
        ``payload`` (then nothing is written but a missing claim). The current version is
        read only when it may hold ``payload`` or its author is unknown: a rotation
        replaces a version known to hold another key."""
        self._check_owned(meta, operation)
        adopting = self._adopting(meta)
        live = meta.live_current
        if live is None:
            return None
        current = seen.current if seen and seen.read else None
        known = self._known.get(str(live))
        if current is None and (adopting or known in (None, payload.fingerprint)):
            current = self._current(live, operation)
        if current is None:
            return None
        self._check_current(current, adopting, operation)
        if current.stored is None or not current.stored.same_content(payload):
            return None
        self._claim(meta, operation)
        self._known[str(live)] = payload.fingerprint
        return str(live)

    def _claim_changes(self, meta: Metadata | None) -> dict[str, Any]:
        """The metadata to write: this policy's entries (merged into what is there) and
        ``max_versions``, where they differ from what the secret has."""
        custom = dict(meta.custom_metadata) if meta else {}
        changes: dict[str, Any] = {}
        wanted = {**custom, MANAGED_KEY: "true", POLICY_KEY: self.policy}
        if wanted != custom:
            changes["custom_metadata"] = wanted
        limit = self.target.max_versions
        if limit is not None and (meta is None or meta.max_versions != limit):
            changes["max_versions"] = limit
        return changes

    def _claim(self, meta: Metadata | None, operation: str) -> None:
        changes = self._claim_changes(meta)
        if changes:
            with self._translating(operation):
                self._kv.write_metadata(self.path, **changes)

    # -- reads and checks ----------------------------------------------------------------

    def _metadata(self, operation: str) -> Metadata | None:
        """The secret's metadata; ``None`` when absent, once the mount is known good."""
        with self._translating(operation):
            meta = self._kv.metadata(self.path)
        if meta is None:
            self._require_mount(operation)
        return meta

    def _current(self, version: int, operation: str) -> _Current | None:
        """Version ``version`` as read; ``None`` if it holds no data (deleted meanwhile)."""
        with self._translating(operation):
            entry = self._kv.read(self.path, version)
        if entry is None:
            return None
        stored, unreadable = _payload(entry.data, version)
        return _Current(version, stored, unreadable)

    def _require_mount(self, operation: str) -> None:
        """Raise the one clear error of a mount that is missing or not KV v2 (asked only
        when the secret looks absent, so a no-op run never pays for it)."""
        if self._mount_ok:
            return
        with self._translating(operation, explain=False):
            mount = self._kv.mount_of(self.path)
        problem = self._kv.mount_problem(self.path, mount)
        if problem:
            raise self._error(ProviderNotFound, operation, problem)
        self._mount_ok = True

    def _check_capabilities(self, meta: Metadata | None, operation: str) -> None:
        write = "create" if meta is None else "update"
        claim = {write} if self._claim_changes(meta) else set()
        needs = {
            self._kv.api_path("data", self.path): {"read", write},
            self._kv.api_path("metadata", self.path): {"read", *claim},
            self._kv.api_path("destroy", self.path): {"update"},  # retire
        }
        with self._translating(operation):
            missing = self._kv.lacking(needs)
        if missing:
            message = "the token's policies do not grant " + ", ".join(missing)
            raise self._error(ProviderAccessDenied, operation, message)

    # -- errors ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translating(self, operation: str, *, explain: bool = True) -> Iterator[None]:
        """Raise a ``KvError`` from the block as a ``ProviderError``; a 404 or 403 that a
        missing or non-KV-v2 mount explains is raised as that mount's error instead."""
        try:
            yield
        except KvError as exc:
            if explain and exc.failure.kind in ("not_found", "invalid", "denied"):
                self._explain(exc, operation)
            raise self._translated(exc, operation) from exc

    def _explain(self, exc: KvError, operation: str) -> None:
        try:
            mount = self._kv.mount_of(self.path)
        except KvError:
            return  # the first failure is the one to report
        problem = self._kv.mount_problem(self.path, mount)
        if problem is None:
            return
        if exc.failure.kind == "denied" and mount is None:
            message = f"{exc.describe()}; and {problem}"
            raise self._error(ProviderAccessDenied, operation, message) from exc
        raise self._error(ProviderNotFound, operation, problem) from exc

    def _translated(self, exc: KvError, operation: str) -> ProviderError:
        kind = _ERRORS.get(exc.failure.kind, ProviderError)
        return self._error(kind, operation, exc.describe())

    def _error(self, kind: type[ProviderError], operation: str, message: str) -> ProviderError:
        return kind(
            redact(message), provider=self.name, operation=operation, reference=self.reference
        )


def _payload(data: Any, version: int) -> tuple[Stored | None, str | None]:
    """A version's fields as a payload, or why they are none (never quoting a value).
    Through the JSON decoder, so a KV value is held to exactly a JSON target's rules."""
    try:
        env = decode(json.dumps(data), "json")
    except ValueError as exc:  # PayloadFormatError
        return None, str(exc)
    return Stored.from_env(env, version=str(version)), None
