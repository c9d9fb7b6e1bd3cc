"""Hand-written fakes of the engine's ports: LangSmith's key service
(``bridge.engine.ports.KeyService``) and the state store (``bridge.state.StateStore``).

Both record every call, in order, into a list of ``tests.support.faults.Call`` (share one
list between them and with ``FaultyProvider`` s for one trail of a run) and fail a verb
on demand with the ``BridgeError`` given, once, a number of times, or always."""

from __future__ import annotations

import contextlib
import copy
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.errors import (
    LangSmithAuthError,
    LangSmithNotFound,
    LeaseHeld,
    LeaseLost,
    StateConflict,
)
from bridge.langsmith import ApiKey, CreatedKey, KeyListing
from bridge.secrets import Secret
from bridge.state import Ack, PolicyRecord, Run
from bridge.state.lease import HeldLease, Leases, lease_token
from bridge.state.model import (
    LEGACY_DEPLOYMENT_ID,
    ack_order,
    check_ack,
    forgotten,
    new_deployment_id,
)
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

    def list_service_keys(self) -> KeyListing:
        self._record("list_service_keys")
        with self._lock:
            return KeyListing(tuple(self.listing.values()), served_at=self.clock())

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

    def verify_key(
        self, key: Secret, *, workspace_id: str | None = None, endpoint: str | None = None
    ) -> None:
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
    a compare-and-swap ``save`` (``StateConflict`` on a stale version), a fenced per-policy
    lease (``LeaseHeld`` while anyone holds it; renewed in the background by the same
    ``bridge.state.lease`` code as every backend's), the latest ack of each consumer's
    replicas, run outcomes apart from the record, and a deployment id.

    Leases expire on ``clock``, so a test can move it past a lease's expiry and have
    another runner (``sibling()``) take the lease over: the first holder's next save
    raises ``LeaseLost`` and writes nothing.

    Args:
        calls: Where calls are recorded as ``Call("state", verb, arg)``; a ``save`` records
            the record it was given, so a trail shows what was saved when. Renewals, which
            run in a background thread, are not recorded.
        clock: The instant leases expire against (default: UTC now).

    Attributes:
        records: The stored records, by policy (without the run fields ``load`` adds).
        history: Every record stored, in order (versions included).
        leases: The owner of each policy's lease, while it is held.
        deployment: The deployment id, once ``deployment_id`` made one (or a test set it).
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
        self.records: dict[str, PolicyRecord] = {}
        self.history: list[PolicyRecord] = []  # every record stored, in order
        self.leases: dict[str, str] = {}  # policy -> owner
        self.closed = False
        self._meta: dict[str, str] = {}  # shared with siblings, like everything but _held
        self._terms: dict[str, tuple[str, datetime]] = {}  # policy -> (token, expiry)
        self._acks: dict[str, dict[tuple[str, str], Ack]] = {}  # by (consumer, replica)
        self._runs: dict[str, Run] = {}
        self._lock = threading.RLock()
        self._held = Leases()  # the leases this store object holds: what its saves fence on
        self._record = Recorder("state", self.calls, self.faults)

    def sibling(self) -> MemoryState:
        """Another store on the same memory: another runner, with leases of its own."""
        other = copy.copy(self)
        other._held = Leases()
        other.closed = False
        return other

    @property
    def deployment(self) -> str | None:
        return self._meta.get("deployment")

    @deployment.setter
    def deployment(self, value: str) -> None:
        self._meta["deployment"] = value

    def fail(self, verb: str, error: Exception, *, times: int | None = 1) -> None:
        """Answer the next ``times`` calls of ``verb`` with ``error`` (``ALWAYS``: all)."""
        self.faults.arm(verb, error, times=times)

    def load(self, policy: str) -> PolicyRecord:
        self._record("load", policy)
        with self._lock:
            record = self.records.get(policy) or PolicyRecord(policy=policy)
            run = self._runs.get(policy)
            return record if run is None else record.with_run(run)

    def save(self, record: PolicyRecord) -> PolicyRecord:
        self._record("save", record)
        with self._lock:
            held = self._held.fence(record.policy)
            if held is not None and not self._holds(record.policy, held.token):
                terms = self._terms.get(record.policy)
                why = f"taken over by {terms[0]}" if terms else "expired or is gone"
                held.lose(f"the lease was {why}")
                raise LeaseLost(f"policy {record.policy!r}: the lease was {why}; nothing written")
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
    def lease(self, policy: str, owner: str, ttl: timedelta) -> Iterator[HeldLease]:
        self._record("lease", policy)
        token, sent_at = lease_token(owner), time.monotonic()
        with self._lock:
            terms = self._terms.get(policy)
            if terms is not None and terms[1] >= self.clock():
                raise LeaseHeld(f"policy {policy!r} is being reconciled by another runner")
            self._terms[policy] = (token, self.clock() + ttl)
            self.leases[policy] = owner
        held = HeldLease(
            policy, token, ttl, renew=lambda: self._renew(policy, token, ttl), sent_at=sent_at
        )
        with self._held.hold(held, release=lambda: self._release(policy, token)) as lease:
            yield lease

    def _holds(self, policy: str, token: str) -> bool:
        terms = self._terms.get(policy)
        return terms is not None and terms[0] == token and terms[1] >= self.clock()

    def _renew(self, policy: str, token: str, ttl: timedelta) -> None:
        with self._lock:
            terms = self._terms.get(policy)
            if terms is None or terms[0] != token:
                holder = f"taken over by {terms[0]}" if terms else "gone"
                raise LeaseLost(f"the lease was {holder}")
            self._terms[policy] = (token, self.clock() + ttl)

    def _release(self, policy: str, token: str) -> None:
        with self._lock:
            terms = self._terms.get(policy)
            if terms is not None and terms[0] == token:  # never a successor's
                del self._terms[policy]
                del self.leases[policy]

    def record_ack(self, policy: str, ack: Ack) -> None:
        self._record("record_ack", ack)
        check_ack(ack)
        with self._lock:
            held = self._acks.setdefault(policy, {})
            held[ack.consumer, ack.replica] = ack
            replicas = [a for a in held.values() if a.consumer == ack.consumer]
            for old in forgotten(replicas, ack):
                del held[old.consumer, old.replica]

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> list[Ack]:
        self._record("acks", policy)
        with self._lock:
            held = self._acks.get(policy, {}).values()
            found = [a for a in held if consumers is None or a.consumer in consumers]
            return sorted(found, key=ack_order)

    def record_run(self, policy: str, at: datetime, error: str | None) -> None:
        self._record("record_run", policy)
        with self._lock:
            previous = self._runs.get(policy, Run()).last_success_at
            success = at if error is None else previous
            self._runs[policy] = Run(last_run_at=at, last_error=error, last_success_at=success)

    def deployment_id(self) -> str:
        self._record("deployment_id")
        with self._lock:
            found = self.deployment
            if found is None:
                found = LEGACY_DEPLOYMENT_ID if self.records else new_deployment_id()
                self.deployment = found
            return found

    def close(self) -> None:
        self._record("close")
        self.closed = True
