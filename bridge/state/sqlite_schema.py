"""The file backend's SQLite database: its schema, how a connection is opened and checked,
how a complete database is built in a new file, and how SQLite's failures map onto
``StateError``.

Four tables (records stay the pydantic JSON, compact; the version column drives CAS)::

    policies (name TEXT PRIMARY KEY, version INTEGER, record TEXT)
    acks     (policy TEXT, consumer TEXT, replica TEXT, ack TEXT,
              PRIMARY KEY (policy, consumer, replica))
    runs     (policy TEXT PRIMARY KEY, last_run_at TEXT, last_error TEXT,
              last_success_at TEXT)          ISO 8601 instants; apart from the CAS'd record
    meta     (key TEXT PRIMARY KEY, value TEXT)     the deployment id; where a legacy JSON
                                                    state came from

``PRAGMA application_id`` marks the file as ours and ``PRAGMA user_version`` is the schema
version, so a foreign or future database is refused instead of written to. An older schema
is upgraded in place by ``upgrade``, in one transaction (a crash leaves the old one whole):

    1 -> 2   acks gain a replica column (existing acks become replica ``default``, none is
             lost); the runs table is created. Bridges that know only schema 1 then refuse
             the file with "upgrade the bridge", rather than write to it.

Errors (all ``StateError``, the message naming the file)::

    StateError      unreadable, corrupt, foreign or unwritable database
    └── StateBusy   another writer kept the write lock past the busy timeout (retryable)
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from bridge.errors import StateError
from bridge.fsutil import fsync_path as fsync_file  # a step of its own: tests pause it

MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
APPLICATION_ID = 0x4C534272  # "LSBr": this file is a langsmith-bridge state
SCHEMA_VERSION = 2

_ACKS = """CREATE TABLE acks (
    policy TEXT NOT NULL,
    consumer TEXT NOT NULL,
    replica TEXT NOT NULL,
    ack TEXT NOT NULL,
    PRIMARY KEY (policy, consumer, replica)
)"""
_RUNS = """CREATE TABLE runs (
    policy TEXT PRIMARY KEY NOT NULL,
    last_run_at TEXT,
    last_error TEXT,
    last_success_at TEXT
)"""
_SCHEMA = f"""
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
CREATE TABLE policies (
    name TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    record TEXT NOT NULL
);
{_ACKS};
{_RUNS};
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
"""
_UPGRADES: dict[int, tuple[str, ...]] = {
    # from version 1: acks keyed by replica too (the old ones are replica 'default'); runs
    1: (
        "ALTER TABLE acks RENAME TO acks_v1",
        _ACKS,
        "INSERT INTO acks (policy, consumer, replica, ack)"
        " SELECT policy, consumer, 'default', ack FROM acks_v1",
        "DROP TABLE acks_v1",
        _RUNS,
    ),
}

INSERT_POLICY = "INSERT INTO policies (name, version, record) VALUES (?, ?, ?)"
INSERT_NEW_POLICY = INSERT_POLICY + " ON CONFLICT (name) DO NOTHING"
UPDATE_POLICY = "UPDATE policies SET version = ?, record = ? WHERE name = ? AND version = ?"
SELECT_POLICY = "SELECT version, record FROM policies WHERE name = ?"
# One statement, so one snapshot: the record and the run of one policy, either may be NULL.
SELECT_POLICY_AND_RUN = """SELECT p.record, r.policy, r.last_run_at, r.last_error,
    r.last_success_at
