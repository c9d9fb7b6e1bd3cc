"""Hand-written fakes of the engine's ports: LangSmith's key service
(``bridge.engine.ports.KeyService``) and the state store (``bridge.state.StateStore``).

Both record every call, in order, into a list of ``tests.support.faults.Call`` (share one
list between them and with ``FaultyProvider`` s for one trail of a run) and fail a verb
on demand with the ``BridgeError`` given, once, a number of times, or always."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.errors import LangSmithAuthError, LangSmithNotFound, LeaseHeld, StateConflict
from bridge.langsmith import ApiKey, CreatedKey
from bridge.secrets import Secret
from bridge.state import Ack, PolicyRecord
from tests.support.faults import Call, Faults, Recorder
from tests.support.keys import new_key


def short_key(key: str) -> str:
    """How LangSmith lists a key: its prefix and a few characters of each end."""
    return f"{key[:12]}...{key[-4:]}"


class FakeKeyService:
    """LangSmith's service keys, in memory: a ``KeyService`` for the engine.

    Keys it mints are real ``Secret`` s of the documented shape. Verification accepts a key
    while it is listed and not marked rejected, as LangSmith does; deleting a key it does
    not list answers 404 (``LangSmithNotFound``), as LangSmith does.

    Args:
        calls: Where calls are recorded as ``Call("keys", verb, arg)``: ``create_service_key``
            (its description), ``delete_service_key`` (the key id), ``verify_key`` (the
            key's fingerprint), ``list_service_keys``, ``close``.
        clock: The instant keys are created at.

    Attributes:
        listing: The keys LangSmith lists now, by id.
        faults: ``fail`` arms these.
    """

    def __init__(
        self,
        *,
        calls: list[Call] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.calls: list[Call] = [] if calls is None else calls
        self.clock = clock
        self.faults = Faults()
        self.listing: dict[str, ApiKey] = {}
        self.closed = False
        self._secrets: dict[str, Secret] = {}  # key id -> the key, listed or deleted
        self._rejected: set[str] = set()
        self._lock = threading.Lock()
        self._record = Recorder("keys", self.calls, self.faults)

    # -- scripting ---------------------------------------------------------------------

    def fail(self, verb: str, error: Exception, *, times: int | None = 1) -> None:
        """Answer the next ``times`` calls of ``verb`` with ``error`` (``ALWAYS``: all)."""
        self.faults.arm(verb, error, times=times)

    def reject(self, key_id: str) -> None:
        """Make verification of key ``key_id`` answer 401 from now on."""
        self._rejected.add(key_id)

    def seed(self, description: str, *, expires_at: datetime | None = None) -> CreatedKey:
        """A key that exists before the test starts (no call is recorded)."""
        return self._add(description, expires_at=expires_at)

    def drop(self, key_id: str) -> None:
        """Delete a key out of band, as someone else would (no call is recorded)."""
        with self._lock:
            del self.listing[key_id]

    def secret(self, key_id: str) -> Secret:
        """The key minted under ``key_id``, listed or deleted."""
        return self._secrets[key_id]

    # -- KeyService --------------------------------------------------------------------

    def list_service_keys(self) -> list[ApiKey]:
        self._record("list_service_keys")
        with self._lock:
            return list(self.listing.values())

    def create_service_key(
        self,
        *,
        description: str,
        expires_at: datetime | None = None,
        workspaces: Sequence[str] | None = None,
        role_id: str | None = None,
        org_role_id: str | None = None,
    ) -> CreatedKey:
        self._record("create_service_key", description)
        return self._add(
            description,
            expires_at=expires_at,
            access_scope="workspace" if workspaces is not None else "organization",
            role_id=role_id,
            org_role_id=org_role_id,
        )

    def delete_service_key(self, key_id: str) -> None:
        self._record("delete_service_key", key_id)
        with self._lock:
            if self.listing.pop(key_id, None) is None:
                raise LangSmithNotFound(
                    f"no key {key_id}", operation="delete_service_key", status=404
                )

    def verify_key(self, key: Secret, *, workspace_id: str | None = None) -> None:
        self._record("verify_key", key.fingerprint)
        with self._lock:
            accepted = any(
                self._secrets[key_id] == key and key_id not in self._rejected
                for key_id in self.listing
            )
        if not accepted:
            raise LangSmithAuthError("Invalid token", operation="verify_key", status=401)

    def close(self) -> None:
        self._record("close")
        self.closed = True

    def _add(self, description: str, **fields: Any) -> CreatedKey:
        secret = Secret(new_key())
        info = ApiKey(
            id=str(uuid.uuid4()),
            short_key=short_key(secret.reveal()),
            description=description,
            created_at=self.clock(),
            **fields,
        )
        with self._lock:
            self.listing[info.id] = info
            self._secrets[info.id] = secret
        return CreatedKey(info=info, key=secret)


class MemoryState:
    """A ``StateStore`` in memory, with the semantics every backend's contract checks:
    a compare-and-swap ``save`` (``StateConflict`` on a stale version), a per-policy lease
    (``LeaseHeld`` while anyone holds it) and each consumer's latest ack.

    Args:
        calls: Where calls are recorded as ``Call("state", verb, arg)``; a ``save`` records
            the record it was given, so a trail shows what was saved when.

    Attributes:
        records: The stored records, by policy.
        history: Every record stored, in order (versions included).
        faults: ``fail`` arms these.
    """

    def __init__(self, *, calls: list[Call] | None = None) -> None:
        self.calls: list[Call] = [] if calls is None else calls
        self.faults = Faults()
        self.records: dict[str, PolicyRecord] = {}
        self.history: list[PolicyRecord] = []  # every record stored, in order
        self.leases: dict[str, str] = {}  # policy -> owner
        self.closed = False
        self._acks: dict[str, dict[str, Ack]] = {}
        self._lock = threading.Lock()
        self._record = Recorder("state", self.calls, self.faults)

    def fail(self, verb: str, error: Exception, *, times: int | None = 1) -> None:
        """Answer the next ``times`` calls of ``verb`` with ``error`` (``ALWAYS``: all)."""
        self.faults.arm(verb, error, times=times)

    def load(self, policy: str) -> PolicyRecord:
        self._record("load", policy)
        with self._lock:
            return self.records.get(policy) or PolicyRecord(policy=policy)

    def save(self, record: PolicyRecord) -> PolicyRecord:
        self._record("save", record)
        with self._lock:
            stored = self.records.get(record.policy)
            found = stored.version if stored else 0
            if found != record.version:
                raise StateConflict(
                    f"policy {record.policy!r}: expected version {record.version}, found {found}"
                )
            self.records[record.policy] = record.model_copy(update={"version": found + 1})
            self.history.append(self.records[record.policy])
            return self.records[record.policy]

    def policies(self) -> list[str]:
        self._record("policies")
        with self._lock:
            return sorted(self.records)

    @contextlib.contextmanager
    def lease(self, policy: str, owner: str, ttl: timedelta) -> Iterator[None]:
        self._record("lease", policy)
        with self._lock:
            if policy in self.leases:
                raise LeaseHeld(f"policy {policy!r} is being reconciled by another runner")
            self.leases[policy] = owner
        try:
            yield
        finally:
            with self._lock:
                del self.leases[policy]

    def record_ack(self, policy: str, ack: Ack) -> None:
        self._record("record_ack", ack)
        with self._lock:
            self._acks.setdefault(policy, {})[ack.consumer] = ack

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> dict[str, Ack]:
        self._record("acks", policy)
        with self._lock:
            held = self._acks.get(policy, {})
            return {c: a for c, a in held.items() if consumers is None or c in consumers}

    def close(self) -> None:
        self._record("close")
        self.closed = True
