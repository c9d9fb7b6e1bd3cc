"""The Vault / OpenBao state backend: for deployments that keep their secrets in Vault and
share no disk. Every datum is a KV v2 entry under one folder of one mount (``[state]
mount``, ``path``); the entries are drawn in ``providers.vault.state_entries``, the KV calls
and their errors are in ``providers.vault.state_kv``. Every write passes ``cas`` (creation:
``cas = 0``), so a mount with ``cas_required = true`` works as any other.

* **Compare-and-swap**: a record's ``version`` is its entry's KV version. A never-saved
  policy loads at version 0 and its first save writes with ``cas = 0``, which Vault turns
  into version 1; a save of version ``v`` writes with ``cas = v``. Vault refuses a ``cas``
  that does not match the current version, and the store reports ``StateConflict``
  (unless the entry it finds is its own write, recognised by ``write_id``). A record whose
  latest version was deleted by hand loads empty at that version: state lost, which the
  engine rebuilds from the targets.
* **Leases** are entries holding the holder's per-acquisition token and an expiry. Each
  acquisition, renewal (every ttl/3, by ``bridge.state.lease``) and release is a ``cas``
  write on the version just read, so two runners never both take a free or expired lease
  and a runner that outlived its lease never renews or releases its successor's.
* **Fencing, honestly**: KV v2 has no transaction spanning two entries, so a save under a
  lease cannot be one atomic step with the lease check, as DynamoDB's is. A save of a
  policy whose lease this store holds checks locally first (``Leases.fence``), then reads
  the lease entry and requires that it still carries this acquisition's token and expires
  at least **ttl/3** from now on this store's clock (by the configuration's own check, at
  least the longest LangSmith call), and only then sends the record's ``cas`` write. A
  token is unique per acquisition, so the entry carries it only if no one took the lease
  since. Failing either check nothing is written and ``LeaseLost`` is raised (and a lease
  found taken over or expired is marked lost, so the engine makes no further call).

  The residual window: a successor takes the lease only once the stored expiry has passed
  on its own clock, so the record's write can land under a successor only if it reaches
  Vault more than ttl/3, less the clock skew between the runners, after the check (100 s
  with the default 5 min lease; the client stops waiting after its ``timeout``, 10 s by
  default, but cannot recall a request already sent). Even then the record's ``cas``
  serialises the two runners: the late write lands only if the successor has not saved
  since its load, and the successor's next save then fails with ``StateConflict`` instead
  of overwriting it. What the successor did in between it did from a record missing the
  late write, the case the engine survives for any lost state (the targets, whose
  markers name what they serve, are the second source of truth), and the late runner
  started that side effect only while its lease outlasted the call
  (``Executor.ensure_lease``). Keep the TTL well above clock skew and request latency.
* **Runs** are an entry of their own, read with the record by ``load`` and rewritten by
  ``record_run`` (``cas``, retried), so a run never makes a record's CAS fail.
* **Acks**: all the replicas of a consumer share the entry ``acks/<policy>/<consumer>``,
  rewritten with ``cas`` on the version read (retried a few times while sibling replicas
  write), so a Vault policy can confine a consumer to exactly its own entry::

      path "<mount>/data/<folder>/acks/<policy>/<consumer>" {
        capabilities = ["create", "update", "read"]
      }

  ``acks`` reads entries by name, so it needs the consumer list.
* **The deployment id** is ``meta/deployment``, created with ``cas = 0``: of two first
  callers the loser reads the winner's.

Errors (all ``StateError``; each names the entry or API path, never its content or a token)::

    StateError                  403 (the operation and the path), no such mount, a KV v1
    │                           mount, a damaged entry (naming the entry and the policy)
    ├── StateConflict           the compare-and-swap lost
    ├── LeaseHeld               another runner holds the lease (names it and its expiry)
    ├── LeaseLost               a save under a lease this store no longer holds
    └── StateUnavailable        429, 5xx, sealed, unreachable, or an entry that kept
                                changing under its retries (retryable)
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

from bridge.config.vault import VaultStateSettings
from bridge.errors import LeaseHeld, LeaseLost, StateConflict, StateError
from bridge.state import model
from bridge.state.documents import check_fence, own_lease, pause, reading
from bridge.state.lease import HeldLease, Leases, lease_token
from bridge.state.model import Ack, PolicyRecord, Run
from providers.vault import state_entries as e
from providers.vault.client import VaultClients
from providers.vault.state_entries import PARSE_ERRORS, LeaseEntry
from providers.vault.state_kv import CasMismatch, Entry, StateKv, StateUnavailable, check_name

__all__ = ["StateUnavailable", "VaultStateStore"]

WRITE_ATTEMPTS = 8  # tries of an ack or a run while others rewrite the same entry
ACQUIRE_ATTEMPTS = 3  # looks at a lease entry that changed between its read and our write


class VaultStateStore:
    """Policy records, runs, leases, acks and the deployment id as KV v2 entries.

    Args:
        settings: The KV v2 mount, the folder and the namespace.
        clients: The process's authenticated Vault clients (the connection's; not closed here).
        clock: The current instant, for lease expiry (tests move it); default UTC now.
        sleep: The pause between retries of a contended entry (tests may skip it).
    """

    def __init__(
        self,
        settings: VaultStateSettings,
        clients: VaultClients,
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._kv = StateKv(settings, clients)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._token = secrets.token_hex(8)
        self._leases = Leases()

    def close(self) -> None:
        """Nothing to release: the clients belong to the connection, which closes them."""

    # -- records and runs --------------------------------------------------------------

    def load(self, policy: str) -> PolicyRecord:
        path = e.policy_path(check_name(policy, "policy"))
        record = PolicyRecord(policy=policy)
        entry = self._kv.read(path)
        if entry is not None:
            record = record.model_copy(update={"version": entry.version})
            if entry.data is not None:
                with self._reading(path, "record", policy):
                    record = e.read_record(policy, entry.version, entry.data)
        run_path = e.run_path(policy)
        run = self._kv.read(run_path)
        if run is not None and run.data is not None:
            with self._reading(run_path, "last run", policy):
                record = record.with_run(e.read_run(run.data))
        return record

    def save(self, record: PolicyRecord) -> PolicyRecord:
        policy = check_name(record.policy, "policy")
        held = self._leases.fence(policy)
        stored = record.model_copy(update={"version": record.version + 1})
        data, path = e.record_data(stored, self._token), e.policy_path(policy)
        if held is not None:
            self._check_holding(policy, held)
        try:
            self._kv.write(path, data, cas=record.version)  # Vault makes it version + 1
        except CasMismatch as lost:
            found = self._kv.read(path)
            seen = found.version if found is not None else 0
            written = found.data if found is not None and seen == stored.version else None
            if written is not None and written.get("write_id") == data["write_id"]:
                return stored  # our own write, sent again after a lost response
            message = f"policy {policy!r}: expected version {record.version}, found {seen}"
            raise StateConflict(message) from lost
        return stored

    def policies(self) -> list[str]:
        return sorted(self._kv.list(e.POLICIES))

    def record_run(self, policy: str, at: datetime, error: str | None) -> None:
        """Rewrite the run entry (the record, and its version, are not touched). A damaged
        run entry is replaced, losing only the ``last_success_at`` it held."""
        path = e.run_path(check_name(policy, "policy"))
        for attempt in range(WRITE_ATTEMPTS):
            entry = self._kv.read(path)
            before = Run()
            if entry is not None and entry.data is not None:
                with contextlib.suppress(*PARSE_ERRORS):
                    before = e.read_run(entry.data)
            success = at if error is None else before.last_success_at
            run = Run(last_run_at=at, last_error=error, last_success_at=success)
            with contextlib.suppress(CasMismatch):
                self._kv.write(path, e.run_data(run), cas=_cas(entry))
                return
            self._pause(attempt)
        raise self._contended(path, "record a run")

    def deployment_id(self) -> str:
        """Read ``meta/deployment``; else create it with ``cas = 0`` and, if another runner
        created it first, take theirs."""
        path = e.DEPLOYMENT
        entry = self._kv.read(path)
        if entry is None or entry.data is None:
            # Records and no id: a state from before ids (every backend keeps this rule),
            # whose keys were marked with the legacy instance.
            made = model.LEGACY_DEPLOYMENT_ID if self.policies() else model.new_deployment_id()
            try:
                self._kv.write(path, {"id": made}, cas=_cas(entry))
                return made
            except CasMismatch:
                entry = self._kv.read(path)
            if entry is None or entry.data is None:
                raise self._contended(path, "create the deployment id")
        with self._reading(path, "deployment id", None):
            return e.read_deployment(entry.data)

    # -- acknowledgements --------------------------------------------------------------

    def record_ack(self, policy: str, ack: Ack) -> None:
        """Read and rewrite the consumer's own entry only: all its Vault policy needs."""
        model.check_ack(ack)
        path = self._ack_path(policy, ack.consumer)
        for attempt in range(WRITE_ATTEMPTS):
            entry = self._kv.read(path)
            held: dict[str, object] = {}
            if entry is not None and entry.data is not None:
                with self._reading(path, f"acks of consumer {ack.consumer!r}", policy):
                    held = dict(e.replicas(entry.data))
            held[ack.replica] = e.ack_entry(ack)
            for replica in self._oldest(ack, held):
                del held[replica]
            with contextlib.suppress(CasMismatch):  # a sibling replica wrote meanwhile: again
                self._kv.write(path, e.replicas_data(held), cas=_cas(entry))
                return
            self._pause(attempt)
        raise self._contended(path, "record an ack")

    def _oldest(self, ack: Ack, held: dict[str, object]) -> list[str]:
        """The replicas to drop past ``REPLICAS_KEPT``: entries too damaged to read first,
        then those heard from longest ago (never ``ack``'s own)."""
        acks: list[Ack] = []
        damaged: list[str] = []
        for replica, value in held.items():
            try:
                acks.append(e.read_ack(ack.consumer, replica, value))
            except PARSE_ERRORS:
                damaged.append(replica)
        over = len(held) - model.REPLICAS_KEPT
        return damaged[: max(0, over)] + [a.replica for a in model.forgotten(acks, ack)]

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> list[Ack]:
        if consumers is None:
            why = "keeps one ack entry per consumer (for Vault policies) and reads them by name"
            raise StateError(f"the Vault state backend {why}: pass the consumers of {policy!r}")
        found: list[Ack] = []
        for consumer in dict.fromkeys(consumers):
            path = self._ack_path(policy, consumer)
            entry = self._kv.read(path)
            if entry is not None and entry.data is not None:
                with self._reading(path, f"acks of consumer {consumer!r}", policy):
                    found += e.read_acks(consumer, entry.data)
        return sorted(found, key=model.ack_order)

    @staticmethod
    def _ack_path(policy: str, consumer: str) -> str:
        policy = check_name(policy, "policy")
        return e.ack_path(policy, check_name(consumer, "consumer", nested=True))

    # -- leases ------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, policy: str, owner: str, ttl: timedelta) -> Iterator[HeldLease]:
        # A token per acquisition: two stores, or two threads, never share a lease even
        # when the caller gives them the same owner string.
        path = e.lease_path(check_name(policy, "policy"))
        me, sent_at = lease_token(owner), time.monotonic()
        self._acquire(policy, path, me, ttl)
        held = HeldLease(policy, me, ttl, renew=lambda: self._renew(path, me, ttl), sent_at=sent_at)
        with self._leases.hold(held, release=lambda: self._release(path, me)) as lease:
            yield lease

    def _acquire(self, policy: str, path: str, me: str, ttl: timedelta) -> None:
        for _ in range(ACQUIRE_ATTEMPTS):
            entry = self._kv.read(path)
            now = self._clock()
            if entry is not None and entry.data is not None:
                with self._reading(path, "lease", policy):
                    found = e.read_lease(entry.data)
                if not found.free(now, me):
                    until = datetime.fromtimestamp(found.expires_ms / 1000, UTC).isoformat()
                    raise LeaseHeld(
                        f"policy {policy!r} is being reconciled by {found.owner} "
                        f"(lease expires {until})"
                    )
            with contextlib.suppress(CasMismatch):  # someone wrote it since: look again
                self._kv.write(path, e.lease_data(me, now + ttl), cas=_cas(entry))
                return
        raise LeaseHeld(f"policy {policy!r}: its lease kept changing hands while being taken")

    def _renew(self, path: str, me: str, ttl: timedelta) -> None:
        """Extend the lease by ``ttl`` from now, only while it is still ours."""
        entry = self._kv.read(path)
        self._ours(entry, me)
        try:
            self._kv.write(path, e.lease_data(me, self._clock() + ttl), cas=_cas(entry))
        except CasMismatch as lost:
            # Only a successor writes it meanwhile (or our write, sent again): which one?
            try:
                self._ours(self._kv.read(path), me)
            except LeaseLost as gone:
                raise gone from lost

    def _release(self, path: str, me: str) -> None:
        # Only while still ours: past its expiry another runner may have taken it over.
        entry = self._kv.read(path)
        with contextlib.suppress(LeaseLost, CasMismatch):
            self._ours(entry, me)
            self._kv.write(path, e.RELEASED, cas=_cas(entry))

    def _check_holding(self, policy: str, held: HeldLease) -> None:
        """The fence of a save (see the module docstring): the lease entry still carries
        ``held``'s token and expires at least ttl / FENCE_SHARE from now."""
        check_fence(
            policy,
            held,
            lambda: self._ours(self._kv.read(e.lease_path(policy)), held.token),
            self._clock,
        )

    @staticmethod
    def _ours(entry: Entry | None, me: str) -> LeaseEntry:
        """The lease in ``entry``, if ``me`` holds it.

        Raises:
            LeaseLost: saying why not (gone, unreadable, or whose it is now).
        """
        data = None if entry is None else entry.data
        return own_lease(None if data is None else (lambda: data), me, "entry")

    # -- inside ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self, path: str, what: str, policy: str | None) -> Iterator[None]:
        """Make a failure to read entry ``path`` one ``StateError`` line naming it."""
        restore = "restore it from a backup, or delete it"
        with reading(self._kv.where(path), what, policy, restore):
            yield

    def _pause(self, attempt: int) -> None:
        pause(attempt, self._sleep)

    def _contended(self, path: str, doing: str) -> StateUnavailable:
        return StateUnavailable(
            f"{self._kv.where(path)} kept changing under {WRITE_ATTEMPTS} attempts to {doing}; "
            "retry later"
        )


def _cas(entry: Entry | None) -> int:
    """The ``cas`` of a write following the read of ``entry`` (``0``: it does not exist)."""
    return entry.version if entry is not None else 0
