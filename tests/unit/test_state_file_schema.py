"""The file backend's schema over time: a database of schema 1 (acks per consumer, no runs)
is upgraded in place in one transaction, losing nothing; a future one is refused; damage is
one clear line naming the file and the policy, never the damaged text."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.errors import StateError
from bridge.state import Ack, FileStateStore, PolicyRecord
from bridge.state import sqlite_schema as schema

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
SCHEMA_1 = f"""
PRAGMA journal_mode = WAL;
PRAGMA application_id = {schema.APPLICATION_ID};
PRAGMA user_version = 1;
CREATE TABLE policies (
    name TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE acks (
    policy TEXT NOT NULL,
    consumer TEXT NOT NULL,
    ack TEXT NOT NULL,
    PRIMARY KEY (policy, consumer)
);
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
"""
# Rows exactly as version 1 wrote them: no replica, no proof, no history, no run table.
OLD_RECORD = {"policy": "p", "version": 3, "generations": [], "last_error": "LangSmith 503"}
OLD_ACKS = {
    "api": {"consumer": "api", "fingerprint": "sha256:aaaa", "at": "2025-06-01T08:00:00Z"},
    "worker": {"consumer": "worker", "fingerprint": "sha256:bbbb", "at": "2025-06-01T08:00:00Z"},
}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "bridge-state.db"


def make_schema_1(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.executescript(SCHEMA_1)
        conn.execute("INSERT INTO policies VALUES ('p', 3, ?)", (json.dumps(OLD_RECORD),))
        for consumer, ack in OLD_ACKS.items():
            conn.execute("INSERT INTO acks VALUES ('p', ?, ?)", (consumer, json.dumps(ack)))


def pragma(path: Path, name: str) -> object:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def columns(path: Path, table: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_a_schema_1_database_is_upgraded_in_place_losing_no_record_or_ack(path: Path) -> None:
    make_schema_1(path)
    store = FileStateStore(path)

    record = store.load("p")
    acks = store.acks("p")

    assert record == PolicyRecord(policy="p", version=3, last_error="LangSmith 503")
    assert acks == [
        Ack(consumer="api", fingerprint="sha256:aaaa", at=T0),
        Ack(consumer="worker", fingerprint="sha256:bbbb", at=T0),
    ]
    assert all(a.replica == "default" and a.proof is None for a in acks)
    assert pragma(path, "user_version") == schema.SCHEMA_VERSION == 2
    assert columns(path, "acks") == ["policy", "consumer", "replica", "ack"]
    assert columns(path, "runs") == ["policy", "last_run_at", "last_error", "last_success_at"]
    assert store.deployment_id() == "default"  # records of an older version, and no id
    store.record_ack("p", Ack(consumer="api", replica="pod-1", fingerprint="sha256:cc", at=T0))
    assert [a.replica for a in store.acks("p", ["api"])] == ["default", "pod-1"]
    assert store.save(record).version == 4
    store.close()


def test_an_upgrade_that_fails_part_way_leaves_the_schema_1_database_whole(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_schema_1(path)
    broken = (*schema._UPGRADES[1], "INSERT INTO no_such_table VALUES (1)")
    monkeypatch.setitem(schema._UPGRADES, 1, broken)

    with pytest.raises(StateError, match=r"cannot be upgraded to schema version 2") as caught:
        FileStateStore(path).acks("p")

    assert str(path) in str(caught.value)
    assert pragma(path, "user_version") == 1
    assert columns(path, "acks") == ["policy", "consumer", "ack"]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM acks").fetchone() == (2,)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "runs" not in tables
    assert "acks_v1" not in tables

    monkeypatch.undo()
    assert len(FileStateStore(path).acks("p")) == 2  # the next opener upgrades it


def test_stores_opening_a_schema_1_database_at_once_upgrade_it_once(path: Path) -> None:
    make_schema_1(path)
    stores = [FileStateStore(path) for _ in range(6)]
    start = threading.Barrier(len(stores))
    seen: list[list[Ack]] = []
    failures: list[BaseException] = []

    def open_it(store: FileStateStore) -> None:
        try:
            start.wait()
            seen.append(store.acks("p"))
        except BaseException as exc:
            failures.append(exc)
        finally:
            store.close()

    workers = [threading.Thread(target=open_it, args=(s,)) for s in stores]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert failures == []
    assert len(seen) == len(stores)
    assert all(acks == seen[0] and len(acks) == 2 for acks in seen)


def test_a_database_of_a_future_schema_is_refused_untouched(path: Path) -> None:
    FileStateStore(path).save(PolicyRecord(policy="p"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    before = path.read_bytes()

    with pytest.raises(StateError, match="upgrade the bridge"):
        FileStateStore(path).load("p")

    assert path.read_bytes() == before


# -- damage ----------------------------------------------------------------------------


def test_a_record_that_is_not_utf_8_is_one_line_naming_file_and_policy_not_its_text(
    path: Path,
) -> None:
    store = FileStateStore(path)
    healthy = store.save(PolicyRecord(policy="healthy"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        damaged = b"\xff" + b"secret-ish-text"
        conn.execute("INSERT INTO policies VALUES ('broken', 1, CAST(? AS TEXT))", (damaged,))
        conn.commit()

    with pytest.raises(StateError) as caught:
        store.load("broken")

    message = str(caught.value)
    assert str(path) in message
    assert "'broken'" in message
    assert "not UTF-8" in message
    assert "secret-ish-text" not in message
    assert "\n" not in message
    assert store.load("healthy") == healthy


def test_a_state_file_that_is_garbage_is_one_line_naming_it_and_the_policy(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00\x01 not a database, not JSON either \xfe")

    with pytest.raises(StateError) as caught:
        FileStateStore(path).load("p")

    message = str(caught.value)
    assert str(path) in message
    assert "'p'" in message
    assert "\n" not in message
    assert "neither a SQLite state database nor a legacy JSON state" in message


def test_a_legacy_json_state_imports_its_acks_as_replica_default(path: Path) -> None:
    legacy = path.with_suffix(".json")
    legacy.parent.mkdir(parents=True)
    legacy.write_text(
        json.dumps({"format": 1, "policies": {"p": OLD_RECORD}, "acks": {"p": OLD_ACKS}}),
        encoding="utf-8",
    )

    acks = FileStateStore(path).acks("p")

    assert [(a.consumer, a.replica) for a in acks] == [("api", "default"), ("worker", "default")]