FROM (SELECT ?1 AS name) AS wanted
LEFT JOIN policies AS p ON p.name = wanted.name
LEFT JOIN runs AS r ON r.policy = wanted.name"""
SELECT_NAMES = "SELECT name FROM policies"
INSERT_ACK = "INSERT INTO acks (policy, consumer, replica, ack) VALUES (?, ?, ?, ?)"
UPSERT_ACK = (
    INSERT_ACK + " ON CONFLICT (policy, consumer, replica) DO UPDATE SET ack = excluded.ack"
)
SELECT_ACKS = "SELECT consumer, replica, ack FROM acks WHERE policy = ? ORDER BY consumer, replica"
SELECT_REPLICAS = "SELECT replica, ack FROM acks WHERE policy = ? AND consumer = ?"
COUNT_REPLICAS = "SELECT count(*) FROM acks WHERE policy = ? AND consumer = ?"
DELETE_ACK = "DELETE FROM acks WHERE policy = ? AND consumer = ? AND replica = ?"
UPSERT_RUN = """INSERT INTO runs (policy, last_run_at, last_error, last_success_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (policy) DO UPDATE SET
    last_run_at = excluded.last_run_at,
    last_error = excluded.last_error,
    last_success_at = coalesce(excluded.last_success_at, runs.last_success_at)"""
SELECT_META = "SELECT value FROM meta WHERE key = ?"
_INSERT_META = "INSERT INTO meta (key, value) VALUES (?, ?)"
DEPLOYMENT_KEY = "deployment_id"
# Atomic get-or-create: ?1 when policy records exist already (a state of an older version),
# else ?2; never replaces an id another writer created first.
INSERT_DEPLOYMENT = """INSERT INTO meta (key, value)
SELECT 'deployment_id', CASE WHEN EXISTS (SELECT 1 FROM policies) THEN ?1 ELSE ?2 END
WHERE true
ON CONFLICT (key) DO NOTHING"""


class StateBusy(StateError):
    """Another writer held the database's write lock for longer than the busy timeout."""

    retryable = True


def is_database(path: Path) -> bool:
    """Whether ``path`` starts like a SQLite database; ``False`` when it does not exist.

    Raises:
        StateError: ``path`` exists but cannot be read (permissions, a folder).
    """
    try:
        with path.open("rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StateError(f"state file {path} cannot be read: {exc.strerror}") from exc


def connect(path: Path, *, busy_timeout: float) -> sqlite3.Connection:
    """A checked connection to the existing state database at ``path``.

    Autocommit (``isolation_level=None``): every statement is its own transaction, which
    is all a single-row compare-and-swap needs. ``synchronous = FULL`` makes WAL mode fsync
    the log at every commit, so a save that returned survives a power cut, not only a
    crash (``NORMAL`` would trade that for speed). ``mode=rw`` never creates a file: a
    database exists only once ``build`` renamed a complete one into place.

    Raises:
        StateError: the file cannot be opened, is corrupt, or is not a state database.
    """
    uri = f"file:{quote(str(path.absolute()))}?mode=rw"
    try:
        # check_same_thread=False only so that ``close`` may close the connections of
        # other (finished) threads; each connection is used by the thread that opened it.
        conn = sqlite3.connect(
            uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise sql_error(path, exc, "opened") from exc
    try:
        conn.execute("PRAGMA synchronous = FULL")
        _check(path, conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _check(path: Path, conn: sqlite3.Connection) -> None:
    """Refuse a foreign or future database, then make sure it is in WAL mode.

    The identity is read before anything is set, so a foreign file is never changed.
    """
    app = _pragma(path, conn, "application_id")
    if app != APPLICATION_ID:
        raise StateError(
            f"state file {path} is a SQLite database but not a langsmith-bridge state "
            f"(application_id {app}); refusing to touch it"
        )
    version = _pragma(path, conn, "user_version")
    if version != SCHEMA_VERSION:
        raise StateError(
            f"state database {path} has schema version {version}, this bridge knows "
            f"{SCHEMA_VERSION}; refusing to touch it (upgrade the bridge)"
        )
    # Persistent in the file since ``build``; set again in case a restore switched it off.
    mode = _pragma(path, conn, "journal_mode = WAL")
    if mode != "wal":
        raise StateError(f"state database {path} cannot be switched to WAL mode ({mode})")


def upgrade(path: Path, *, busy_timeout: float) -> None:
    """Bring the state database at ``path`` to ``SCHEMA_VERSION`` if its schema is older,
    in one transaction (every statement of an upgrade, and the new version number, commit
    together or not at all). A foreign or future database is left for ``connect`` to
    refuse; two processes upgrading at once upgrade once (the second finds it done).

    Raises:
        StateError: the database cannot be opened or written (naming it and the versions).
    """
    uri = f"file:{quote(str(path.absolute()))}?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise sql_error(path, exc, "opened") from exc
    try:
        if not _needs_upgrade(path, conn):
            return
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
        found = _pragma(path, conn, "user_version")  # again, now that no one else writes
        if _needs_upgrade(path, conn):
            assert isinstance(found, int)
            for version in range(found, SCHEMA_VERSION):
                for statement in _UPGRADES[version]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise sql_error(path, exc, f"upgraded to schema version {SCHEMA_VERSION}") from exc
    finally:
        conn.close()


def _needs_upgrade(path: Path, conn: sqlite3.Connection) -> bool:
    if _pragma(path, conn, "application_id") != APPLICATION_ID:
        return False
    version = _pragma(path, conn, "user_version")
    return isinstance(version, int) and version in _UPGRADES and version < SCHEMA_VERSION


def _pragma(path: Path, conn: sqlite3.Connection, pragma: str) -> object:
    try:
        return conn.execute(f"PRAGMA {pragma}").fetchone()[0]
    except sqlite3.Error as exc:
        raise sql_error(path, exc, "read") from exc


def build(
    path: Path,
    policies: Iterable[tuple[str, int, str]],
    acks: Iterable[tuple[str, str, str, str]],
    meta: Iterable[tuple[str, str]] = (),
) -> None:
    """Write a complete state database into the new file ``path`` and fsync it.

    ``path`` is a temporary name: the caller renames it into place only after this
    returns, so no reader ever sees a database without its schema or half its rows.
    The file is created with mode 0600 before SQLite writes a byte; SQLite gives its
    ``-wal`` and ``-shm`` files the database's own mode.

    Args:
        path: Where to build; must not exist.
        policies: ``(name, version, record JSON)`` rows.
        acks: ``(policy, consumer, replica, ack JSON)`` rows.
        meta: ``(key, value)`` rows.

    Raises:
        StateError: the file cannot be created or written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode is filtered by the umask
        finally:
            os.close(fd)
    except OSError as exc:
        raise StateError(f"state database {path} cannot be created: {exc.strerror}") from exc
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN")
            conn.executemany(INSERT_POLICY, policies)
            conn.executemany(INSERT_ACK, acks)
            conn.executemany(_INSERT_META, meta)
            conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise sql_error(path, exc, "written") from exc
    # Closing the last connection checkpointed the log into the file and deleted it; a
    # log left behind would hold rows that a rename of the file alone would lose.
    if path.with_name(path.name + "-wal").exists():
        raise StateError(f"state database {path} kept a write-ahead log; not installing it")
    fsync_file(path)


def sql_error(path: Path, exc: sqlite3.Error, doing: str) -> StateError:
    """The ``StateError`` for SQLite failing while the database at ``path`` was ``doing``.

    Args:
        path: The database file, named in the message.
        exc: SQLite's error; the caller chains it (``raise ... from exc``).
        doing: What failed, as a past participle: ``read``, ``written``, ``opened``.
    """
    if str(exc).startswith("Could not decode to UTF-8"):
        # Python's own error (no SQLite code), and it quotes the damaged text: never echo it.
        return StateError(
            f"state database {path} holds text that is not UTF-8 (damaged); "
            "restore it from a backup or move it aside"
        )
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF  # the primary result code
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StateBusy(
            f"state database {path} is locked by another writer past the busy timeout; "
            "nothing was written, try again"
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StateError(
            f"state database {path} is corrupt ({exc}); refusing to overwrite it: "
            "restore it from a backup or move it aside"
        )
    return StateError(f"state database {path} cannot be {doing}: {exc}")
