"""The bridge's ``StateStore`` on the engine's storage, for static roles: the same records,
acks and runs the bridge keeps anywhere, as JSON entries under ``static/state/``.

One plugin process serves a mount (the engine answers "no multiplexing"), and the host
runs it on the active node only, so compare-and-swap and leases are made atomic by a lock in
this process; a lease lives as long as the process (a crashed process holds nothing).

    static/state/records/<role>     the PolicyRecord (version = the CAS counter)
    static/state/acks/<role>        {"consumer/replica": Ack}
    static/state/runs/<role>        Run
    static/state/deployment         this mount's id on its keys
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from bridge.errors import LeaseHeld, LeaseLost, StateConflict
from bridge.secrets_engine.storage import Documents, EngineStorage
from bridge.state import Ack, PolicyRecord, Run
from bridge.state.lease import HeldLease, Leases, lease_token
from bridge.state.model import ack_order, check_ack, forgotten

PREFIX = "static/state/"


class StorageState:
    """A ``bridge.state.StateStore`` over ``EngineStorage``."""

    def __init__(self, storage: EngineStorage, deployment: str) -> None:
        self.docs = Documents(storage)
        self._storage = storage
        self._deployment = deployment
        self._lock = threading.RLock()
        self._terms: dict[str, tuple[str, float]] = {}  # policy -> (token, monotonic expiry)
        self._held = Leases()

    def load(self, policy: str) -> PolicyRecord:
        with self._lock:
            record = self.docs.read(f"{PREFIX}records/{policy}", PolicyRecord)
            record = record or PolicyRecord(policy=policy)
            run = self.docs.read(f"{PREFIX}runs/{policy}", Run)
            return record if run is None else record.with_run(run)

    def save(self, record: PolicyRecord) -> PolicyRecord:
        with self._lock:
            held = self._held.fence(record.policy)
            if held is not None and not self._holds(record.policy, held.token):
                held.lose("the lease expired")
                raise LeaseLost(f"policy {record.policy!r}: the lease expired; nothing written")
            stored = self.docs.read(f"{PREFIX}records/{record.policy}", PolicyRecord)
            found = stored.version if stored else 0
            if found != record.version:
                raise StateConflict(
                    f"policy {record.policy!r}: expected version {record.version}, found {found}"
                )
            saved = record.model_copy(update={"version": found + 1})
            bare = saved.model_copy(
                update={"last_run_at": None, "last_error": None, "last_success_at": None}
            )
            self.docs.write(f"{PREFIX}records/{record.policy}", bare)
            return saved

    def policies(self) -> list[str]:
        return self.docs.names(f"{PREFIX}records/")

    @contextlib.contextmanager
    def lease(self, policy: str, owner: str, ttl: timedelta) -> Iterator[HeldLease]:
        token, sent_at = lease_token(owner), time.monotonic()
        with self._lock:
            terms = self._terms.get(policy)
            if terms is not None and terms[1] >= time.monotonic():
                raise LeaseHeld(f"policy {policy!r} is being reconciled")
            self._terms[policy] = (token, time.monotonic() + ttl.total_seconds())
        held = HeldLease(
            policy, token, ttl, renew=lambda: self._renew(policy, token, ttl), sent_at=sent_at
        )
        with self._held.hold(held, release=lambda: self._release(policy, token)) as lease:
            yield lease

    def _holds(self, policy: str, token: str) -> bool:
        terms = self._terms.get(policy)
        return terms is not None and terms[0] == token and terms[1] >= time.monotonic()

    def _renew(self, policy: str, token: str, ttl: timedelta) -> None:
        with self._lock:
            terms = self._terms.get(policy)
            if terms is None or terms[0] != token:
                raise LeaseLost("the lease is gone")
            self._terms[policy] = (token, time.monotonic() + ttl.total_seconds())

    def _release(self, policy: str, token: str) -> None:
        with self._lock:
            terms = self._terms.get(policy)
            if terms is not None and terms[0] == token:
                del self._terms[policy]

    def record_ack(self, policy: str, ack: Ack) -> None:
        check_ack(ack)
        with self._lock:
            held = self._acks(policy)
            held[(ack.consumer, ack.replica)] = ack
            replicas = [a for a in held.values() if a.consumer == ack.consumer]
            for old in forgotten(replicas, ack):
                del held[(old.consumer, old.replica)]
            text = json.dumps({f"{c}/{r}": a.model_dump(mode="json") for (c, r), a in held.items()})
            self._storage.put(f"{PREFIX}acks/{policy}", text.encode())

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> list[Ack]:
        with self._lock:
            found = [
                a
                for a in self._acks(policy).values()
                if consumers is None or a.consumer in consumers
            ]
        return sorted(found, key=ack_order)

    def _acks(self, policy: str) -> dict[tuple[str, str], Ack]:
        raw = self._storage.get(f"{PREFIX}acks/{policy}")
        entries = json.loads(raw) if raw else {}
        acks = [Ack.model_validate(value) for value in entries.values()]
        return {(a.consumer, a.replica): a for a in acks}

    def record_run(self, policy: str, at: datetime, error: str | None) -> None:
        with self._lock:
            before = self.docs.read(f"{PREFIX}runs/{policy}", Run)
            success = at if error is None else (before.last_success_at if before else None)
            run = Run(last_run_at=at, last_error=error, last_success_at=success)
            self.docs.write(f"{PREFIX}runs/{policy}", run)

    def deployment_id(self) -> str:
        return self._deployment

    def close(self) -> None:
        """Nothing to release: the storage belongs to the host."""


__all__ = ["StorageState"]
