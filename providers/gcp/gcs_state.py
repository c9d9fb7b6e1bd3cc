"""The GCS state backend: for deployments on Google Cloud that share no disk. Every datum
is one JSON object under the ``[state] prefix`` of one bucket; the objects are drawn in
``providers.gcp.gcs_layout``, the GCS calls and their errors are in
``providers.gcp.gcs_objects``. Every write passes ``if_generation_match`` (creation:
``0``), the compare-and-swap Terraform's GCS backend uses; nothing is ever deleted.

* **Compare-and-swap**: a record's ``version`` is a field of its object, counted up by one
  per save; the object's *generation* is the CAS token. A save of version ``v`` reads the
  object, requires it to hold version ``v`` (``0``: no object) and writes version
  ``v + 1`` with ``if_generation_match`` on the generation read, so of two savers from
  the same version one gets a 412 and reports ``StateConflict`` (unless the object it
  finds is its own write, recognised by ``write_id``).
* **Leases** are objects holding the holder's per-acquisition token and an expiry. The
  first acquisition creates it (``if_generation_match=0``); every later acquisition,
  renewal (every ttl/3, by ``bridge.state.lease``) and release is an overwrite matching
  the generation just read, so two runners never both take a free or expired lease and a
  runner that outlived its lease never renews or releases its successor's. A release
  writes an empty holder rather than deleting: fake-gcs-server ignores preconditions on
  deletes, and an unconditional delete could remove a successor's lease.
* **Fencing, honestly**: GCS has no transaction spanning two objects. A save of a policy
  whose lease this store holds checks locally first (``Leases.fence``), reads the record,
  then reads the lease object and requires that it still carries this acquisition's
  token and expires at least **ttl/3** from now on this store's clock, and only then
  sends the record's conditional write. A token is unique per acquisition, so the object
  carries it only if no one took the lease since. Failing either check nothing is
  written and ``LeaseLost`` is raised (a lease found taken over or expired is marked
  lost, so the engine makes no further call).

  The residual window: a successor takes the lease only once the stored expiry has passed
  on its own clock, so the record's write can land under a successor only if it reaches
  GCS more than ttl/3, less the clock skew between the runners, after the check (100 s
  with the default 5 min lease; each call gives up after ``TIMEOUT_S``, 10 s, but a sent
  request cannot be recalled). Even then the generation match serialises the two
  runners: the late write lands only if the successor has not saved since its load, and
  the successor's next save then fails with ``StateConflict`` instead of overwriting it;
  the engine survives that as it survives any lost state (the targets' markers are the
  second source of truth).
* **Runs** are an object of their own, read with the record by ``load`` and rewritten by
  ``record_run`` (generation match, retried), so a run never makes a record's CAS fail.
* **Acks**: all the replicas of a consumer share ``acks/<policy>/<consumer>.json``,
  read-modify-written on the generation read (retried a few times while sibling replicas
  write), so IAM can confine a consumer to its own object. ``acks`` reads objects by
  name, so it needs the consumer list.
* **The deployment id** is ``meta/deployment.json``, created with
  ``if_generation_match=0``: of two first callers the loser reads the winner's.

Errors (all ``StateError``; each names the object, never its content or a token)::

    StateError                  403 (the operation and the object), no such bucket, a
    │                           damaged object (naming the object and the policy)
    ├── StateConflict           the compare-and-swap lost
    ├── LeaseHeld               another runner holds the lease (names it and its expiry)
    ├── LeaseLost               a save under a lease this store no longer holds
    └── StateUnavailable        429, 5xx, unreachable, or an object that kept changing
                                under its retries (retryable)
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.config.gcp import GcsStateSettings
from bridge.errors import LeaseHeld, LeaseLost, StateConflict, StateError
from bridge.state import model
from bridge.state.documents import check_fence, own_lease, pause, reading
from bridge.state.lease import HeldLease, Leases, lease_token
from bridge.state.model import Ack, PolicyRecord, Run
from providers.gcp import gcs_layout as g
from providers.gcp.gcs_layout import PARSE_ERRORS, LeaseDocument
from providers.gcp.gcs_objects import (
    GcsObjects,
    GenerationMismatch,
    StateUnavailable,
    Stored,
    check_name,
)
from providers.gcp.gcs_objects import client as new_client

__all__ = ["GcsStateStore", "StateUnavailable"]

WRITE_ATTEMPTS = 8  # tries of an ack or a run while others rewrite the same object
ACQUIRE_ATTEMPTS = 3  # looks at a lease object that changed between its read and our write


class GcsStateStore:
    """Policy records, runs, leases, acks and the deployment id as GCS objects.

    Args:
        settings: The bucket, the prefix, and the endpoint (tests) or ADC.
        client: The process's ``storage.Client`` (the connection's; not closed here);
            default: one of this store's own, closed by ``close``.
        clock: The current instant, for lease expiry (tests move it); default UTC now.
        sleep: The pause between retries of a contended object (tests may skip it).
    """

    def __init__(
        self,
        settings: GcsStateSettings,
        client: Any = None,
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._own_client: Any = new_client(settings) if client is None else None
        self._objects = GcsObjects(settings, client if client is not None else self._own_client)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._token = secrets.token_hex(8)
        self._leases = Leases()

    def close(self) -> None:
        """Close the client if this store made it; a shared one is the connection's."""
        if self._own_client is not None:
            with contextlib.suppress(Exception):
                self._own_client.close()

    # -- records and runs --------------------------------------------------------------

    def load(self, policy: str) -> PolicyRecord:
        path = g.policy_path(check_name(policy, "policy"))
        record = PolicyRecord(policy=policy)
        found = self._objects.read(path)
        if found is not None:
            with self._reading(path, "record", policy):
                record = g.read_record(policy, g.decode(found.data))
        run_path = g.run_path(policy)
        run = self._objects.read(run_path)
        if run is not None:
            with self._reading(run_path, "last run", policy):
                record = record.with_run(g.read_run(g.decode(run.data)))
        return record

    def save(self, record: PolicyRecord) -> PolicyRecord:
        policy = check_name(record.policy, "policy")
        held = self._leases.fence(policy)
        stored = record.model_copy(update={"version": record.version + 1})
        document, path = g.record_document(stored, self._token), g.policy_path(policy)
        found = self._objects.read(path)
        if held is not None:  # a lost lease says so before any conflict
            self._check_holding(policy, held)
        seen = self._version(path, policy, found)
        if seen != record.version:
            message = f"policy {policy!r}: expected version {record.version}, found {seen}"
            raise StateConflict(message)
        try:
            self._objects.write(path, g.encode(document), generation=_generation(found))
        except GenerationMismatch as lost:
            again = self._objects.read(path)
            if again is not None:
                with contextlib.suppress(*PARSE_ERRORS):
                    if g.decode(again.data).get("write_id") == document["write_id"]:
                        return stored  # our own write, sent again after a lost response
            seen = self._version(path, policy, again)
            message = f"policy {policy!r}: expected version {record.version}, found {seen}"
            raise StateConflict(message) from lost
        return stored

    def _version(self, path: str, policy: str, found: Stored | None) -> int:
        if found is None:
            return 0
        with self._reading(path, "record", policy):
            return g.record_version(g.decode(found.data))
        raise AssertionError("unreachable")  # pragma: no cover - _reading raises

    def policies(self) -> list[str]:
        return sorted(self._objects.list(g.POLICIES))

    def record_run(self, policy: str, at: datetime, error: str | None) -> None:
        """Rewrite the run object (the record, and its version, are not touched). A damaged
        run object is replaced, losing only the ``last_success_at`` it held."""
        path = g.run_path(check_name(policy, "policy"))
        for attempt in range(WRITE_ATTEMPTS):
            found = self._objects.read(path)
            before = Run()
            if found is not None:
                with contextlib.suppress(*PARSE_ERRORS):
                    before = g.read_run(g.decode(found.data))
            success = at if error is None else before.last_success_at
            run = Run(last_run_at=at, last_error=error, last_success_at=success)
            with contextlib.suppress(GenerationMismatch):
                self._objects.write(
                    path, g.encode(g.run_document(run)), generation=_generation(found)
                )
                return
            self._pause(attempt)
        raise self._contended(path, "record a run")

    def deployment_id(self) -> str:
        """Read ``meta/deployment.json``; else create it with ``if_generation_match=0``
        and, if another runner created it first, take theirs."""
        path = g.DEPLOYMENT
        found = self._objects.read(path)
        if found is None:
            # Records and no id: a state from before ids (every backend keeps this rule).
            made = model.LEGACY_DEPLOYMENT_ID if self.policies() else model.new_deployment_id()
            try:
                self._objects.write(path, g.encode({"id": made}), generation=0)
                return made
            except GenerationMismatch:
                found = self._objects.read(path)
            if found is None:
                raise self._contended(path, "create the deployment id")
        with self._reading(path, "deployment id", None):
            return g.read_deployment(g.decode(found.data))
        raise AssertionError("unreachable")  # pragma: no cover - _reading raises

    # -- acknowledgements --------------------------------------------------------------

    def record_ack(self, policy: str, ack: Ack) -> None:
        """Read and rewrite the consumer's own object only: all its IAM grant needs."""
        model.check_ack(ack)
        path = self._ack_path(policy, ack.consumer)
        for attempt in range(WRITE_ATTEMPTS):
            found = self._objects.read(path)
            held: dict[str, object] = {}
            if found is not None:
                with self._reading(path, f"acks of consumer {ack.consumer!r}", policy):
                    held = dict(g.replicas(g.decode(found.data)))
            held[ack.replica] = g.ack_value(ack)
            for replica in self._oldest(ack, held):
                del held[replica]
            data = g.encode({"replicas": held})
            with contextlib.suppress(GenerationMismatch):  # a sibling replica wrote: again
                self._objects.write(path, data, generation=_generation(found))
                return
            self._pause(attempt)
        raise self._contended(path, "record an ack")

    def _oldest(self, ack: Ack, held: dict[str, object]) -> list[str]:
        """The replicas to drop past ``REPLICAS_KEPT``: values too damaged to read first,
        then those heard from longest ago (never ``ack``'s own)."""
        acks: list[Ack] = []
        damaged: list[str] = []
        for replica, value in held.items():
            try:
                acks.append(g.read_ack(ack.consumer, replica, value))
            except PARSE_ERRORS:
                damaged.append(replica)
        over = len(held) - model.REPLICAS_KEPT
        return damaged[: max(0, over)] + [a.replica for a in model.forgotten(acks, ack)]

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> list[Ack]:
        if consumers is None:
            why = "keeps one ack object per consumer (for IAM conditions) and reads them by name"
            raise StateError(f"the GCS state backend {why}: pass the consumers of {policy!r}")
        found: list[Ack] = []
        for consumer in dict.fromkeys(consumers):
            path = self._ack_path(policy, consumer)
            stored = self._objects.read(path)
            if stored is not None:
                with self._reading(path, f"acks of consumer {consumer!r}", policy):
                    found += g.read_acks(consumer, g.decode(stored.data))
        return sorted(found, key=model.ack_order)

    @staticmethod
    def _ack_path(policy: str, consumer: str) -> str:
        policy = check_name(policy, "policy")
        return g.ack_path(policy, check_name(consumer, "consumer", nested=True))

    # -- leases ------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, policy: str, owner: str, ttl: timedelta) -> Iterator[HeldLease]:
        path = g.lease_path(check_name(policy, "policy"))
        me, sent_at = lease_token(owner), time.monotonic()
        self._acquire(policy, path, me, ttl)
        held = HeldLease(policy, me, ttl, renew=lambda: self._renew(path, me, ttl), sent_at=sent_at)
        with self._leases.hold(held, release=lambda: self._release(path, me)) as lease:
            yield lease

    def _acquire(self, policy: str, path: str, me: str, ttl: timedelta) -> None:
        for _ in range(ACQUIRE_ATTEMPTS):
            found = self._objects.read(path)
            now = self._clock()
            if found is not None:
                with self._reading(path, "lease", policy):
                    lease = g.read_lease(g.decode(found.data))
                if not lease.free(now, me):
                    until = datetime.fromtimestamp(lease.expires_ms / 1000, UTC).isoformat()
                    raise LeaseHeld(
                        f"policy {policy!r} is being reconciled by {lease.owner} "
                        f"(lease expires {until})"
                    )
            data = g.encode(g.lease_document(me, now + ttl))
            with contextlib.suppress(GenerationMismatch):  # someone wrote it since: look again
                self._objects.write(path, data, generation=_generation(found))
                return
        raise LeaseHeld(f"policy {policy!r}: its lease kept changing hands while being taken")

    def _renew(self, path: str, me: str, ttl: timedelta) -> None:
        """Extend the lease by ``ttl`` from now, only while it is still ours."""
        found = self._objects.read(path)
        self._ours(found, me)
        data = g.encode(g.lease_document(me, self._clock() + ttl))
        try:
            self._objects.write(path, data, generation=_generation(found))
        except GenerationMismatch as lost:
            # Only a successor writes it meanwhile (or our write, sent again): which one?
            try:
                self._ours(self._objects.read(path), me)
            except LeaseLost as gone:
                raise gone from lost

    def _release(self, path: str, me: str) -> None:
        """Overwrite with an empty holder, only while still ours (never a delete)."""
        found = self._objects.read(path)
        with contextlib.suppress(LeaseLost, GenerationMismatch):
            self._ours(found, me)
            self._objects.write(path, g.encode(g.RELEASED), generation=_generation(found))

    def _check_holding(self, policy: str, held: HeldLease) -> None:
        """The fence of a save (see the module docstring): the lease object still carries
        ``held``'s token and expires at least ttl / FENCE_SHARE from now."""
        check_fence(
            policy,
            held,
            lambda: self._ours(self._objects.read(g.lease_path(policy)), held.token),
            self._clock,
        )

    @staticmethod
    def _ours(found: Stored | None, me: str) -> LeaseDocument:
        """The lease in ``found``, if ``me`` holds it.

        Raises:
            LeaseLost: saying why not (gone, unreadable, or whose it is now).
        """
        read = None if found is None else (lambda: g.decode(found.data))
        return own_lease(read, me, "object")

    # -- inside ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self, path: str, what: str, policy: str | None) -> Iterator[None]:
        """Make a failure to read object ``path`` one ``StateError`` line naming it."""
        restore = "restore it from a backup (object versioning), or delete it"
        with reading(self._objects.where(path), what, policy, restore):
            yield

    def _pause(self, attempt: int) -> None:
        pause(attempt, self._sleep)

    def _contended(self, path: str, doing: str) -> StateUnavailable:
        return StateUnavailable(
            f"{self._objects.where(path)} kept changing under {WRITE_ATTEMPTS} attempts to "
            f"{doing}; retry later"
        )


def _generation(found: Stored | None) -> int:
    """The precondition of a write following the read of ``found`` (``0``: no object)."""
    return found.generation if found is not None else 0
