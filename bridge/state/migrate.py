"""Bringing the file backend's SQLite database into being: created empty on first write, or
imported from a legacy JSON state (format 1) so that no record or ack is ever lost. A
database of an older schema is upgraded in place, in one transaction, when a store first
opens it (``sqlite_schema.upgrade``).

Two legacy layouts are recognised, both written by the JSON-era backend::

    path holds the JSON           (the configured file is the old one)   -> migrate in place:
        the JSON is kept as <path>.v1.json (a backup, never read again)
    path is missing, path.with_suffix(".json") holds the JSON   (the old default name)
        -> import it; the JSON is renamed <that>.migrated

Every step runs under ``migrate.lock`` in ``<path>.locks/``, so two processes starting at
once never both migrate: the second finds the database when it gets the lock. The legacy
writers' own lock (``state.lock`` beside the JSON) is held too, so a JSON-era process still
running cannot write the JSON while it is being imported.

Crash safety rests on the order of the steps, each of which is atomic:

1. build the complete database in a temporary file beside ``path``, fsync it;
2. (in place) copy the JSON to ``<path>.v1.json`` (atomic write, fsynced);
3. rename the temporary database onto ``path``, fsync the folder;
4. (old default name) rename the JSON to ``<that>.migrated``, fsync the folder.

Until step 3 ``path`` still holds the JSON (or nothing, with the JSON beside it), so the next
opener starts over, deleting the dead temporary file. After step 3 ``path`` is a complete
database. A kill between 3 and 4 leaves the imported JSON unrenamed; the database's ``meta``
table names it and its SHA-256, and the next opener renames it if it is still that file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bridge.errors import StateError
from bridge.fsutil import atomic_write, fsync_dir
from bridge.state import sqlite_schema as schema
from bridge.state.locks import exclusive, locks_folder
from bridge.state.model import Ack, PolicyRecord

LEGACY_FORMAT = 1
UPGRADE_BUSY_TIMEOUT_S = 10.0  # how long a schema upgrade waits for other writers
MIGRATE_LOCK = "migrate.lock"
LEGACY_WRITE_LOCK = "state.lock"  # what JSON-era writers held around every write
_SOURCE, _SHA256 = "imported_from", "imported_sha256"

log = logging.getLogger(__name__)


@dataclass
class Legacy:
    """A legacy JSON state, validated, as rows for the database."""

    text: str = ""
    policies: list[tuple[str, int, str]] = field(default_factory=list)
    acks: list[tuple[str, str, str, str]] = field(default_factory=list)


def backup_path(path: Path) -> Path:
    """Where an in-place migration keeps the JSON it replaced."""
    return path.with_name(path.name + ".v1.json")


def migrated_path(legacy: Path) -> Path:
    """What an imported JSON under the old default name is renamed to."""
    return legacy.with_name(legacy.name + ".migrated")


def ensure_database(path: Path, *, create: bool) -> bool:
    """Make ``path`` hold the state database, importing a legacy JSON state if one is found.

    Args:
        path: The configured state file.
        create: Create an empty database when there is neither one nor a legacy state.
            Readers pass ``False``, so reading a brand-new state creates nothing.

    Returns:
        Whether the database exists now.

    Raises:
        StateError: ``path`` (or the legacy file) cannot be read, or holds something that
            is neither a state database nor a legacy JSON state; nothing is then written.
    """
    if schema.is_database(path):
        schema.upgrade(path, busy_timeout=UPGRADE_BUSY_TIMEOUT_S)
        _finish_import(path)
        return True
    source = _legacy_source(path)
    if source is None and not create:
        return False
    if source is not None and not _is_legacy(path, source):
        return True  # it was a legacy state, and another opener migrated it meanwhile
    with exclusive(locks_folder(path) / MIGRATE_LOCK):
        if schema.is_database(path):
            return True  # another process finished first, while we waited for the lock
        source = _legacy_source(path)
        if source is None and not create:
            return False  # the legacy file went away meanwhile (not by a migration)
        with _legacy_writers_excluded(source):
            _install(path, source)
    return True


def _is_legacy(path: Path, source: Path) -> bool:
    """Whether ``source`` (still) holds a legacy state for ``path``, checked before any lock
    is taken, so that a foreign file is refused without creating even a lock file.

    Raises:
        StateError: ``source`` holds something else, and no database replaced it.
    """
    try:
        read_legacy(source)
    except StateError:
        # Another opener may have migrated between our look and our read: the database
        # is then in place (and the source renamed, or now a database itself).
        if schema.is_database(path):
            return False
        raise
    return True


def _legacy_source(path: Path) -> Path | None:
    """The legacy JSON state to import: ``path`` itself if it exists (it is not a database
    here), else the old default name beside it, else none."""
    if path.exists():
        return path
    old_name = path.with_suffix(".json")
    return old_name if old_name != path and old_name.exists() else None


@contextlib.contextmanager
def _legacy_writers_excluded(source: Path | None) -> Iterator[None]:
    if source is None:
        yield
        return
    with exclusive(locks_folder(source) / LEGACY_WRITE_LOCK):
        yield


def _install(path: Path, source: Path | None) -> None:
    """Steps 1 to 4 of the module docstring, with the locks held."""
    legacy = read_legacy(source) if source is not None else Legacy()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"state folder {path.parent} cannot be created: {exc.strerror}") from exc
    _remove_temporaries(path)
    _remove_orphan_journals(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    meta = []
    if source is not None and source != path:
        meta = [(_SOURCE, source.name), (_SHA256, _sha256(legacy.text))]
    try:
        schema.build(temporary, legacy.policies, legacy.acks, meta)
        if source == path:
            _write_backup(path, legacy.text)
        _put_in_place(temporary, path)
    finally:
        _remove_temporaries(path)  # never ``path``'s journals now: others may have it open
    if source is not None and source != path:
        _retire(source)


def _put_in_place(temporary: Path, path: Path) -> None:
    try:
        temporary.replace(path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise StateError(f"state database {path} cannot be written: {exc.strerror}") from exc


def _write_backup(path: Path, text: str) -> None:
    backup = backup_path(path)
    try:
        atomic_write(backup, text)
    except OSError as exc:
        raise StateError(f"backup {backup} of the legacy state cannot be written") from exc


def _retire(source: Path) -> None:
    """Step 4: rename an imported JSON so that it is never imported again."""
    try:
        source.replace(migrated_path(source))
        fsync_dir(source.parent)
    except OSError as exc:
        raise StateError(f"imported legacy state {source} cannot be renamed: {exc}") from exc


def _remove_temporaries(path: Path) -> None:
    """Delete the temporary databases (and their journals) of killed migrations.

    Only called under the migration lock, which every builder of one holds, so each such
    file is dead: finished and renamed, or abandoned by a killed process.
    """
    for leftover in path.parent.glob(f".{path.name}.*.tmp*"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _remove_orphan_journals(path: Path) -> None:
    """Delete journals of ``path`` while it is no database: they belong to none, and SQLite
    would replay a stale ``-wal`` onto the new database, corrupting it."""
    for end in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + end).unlink()


def _finish_import(path: Path) -> None:
    """Step 4 of an import that a kill interrupted after step 3, if one did."""
    old_name = path.with_suffix(".json")
    if old_name == path or not old_name.exists():
        return
    with exclusive(locks_folder(path) / MIGRATE_LOCK), _legacy_writers_excluded(old_name):
        if not old_name.exists():
            return
        imported = _import_record(path)
        if imported.get(_SOURCE) != old_name.name:
            return  # not imported from there: someone else's file
        if imported.get(_SHA256) == _sha256(_read_text(old_name)):
            _retire(old_name)
        else:
            log.warning(
                "legacy state %s changed after it was imported into %s; left as it is",
                old_name,
                path,
            )


def _import_record(path: Path) -> dict[str, str]:
    conn = schema.connect(path, busy_timeout=10.0)
    try:
        return {
            key: row[0]
            for key in (_SOURCE, _SHA256)
            if (row := conn.execute(schema.SELECT_META, (key,)).fetchone()) is not None
        }
    except sqlite3.Error as exc:
        raise schema.sql_error(path, exc, "read") from exc
    finally:
        conn.close()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- reading a legacy JSON state -------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _foreign(path, "not UTF-8 text") from None
    except OSError as exc:
        raise StateError(f"state file {path} cannot be read: {exc.strerror}") from exc


def read_legacy(path: Path) -> Legacy:
    """The legacy JSON state in ``path``, every record and ack validated.

    Raises:
        StateError: ``path`` cannot be read, is not a format-1 JSON state, or holds a
            malformed record or ack (then nothing is imported: the operator decides).
    """
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _foreign(path, f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or data.get("format") != LEGACY_FORMAT:
        raise _foreign(path, "JSON of an unknown format")
    policies, acks = data.get("policies", {}), data.get("acks", {})
    if not isinstance(policies, dict) or not isinstance(acks, dict):
        raise _foreign(path, "JSON of an unknown format")
    return Legacy(text, _policy_rows(path, policies), _ack_rows(path, acks))


def _policy_rows(path: Path, policies: dict[str, Any]) -> list[tuple[str, int, str]]:
    rows = []
    for name, raw in policies.items():
        try:
            record = PolicyRecord.model_validate(raw)
        except ValidationError as exc:
            raise StateError(
                f"legacy state file {path}: record of {name!r} is malformed; nothing imported"
            ) from exc
        rows.append((name, record.version, record.model_dump_json()))
    return rows


def _ack_rows(path: Path, acks: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """One row per consumer: the JSON era kept one ack per consumer (replica ``default``)."""
    rows = []
    for policy, by_consumer in acks.items():
        try:
            if not isinstance(by_consumer, dict):
                raise TypeError(f"acks of {policy!r} are not an object")
            for consumer, raw in by_consumer.items():
                ack = Ack.model_validate(raw)
                rows.append((policy, consumer, ack.replica, ack.model_dump_json()))
        except (ValidationError, TypeError) as exc:
            raise StateError(
                f"legacy state file {path}: acks of {policy!r} are malformed; nothing imported"
            ) from exc
    return rows


def _foreign(path: Path, what: str) -> StateError:
    return StateError(
        f"state file {path} is neither a SQLite state database nor a legacy JSON state "
        f"({what}); refusing to touch it: restore it from a backup or move it aside"
    )
