"""The embedded default state backend: one SQLite database (WAL mode) on a local disk.

A ``save`` is one compare-and-swap statement on one row, so its cost does not grow with the
number of policies (the JSON-era backend rewrote and fsynced the whole state every time).
SQLite's write-ahead log makes every commit atomic and, with ``synchronous = FULL``,
durable once it returned; a process killed at any instant leaves the last commit in place.
The schema and SQLite's error mapping are in ``sqlite_schema``; creating the database and
importing a legacy JSON state (losing none of it) in ``migrate``.

Concurrency:

* Threads of one store each get their own connection, so reads run beside a writer's
  fsync, and writers of one store queue on a lock of the store. Measured with 16 threads
  (``benchmarks/bench_state.py --models``): writers meeting only in SQLite's busy handler,
  which sleeps and polls, starve some saves for 50 to 200 ms; one shared connection is
  no faster and makes every read wait behind a writer's fsync.
* Other stores and other processes wait on SQLite's write lock for up to ``busy_timeout``
  seconds; past it a write fails with the retryable ``StateBusy``.
* A lease is an OS lock (``flock``) on ``<path>.locks/<policy>.lease``, held for the
  ``with`` block. The kernel drops a dead process's locks, so a runner killed with SIGKILL
  never leaves a lease behind, and its TTL is not needed. For the same reason the lease is
  never lost while the process lives: the lock cannot expire and no one can take it over,
  so it needs no renewal (no thread), its ``remaining`` is ``timedelta.max``, and a save
  under it needs no condition beyond the compare-and-swap (the lock is the fence).

Acks are one row per (policy, consumer, replica) and run outcomes one row per policy in
tables of their own, so neither changes a record's version. A damaged row (text that is
not JSON, or not UTF-8) fails with one ``StateError`` naming the file and the policy; the
other policies' rows still load.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from bridge.errors import LeaseHeld, StateConflict, StateError
from bridge.state import sqlite_schema as schema
from bridge.state.lease import HeldLease, Leases, lease_token
from bridge.state.locks import locks_folder, open_lock
from bridge.state.migrate import ensure_database
from bridge.state.model import (
    DEPLOYMENT_ID,
    LEGACY_DEPLOYMENT_ID,
    REPLICAS_KEPT,
    Ack,
    PolicyRecord,
    Run,
    ack_order,
    check_ack,
    forgotten,
    new_deployment_id,
)
from bridge.state.sqlite_schema import StateBusy

__all__ = ["FileStateStore", "StateBusy"]

BUSY_TIMEOUT_S = 10.0


class FileStateStore:
    """State in the SQLite database ``path``; lock files live beside it in ``<path>.locks/``.

    Args:
        path: The database file. Created (with its folder, mode 0600) on the first write; a
            legacy JSON state found there or under the old ``.json`` name is imported.
        busy_timeout: Seconds a write waits for another process's write to finish.
    """

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self._locks = locks_folder(path)
        self._busy_timeout = busy_timeout
        self._ready = False  # the database exists and is checked; never unset
        self._setup_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        self._leases = Leases()

    # -- connections -------------------------------------------------------------------

    def _has_database(self, *, create: bool) -> bool:
        """Whether the database exists, made so first if ``create`` (or a legacy state is
        there to import). Readers pass ``False``: reading a brand-new state creates nothing."""
        if not self._ready:
            with self._setup_lock:
                self._ready = self._ready or ensure_database(self.path, create=create)
        return self._ready

    def _thread_connection(self) -> sqlite3.Connection:
        """This thread's connection to the database, opened on its first use."""
        me = threading.current_thread()
        with self._setup_lock:
            conn = self._connections.get(me)
            if conn is None:
                self._close_finished_threads()
                conn = schema.connect(self.path, busy_timeout=self._busy_timeout)
                self._connections[me] = conn
        return conn

    def _close_finished_threads(self) -> None:
        """Close the connections of threads that ended (a pool's workers come and go)."""
        for thread in [t for t in self._connections if not t.is_alive()]:
            self._connections.pop(thread).close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        try:
            yield self._thread_connection() if self._has_database(create=False) else None
        except sqlite3.Error as exc:
            raise schema.sql_error(self.path, exc, "read") from exc

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            self._has_database(create=True)
            try:
                yield self._thread_connection()
            except sqlite3.Error as exc:
                raise schema.sql_error(self.path, exc, "written") from exc

    def close(self) -> None:
        """Close every connection; the store opens new ones if it is used again."""
        with self._setup_lock:
            connections, self._connections = self._connections, {}
        for conn in connections.values():
            conn.close()

    # -- reading -----------------------------------------------------------------------

    def load(self, policy: str) -> PolicyRecord:
        with _about(policy), self._reading() as conn:
            row = conn.execute(schema.SELECT_POLICY_AND_RUN, (policy,)).fetchone() if conn else None
        if row is None:
            return PolicyRecord(policy=policy)
        text, has_run, *run = row
        record = PolicyRecord(policy=policy)
        if text is not None:
            try:
                record = PolicyRecord.model_validate_json(text)
            except ValidationError as exc:
                raise self._malformed(f"record of {policy!r}", exc) from exc
        if has_run is None:
            return record
        try:
            fields = dict(zip(("last_run_at", "last_error", "last_success_at"), run, strict=True))
            return record.with_run(Run.model_validate(fields))
        except ValidationError as exc:
            raise self._malformed(f"last run of {policy!r}", exc) from exc

    def policies(self) -> list[str]:
        with self._reading() as conn:
            rows = conn.execute(schema.SELECT_NAMES).fetchall() if conn else []
        return sorted(name for (name,) in rows)

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> list[Ack]:
        with _about(policy), self._reading() as conn:
            rows = conn.execute(schema.SELECT_ACKS, (policy,)).fetchall() if conn else []
        wanted = None if consumers is None else set(consumers)
        found = []
        for consumer, replica, text in rows:
            if wanted is None or consumer in wanted:
                try:
                    found.append(Ack.model_validate_json(text))
                except ValidationError as exc:
                    what = f"ack of {policy!r} by {consumer!r} replica {replica!r}"
                    raise self._malformed(what, exc) from exc
        return sorted(found, key=ack_order)

    def _malformed(self, what: str, exc: ValidationError) -> StateError:
        return StateError(f"state file {self.path}: {what} is malformed ({_first(exc)})")

    # -- writing -----------------------------------------------------------------------

    def save(self, record: PolicyRecord) -> PolicyRecord:
        # Under this store's lease the flock is the fence: held by this process, it cannot
        # lapse; ``fence`` only refuses a save through a lease this store already released.
        self._leases.fence(record.policy)
        stored = record.model_copy(update={"version": record.version + 1})
        text = stored.model_dump_json()
        with self._writing() as conn:
            # One statement, so one atomic transaction: the row changes only if its
            # version is still the one read (or, for a new policy, if there is no row).
            if record.version == 0:
                args: tuple[object, ...] = (record.policy, stored.version, text)
                cursor = conn.execute(schema.INSERT_NEW_POLICY, args)
            else:
                args = (stored.version, text, record.policy, record.version)
                cursor = conn.execute(schema.UPDATE_POLICY, args)
            if cursor.rowcount != 1:
                # Read after the failed write, for the message only: it may be newer still.
                row = conn.execute(schema.SELECT_POLICY, (record.policy,)).fetchone()
                raise StateConflict(
                    f"policy {record.policy!r}: expected version {record.version}, "
                    f"found {row[0] if row else 0}"
                )
        return stored

    def record_ack(self, policy: str, ack: Ack) -> None:
        check_ack(ack)
        row = (policy, ack.consumer, ack.replica, ack.model_dump_json())
        with self._writing() as conn, _transaction(conn):
            conn.execute(schema.UPSERT_ACK, row)
            (count,) = conn.execute(schema.COUNT_REPLICAS, (policy, ack.consumer)).fetchone()
            if count > REPLICAS_KEPT:
                self._forget_replicas(conn, policy, ack)

    def _forget_replicas(self, conn: sqlite3.Connection, policy: str, kept: Ack) -> None:
        """Drop the consumer's replicas heard from longest ago (damaged rows first)."""
        held, damaged = [], []
        for replica, text in conn.execute(schema.SELECT_REPLICAS, (policy, kept.consumer)):
            try:
                held.append(Ack.model_validate_json(text))
            except ValidationError:
                damaged.append(replica)
        drop = damaged + [a.replica for a in forgotten(held, kept)]
        for replica in drop:
            conn.execute(schema.DELETE_ACK, (policy, kept.consumer, replica))

    def record_run(self, policy: str, at: datetime, error: str | None) -> None:
        run = Run(last_run_at=at, last_error=error, last_success_at=at if error is None else None)
        fields = run.model_dump(mode="json")
        row = (policy, fields["last_run_at"], fields["last_error"], fields["last_success_at"])
        with self._writing() as conn:
            conn.execute(schema.UPSERT_RUN, row)

    def deployment_id(self) -> str:
        with self._reading() as conn:
            row = (
                conn.execute(schema.SELECT_META, (schema.DEPLOYMENT_KEY,)).fetchone()
                if conn
                else None
            )
        if row is None:
            with self._writing() as conn:
                conn.execute(schema.INSERT_DEPLOYMENT, (LEGACY_DEPLOYMENT_ID, new_deployment_id()))
                row = conn.execute(schema.SELECT_META, (schema.DEPLOYMENT_KEY,)).fetchone()
        value = row[0] if row else None
        if not isinstance(value, str) or not DEPLOYMENT_ID.fullmatch(value):
            raise StateError(
                f"state file {self.path}: the deployment id is malformed; restore the state "
                "from a backup, or delete the meta row 'deployment_id' to have a new one made"
            )
        return value

    # -- leases ------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, policy: str, owner: str, ttl: timedelta) -> Iterator[HeldLease]:
        # The OS lock lives as long as the process does, so ``ttl`` is not needed here.
        del ttl
        fd = open_lock(self._locks / f"{policy}.lease")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LeaseHeld(f"policy {policy!r} is being reconciled by another runner") from None
        held = HeldLease(policy, lease_token(owner), None)
        # closing the descriptor releases the lock
        with self._leases.hold(held, release=lambda: os.close(fd)) as lease:
            yield lease


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """The block's statements as one transaction, holding the write lock from its start."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextlib.contextmanager
def _about(policy: str) -> Iterator[None]:
    """Make a ``StateError`` of the block name ``policy`` (same type: retryable stays so)."""
    try:
        yield
    except StateError as exc:
        if repr(policy) in str(exc):
            raise
        raise type(exc)(f"{exc} (reading policy {policy!r})") from exc


def _first(exc: ValidationError) -> str:
    """The first problem pydantic found, without the input (which could be anything)."""
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]
