"""``FileStateStore``: compare-and-swap records, acks, leases across threads and processes,
a state database that is never damaged further when it is found damaged, saves whose cost
does not grow with the number of policies, and a migration from the legacy JSON state that
loses nothing, whoever opens it first and wherever a kill lands."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.errors import LeaseHeld, StateConflict, StateError
from bridge.secrets import KEY_PATTERN, fingerprint
from bridge.state import FileStateStore
from bridge.state import sqlite_schema as schema
from bridge.state.file import StateBusy
from bridge.state.model import HISTORY_KEPT, Ack, Generation, Phase, PolicyRecord

TTL = timedelta(minutes=5)
T0 = datetime(2025, 1, 1, tzinfo=UTC)
SQLITE_MAGIC = b"SQLite format 3\x00"
AS_ROOT = os.geteuid() == 0


def new_key() -> str:
    return "lsv2_sk_" + secrets.token_hex(16) + "_" + secrets.token_hex(5)


def generation(n: int, phase: Phase = Phase.CURRENT, key: str | None = None) -> Generation:
    key = key or new_key()
    return Generation(
        rotation_id=f"r{n:03d}",
        phase=phase,
        started_at=T0 + timedelta(days=n),
        key_id=f"key-{n}",
        short_key=key[:12] + "***",
        fingerprint=fingerprint(key),
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "bridge-state.db"


@pytest.fixture
def store(path: Path) -> Iterator[FileStateStore]:
    state = FileStateStore(path)
    yield state
    state.close()


def child(script: str, *args: str) -> subprocess.Popen[str]:
    """A Python process running ``script`` with ``args``, talking over stdin/stdout."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def running(script: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``child``, killed and reaped when the block ends, however it ends."""
    proc = child(script, *args)
    try:
        yield proc
    finally:
        proc.kill()
        proc.communicate()


def say(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def hear(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def dump(path: Path) -> str:
    """Every row of the database as SQL text, read by SQLite itself."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return "\n".join(conn.iterdump())


def on_disk(path: Path) -> tuple[bytes, int, int]:
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, stat.st_ino


def leftovers(path: Path) -> list[str]:
    """Temporary files of a migration still beside ``path``."""
    return sorted(p.name for p in path.parent.glob(f".{path.name}.*"))


# -- records and compare-and-swap ------------------------------------------------------


def test_a_policy_never_saved_loads_empty_at_version_0(store: FileStateStore, path: Path) -> None:
    record = store.load("new-policy")

    assert (record.policy, record.version, record.generations) == ("new-policy", 0, ())
    assert store.policies() == []
    assert store.acks("new-policy") == []
    assert not path.exists()  # reading creates nothing


def test_each_save_increments_the_version_and_is_what_load_returns(
    store: FileStateStore,
) -> None:
    first = store.save(store.load("p").with_generation(generation(1)))
    second = store.save(first.with_generation(generation(2)))

    assert (first.version, second.version) == (1, 2)
    assert store.load("p") == second
    assert store.policies() == ["p"]


def test_a_save_from_a_stale_read_is_a_conflict_and_changes_nothing(
    store: FileStateStore,
) -> None:
    stale = store.load("p")
    winner = store.save(stale.with_generation(generation(1)))

    with pytest.raises(StateConflict) as caught:
        store.save(stale.with_generation(generation(2)))

    # The same write would lose again: a conflict is not for the engine to retry.
    assert not caught.value.retryable
    assert store.load("p") == winner


def test_policies_are_versioned_independently(store: FileStateStore) -> None:
    store.save(store.load("a"))
    store.save(store.load("a").with_generation(generation(1)))

    assert store.save(store.load("b")).version == 1
    assert store.load("a").version == 2
    assert store.policies() == ["a", "b"]


def test_after_a_conflict_load_reads_the_winner_even_if_the_file_looks_unchanged(
    store: FileStateStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is cached on the file's (inode, size, mtime), which two writes inside one
    coarse timestamp tick can leave as they were: the loser of a CAS must see the winner's
    record, or it retries against the same stale copy forever."""
    store.save(store.load("p"))
    mine = store.load("p")
    real_stat, looks_unchanged = Path.stat, path.stat()
    monkeypatch.setattr(
        Path, "stat", lambda self, **kw: looks_unchanged if self == path else real_stat(self, **kw)
    )
    other = FileStateStore(path)
    winner = other.save(other.load("p").with_generation(generation(1)))

    with pytest.raises(StateConflict):
        store.save(mine)

    assert store.load("p") == winner


_INCREMENTS = """
import sys
from pathlib import Path
from bridge.errors import StateConflict
from bridge.state import FileStateStore

store = FileStateStore(Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
done = conflicts = 0
while done < int(sys.argv[3]):
    record = store.load("counter")
    try:
        store.save(record.model_copy(update={"last_error": f"{sys.argv[2]} {done}"}))
    except StateConflict:
        conflicts += 1
        continue
    done += 1
print(conflicts, flush=True)
"""


def test_two_processes_doing_50_cas_increments_each_end_at_exactly_100(
    store: FileStateStore, path: Path
) -> None:
    workers = [child(_INCREMENTS, str(path), name, "50") for name in ("one", "two")]
    try:
        for worker in workers:
            assert hear(worker) == "ready"
        for worker in workers:  # start both as close together as possible
            say(worker, "go")
        for worker in workers:
            worker.communicate(timeout=30)
            assert worker.returncode == 0
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()

    assert store.load("counter").version == 100


def test_threads_sharing_one_store_lose_no_update(store: FileStateStore) -> None:
    """The engine reconciles many policies at once in threads that share one store."""
    failures: list[BaseException] = []

    def runner(name: str) -> None:
        try:
            for n in range(10):
                store.save(store.load(name).with_generation(generation(n)))
                while True:  # and a contended counter, retried on conflict
                    try:
                        store.save(store.load("counter"))
                        break
                    except StateConflict:
                        continue
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=runner, args=(f"p{i:02d}",)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert store.load("counter").version == 160
    assert all(store.load(f"p{i:02d}").version == 10 for i in range(16))


def test_a_finished_threads_connection_is_closed_when_another_thread_connects(
    store: FileStateStore,
) -> None:
    """A thread pool's workers come and go; their connections must not pile up."""
    store.save(store.load("p"))
    for _ in range(5):
        thread = threading.Thread(target=store.load, args=("p",))
        thread.start()
        thread.join()

    assert len(store._connections) <= 2  # this thread's and the last worker's
    store.close()
    assert store._connections == {}
    assert store.load("p").version == 1  # a closed store reconnects when used again


# -- acknowledgements ------------------------------------------------------------------


def test_the_latest_ack_of_each_consumer_wins(store: FileStateStore) -> None:
    old, new, other = fingerprint(new_key()), fingerprint(new_key()), fingerprint(new_key())
    store.record_ack("p", Ack(consumer="api", fingerprint=old, at=T0))
    store.record_ack("p", Ack(consumer="worker", fingerprint=other, at=T0))
    store.record_ack("p", Ack(consumer="api", fingerprint=new, at=T0 + timedelta(hours=1)))

    acks = {ack.consumer: ack for ack in store.acks("p")}

    assert {name: ack.fingerprint for name, ack in acks.items()} == {"api": new, "worker": other}
    assert acks["api"].at == T0 + timedelta(hours=1)
    assert store.acks("another-policy") == []


# -- leases ----------------------------------------------------------------------------


def test_a_refused_lease_attempt_does_not_release_the_holder(
    store: FileStateStore, path: Path
) -> None:
    other = FileStateStore(path)
    with store.lease("p", "first", TTL):
        for _ in range(2):
            with pytest.raises(LeaseHeld), other.lease("p", "second", TTL):
                pass
    with other.lease("p", "second", TTL):
        pass  # free once the holder leaves its block
    assert (path.parent / "bridge-state.db.locks" / "p.lease").exists()


_HOLDER = """
import sys, time
from datetime import timedelta
from pathlib import Path
from bridge.state import FileStateStore

with FileStateStore(Path(sys.argv[1])).lease(sys.argv[2], "holder", timedelta(minutes=5)):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_lease_held_by_another_process_is_refused_and_freed_at_once_by_kill_9(
    store: FileStateStore, path: Path
) -> None:
    holder = child(_HOLDER, str(path), "p")
    try:
        assert hear(holder) == "held"

        with pytest.raises(LeaseHeld), store.lease("p", "me", TTL):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        holder.kill()
        holder.communicate()

    assert holder.returncode == -signal.SIGKILL
    with store.lease("p", "me", TTL):  # no waiting for the TTL: the kernel dropped the lock
        pass


# -- busy writers ----------------------------------------------------------------------

_WRITE_LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")  # SQLite's write lock, as a long write would hold it
print("locked", flush=True)
sys.stdin.readline()
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
time.sleep(60)
"""


def test_a_write_waits_for_another_process_then_fails_retryably_past_the_timeout(
    store: FileStateStore, path: Path
) -> None:
    before = store.save(store.load("p"))
    impatient = FileStateStore(path, busy_timeout=0.2)
    with running(_WRITE_LOCK_HOLDER, str(path), "0.5") as holder:
        assert hear(holder) == "locked"

        with pytest.raises(StateBusy) as caught:
            impatient.save(before)
        assert caught.value.retryable
        assert str(path) in str(caught.value)
        assert impatient.load("p") == before  # readers are never blocked by a writer

        say(holder, "release in 0.5 s")
        started = time.monotonic()
        after = store.save(before)  # the default timeout outlasts the holder: it waits
        assert time.monotonic() - started >= 0.3
        assert hear(holder) == "released"

    assert store.load("p") == after
    impatient.close()


# -- kills while writing ---------------------------------------------------------------

_SAVER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from bridge.state import FileStateStore
from bridge.state.model import Ack

store = FileStateStore(Path(sys.argv[1]))
record = store.load("p")
while True:  # records of varying size, some spilling onto overflow pages
    record = store.save(record.model_copy(update={"last_error": "x" * (record.version % 3000)}))
    ack = Ack(consumer=f"c{record.version % 7}", fingerprint="sha256:0", at=datetime.now(UTC))
    store.record_ack("p", ack)
    print(record.version, flush=True)
"""


def test_a_writer_killed_at_random_instants_never_loses_a_returned_save_nor_damages_the_db(
    path: Path,
) -> None:
    last = 0
    for delay in (0.05, 0.15, 0.3, 0.02, 0.2):
        with running(_SAVER, str(path)) as saver:
            assert saver.stdout is not None
            printed = [int(hear(saver))]  # saving now
            time.sleep(delay)
            os.kill(saver.pid, signal.SIGKILL)
            printed += [int(line) for line in saver.stdout.read().split()]
        assert printed[-1] > last
        last = printed[-1]

        store = FileStateStore(path)
        assert store.load("p").version >= last  # every save that returned is there
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        store.close()


# -- what is written -------------------------------------------------------------------


def test_the_database_is_created_on_first_write_in_wal_mode_with_mode_0600(
    store: FileStateStore, path: Path
) -> None:
    store.record_ack("p", Ack(consumer="api", fingerprint=fingerprint(new_key()), at=T0))

    assert path.read_bytes().startswith(SQLITE_MAGIC)
    files = [path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))]
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files if f.exists())
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert leftovers(path) == []


def test_a_save_writes_the_same_few_pages_whatever_the_number_of_policies(
    path: Path, tmp_path: Path
) -> None:
    """What made the JSON state quadratic: every save rewrote every policy. Here a save
    appends only the pages of its own row to the write-ahead log."""
    appended = []
    for count in (10, 2000):
        legacy = tmp_path / f"legacy-{count}.json"
        records = [PolicyRecord(policy=f"p{i:04d}", version=1) for i in range(count)]
        records = [r.with_generation(generation(1)).with_generation(generation(2)) for r in records]
        legacy.write_text(legacy_text(records), encoding="utf-8")
        store = FileStateStore(legacy)  # imports them all at once
        wal = legacy.with_name(legacy.name + "-wal")
        store.save(store.load("p0000"))
        before = wal.stat().st_size
        store.save(store.load("p0005"))
        appended.append(wal.stat().st_size - before)
        store.close()

    page_and_header = 4096 + 24
    assert appended[0] == appended[1]
    assert appended[1] <= 3 * page_and_header


def test_the_state_holds_fingerprints_and_short_keys_never_a_key(
    store: FileStateStore, path: Path
) -> None:
    keys = [new_key() for _ in range(3)]
    record = store.load("p")
    for n, key in enumerate(keys):
        # Even a careless caller handing a key to the model does not get it stored.
        record = record.with_generation(
            Generation.model_validate({**generation(n, key=key).model_dump(), "api_key": key})
        )
    store.save(record)
    store.record_ack("p", Ack(consumer="api", fingerprint=fingerprint(keys[-1]), at=T0))

    rows = dump(path)
    on_disk_bytes = b"".join(p.read_bytes() for p in path.parent.rglob("*") if p.is_file())

    for key in keys:
        assert fingerprint(key) in rows
        assert key[:12] + "***" in rows
        assert key not in rows
        assert key[12:40].encode() not in on_disk_bytes
    assert not KEY_PATTERN.search(on_disk_bytes.decode("utf-8", errors="replace"))
    assert path.stat().st_mode & 0o777 == 0o600


def test_history_keeps_the_live_generations_and_the_latest_ended_ones(
    store: FileStateStore,
) -> None:
    record = store.load("p")
    ended = HISTORY_KEPT + 5
    for n in range(ended):
        record = record.with_generation(generation(n, Phase.REVOKED))
    record = record.with_generation(generation(ended, Phase.SUPERSEDED))
    record = record.with_generation(generation(ended + 1, Phase.CURRENT))

    saved = store.save(record)
    loaded = store.load("p")

    assert loaded == saved
    kept = [g.rotation_id for g in loaded.generations]
    expected_ended = [f"r{n:03d}" for n in range(ended - HISTORY_KEPT, ended)]
    assert kept == [*expected_ended, f"r{ended:03d}", f"r{ended + 1:03d}"]


def test_replacing_a_generation_keeps_its_place_in_the_history(store: FileStateStore) -> None:
    record = store.load("p").with_generation(generation(1)).with_generation(generation(2))
    revoked = generation(1, Phase.REVOKED).model_copy(update={"ended_at": T0})

    record = store.save(record.with_generation(revoked))

    assert [g.rotation_id for g in record.generations] == ["r001", "r002"]
    assert store.load("p").find("r001").phase is Phase.REVOKED


# -- damaged files ---------------------------------------------------------------------

DAMAGED = {
    "truncated JSON": '{"format": 1, "policies": {"p": ',
    "not JSON at all": "policy p version 3\n",
    "a JSON list": "[]",
    "no format": '{"policies": {}}',
    "a future format": '{"format": 99, "policies": {}, "acks": {}}',
    "an empty file": "",
    "binary junk": "\x00\xff\xfe junk",
}


def every_operation(store: FileStateStore) -> list[Callable[[], object]]:
    ack = Ack(consumer="api", fingerprint=fingerprint(new_key()), at=T0)
    return [
        lambda: store.load("p"),
        store.policies,
        lambda: store.acks("p"),
        lambda: store.save(PolicyRecord(policy="p")),
        lambda: store.save(PolicyRecord(policy="p", version=1)),
        lambda: store.record_ack("p", ack),
    ]


def assert_every_operation_refuses(store: FileStateStore, named: Path) -> None:
    for attempt in every_operation(store):
        with pytest.raises(StateError) as caught:
            attempt()
        assert not isinstance(caught.value, StateConflict)
        assert str(named) in str(caught.value)


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_file_that_is_neither_a_database_nor_a_legacy_state_is_an_error_and_left_untouched(
    store: FileStateStore, path: Path, content: str
) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("utf-8", errors="surrogateescape"))
    before = on_disk(path)

    assert_every_operation_refuses(store, path)

    assert on_disk(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # nothing beside it


def scrambled(path: Path) -> None:
    """A real state database, then every page after the first overwritten with noise."""
    store = FileStateStore(path)
    for n in range(40):
        store.save(store.load(f"p{n}").with_generation(generation(n)))
        store.record_ack(f"p{n}", Ack(consumer="api", fingerprint="sha256:0", at=T0))
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[:4096] + secrets.token_bytes(len(data) - 4096))


def foreign(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE policies (name TEXT, version INTEGER, record TEXT)")
        conn.commit()


def future(path: Path) -> None:
    store = FileStateStore(path)
    store.save(PolicyRecord(policy="p"))
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")


CORRUPT = {
    "a SQLite header then noise": lambda p: p.write_bytes(SQLITE_MAGIC + secrets.token_bytes(8000)),
    "a state database with scrambled pages": scrambled,
    "another application's SQLite database": foreign,
    "a state database of a future schema": future,
}


@pytest.mark.parametrize("make", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_foreign_or_future_database_is_an_error_and_left_untouched(
    store: FileStateStore, path: Path, make: Callable[[Path], object]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path)
    before = path.read_bytes()

    assert_every_operation_refuses(store, path)
    store.close()

    assert path.read_bytes() == before


@pytest.mark.parametrize("section", ["policies", "acks"])
def test_a_malformed_record_in_a_legacy_state_is_an_error_and_nothing_is_imported(
    store: FileStateStore, path: Path, section: str
) -> None:
    path.parent.mkdir(parents=True)
    broken = {"p": {"version": "many"}} if section == "policies" else {"p": {"api": {"at": 1}}}
    path.write_text(json.dumps({"format": 1, section: broken}), encoding="utf-8")
    before = on_disk(path)

    with pytest.raises(StateError, match="malformed"):
        store.load("p") if section == "policies" else store.acks("p")

    assert on_disk(path) == before
    assert leftovers(path) == []


@pytest.mark.parametrize("table", ["policies", "acks"])
def test_a_malformed_row_in_the_database_is_a_state_error(
    store: FileStateStore, path: Path, table: str
) -> None:
    store.save(store.load("p"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        if table == "policies":
            conn.execute('UPDATE policies SET record = \'{"version": "many"}\'')
        else:
            conn.execute("INSERT INTO acks VALUES ('p', 'api', 'default', '{\"at\": 1}')")
        conn.commit()

    with pytest.raises(StateError, match=f"{path}.*malformed"):
        store.load("p") if table == "policies" else store.acks("p")


def test_a_folder_where_the_state_file_should_be_is_an_error_naming_it(
    store: FileStateStore, path: Path
) -> None:
    path.mkdir(parents=True)

    assert_every_operation_refuses(store, path)


@pytest.mark.skipif(AS_ROOT, reason="root reads and writes whatever the permissions say")
def test_an_unreadable_database_is_an_error_naming_it(store: FileStateStore, path: Path) -> None:
    store.save(store.load("p"))
    store.close()
    path.chmod(0o000)
    try:
        assert_every_operation_refuses(FileStateStore(path), path)
    finally:
        path.chmod(0o600)


@pytest.mark.skipif(AS_ROOT, reason="root reads and writes whatever the permissions say")
def test_a_state_folder_that_cannot_be_written_is_an_error_naming_it(
    store: FileStateStore, path: Path
) -> None:
    path.parent.mkdir(parents=True)
    path.parent.chmod(0o500)
    try:
        with pytest.raises(StateError, match=str(path.parent)):
            store.save(store.load("p"))
        assert store.load("p").version == 0
    finally:
        path.parent.chmod(0o700)


# -- migration from the legacy JSON state ----------------------------------------------


def legacy_text(records: list[PolicyRecord], acks: dict[str, list[Ack]] | None = None) -> str:
    """A legacy state exactly as the JSON-era backend wrote it (format 1)."""
    data = {
        "format": 1,
        "policies": {r.policy: r.model_dump(mode="json") for r in records},
        "acks": {
            policy: {a.consumer: a.model_dump(mode="json") for a in by_policy}
            for policy, by_policy in (acks or {}).items()
        },
    }
    return json.dumps(data, indent=1, sort_keys=True)


LEGACY_RECORDS = [
    PolicyRecord(policy="counter", version=5),
    PolicyRecord(policy="tracing-prod", version=7, last_run_at=T0, last_error="LangSmith 503")
    .with_generation(generation(1, Phase.REVOKED))
    .with_generation(generation(2, Phase.SUPERSEDED))
    .with_generation(generation(3, Phase.CURRENT)),
    PolicyRecord(policy="eval", version=2).with_generation(generation(4, Phase.MINTING)),
]
LEGACY_ACKS = {
    "tracing-prod": [
        Ack(consumer="api", fingerprint=fingerprint(new_key()), at=T0),
        Ack(consumer="worker", fingerprint=fingerprint(new_key()), at=T0 + timedelta(hours=1)),
    ],
    "eval": [Ack(consumer="api", fingerprint=fingerprint(new_key()), at=T0)],
}
LEGACY = legacy_text(LEGACY_RECORDS, LEGACY_ACKS)
LAYOUTS = {"in place": "bridge-state.json", "old default name": "bridge-state.db"}


def assert_holds_the_legacy_state(store: FileStateStore) -> None:
    assert store.policies() == sorted(r.policy for r in LEGACY_RECORDS)
    for record in LEGACY_RECORDS:
        assert store.load(record.policy) == record
    for policy, acks in LEGACY_ACKS.items():
        assert store.acks(policy) == sorted(acks, key=lambda a: a.consumer)


def legacy_at(tmp_path: Path, layout: str) -> tuple[Path, Path]:
    """The configured path and, beside it, the legacy JSON state for ``layout``."""
    path = tmp_path / "state" / LAYOUTS[layout]
    legacy = path.with_suffix(".json")
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text(LEGACY, encoding="utf-8")
    return path, legacy


def test_a_legacy_state_at_the_configured_path_is_migrated_in_place_and_kept_as_a_backup(
    tmp_path: Path,
) -> None:
    path, _ = legacy_at(tmp_path, "in place")
    store = FileStateStore(path)

    assert_holds_the_legacy_state(store)  # the first read migrates
    assert path.read_bytes().startswith(SQLITE_MAGIC)
    assert path.stat().st_mode & 0o777 == 0o600
    backup = path.with_name("bridge-state.json.v1.json")
    assert backup.read_text(encoding="utf-8") == LEGACY
    assert backup.stat().st_mode & 0o777 == 0o600
    assert leftovers(path) == []
    # Compare-and-swap carries on from the migrated versions.
    stale = store.load("tracing-prod")
    assert store.save(stale).version == 8
    with pytest.raises(StateConflict):
        store.save(stale)
    assert FileStateStore(path).load("tracing-prod").version == 8


def test_a_legacy_state_under_the_old_default_name_is_imported_and_renamed_migrated(
    tmp_path: Path,
) -> None:
    path, legacy = legacy_at(tmp_path, "old default name")
    store = FileStateStore(path)

    assert_holds_the_legacy_state(store)
    assert path.read_bytes().startswith(SQLITE_MAGIC)
    assert not legacy.exists()
    assert legacy.with_name("bridge-state.json.migrated").read_text(encoding="utf-8") == LEGACY
    assert leftovers(path) == []
    assert store.save(store.load("counter")).version == 6


def test_a_json_state_under_the_old_name_is_ignored_once_the_database_exists(
    store: FileStateStore, path: Path
) -> None:
    store.save(store.load("mine"))
    legacy = path.with_suffix(".json")
    legacy.write_text(LEGACY, encoding="utf-8")  # not imported from there: not ours to touch

    assert FileStateStore(path).policies() == ["mine"]
    assert legacy.read_text(encoding="utf-8") == LEGACY


def test_a_damaged_state_under_the_old_name_is_an_error_and_nothing_is_created(
    store: FileStateStore, path: Path
) -> None:
    legacy = path.with_suffix(".json")
    legacy.parent.mkdir(parents=True)
    legacy.write_text(LEGACY[: len(LEGACY) // 2], encoding="utf-8")

    assert_every_operation_refuses(store, legacy)

    assert not path.exists()
    assert legacy.read_text(encoding="utf-8") == LEGACY[: len(LEGACY) // 2]


_JSON_ERA_WRITER = """
import fcntl, json, os, sys
from pathlib import Path

path = Path(sys.argv[1])
locks = path.with_name(path.name + ".locks")
locks.mkdir(exist_ok=True)
fd = os.open(locks / "state.lock", os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)  # what the JSON-era backend held around every write
print("locked", flush=True)
sys.stdin.readline()
data = json.loads(path.read_text())
data["policies"]["late"] = {"policy": "late", "version": 1}
temporary = path.with_name(".late.tmp")
temporary.write_text(json.dumps(data))
temporary.replace(path)
print("written", flush=True)
"""


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_migration_waits_for_a_json_era_writer_and_imports_its_write(
    tmp_path: Path, layout: str
) -> None:
    path, legacy = legacy_at(tmp_path, layout)
    seen: list[list[str]] = []
    with running(_JSON_ERA_WRITER, str(legacy)) as writer:
        assert hear(writer) == "locked"
        opener = threading.Thread(target=lambda: seen.append(FileStateStore(path).policies()))
        opener.start()
        opener.join(timeout=0.5)
        assert opener.is_alive()  # waiting for the JSON-era writer's lock
        assert legacy.read_text(encoding="utf-8") == LEGACY

        say(writer, "write")
        assert hear(writer) == "written"
        writer.wait(timeout=10)  # its exit releases the lock
        opener.join(timeout=10)

    assert seen == [sorted(["late", *(r.policy for r in LEGACY_RECORDS)])]


_RACING_OPENER = """
import sys, time
from pathlib import Path
from bridge.errors import StateConflict
from bridge.state import FileStateStore, migrate

install, installs = migrate._install, []

def slow_install(*args):
    installs.append(args)
    time.sleep(0.3)  # long enough for the other opener to arrive while this one migrates
    install(*args)

migrate._install = slow_install
print("ready", flush=True)
sys.stdin.readline()
store = FileStateStore(Path(sys.argv[1]))
done = 0
while done < 20:
    try:
        store.save(store.load("counter"))
        done += 1
    except StateConflict:
        pass
print(len(installs), flush=True)
"""


@pytest.mark.parametrize("layout", LAYOUTS)
def test_two_processes_opening_one_legacy_state_at_once_migrate_it_once_and_lose_nothing(
    tmp_path: Path, layout: str
) -> None:
    path, _ = legacy_at(tmp_path, layout)
    with running(_RACING_OPENER, str(path)) as one, running(_RACING_OPENER, str(path)) as two:
        assert (hear(one), hear(two)) == ("ready", "ready")
        say(one, "go")
        say(two, "go")
        installs = [int(hear(one)), int(hear(two))]

    assert sorted(installs) == [0, 1]
    store = FileStateStore(path)
    assert store.load("counter").version == 5 + 40
    assert store.load("tracing-prod") == LEGACY_RECORDS[1]
    assert store.acks("tracing-prod") == sorted(
        LEGACY_ACKS["tracing-prod"], key=lambda a: a.consumer
    )
    assert leftovers(path) == []


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_opener_overtaken_by_another_migrating_the_same_state_uses_its_database(
    tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between looking at the legacy file and reading it, another opener may migrate it:
    the JSON is then renamed, or replaced by the database; that is no error."""
    from bridge.state import migrate

    path, _ = legacy_at(tmp_path, layout)
    read = migrate.read_legacy

    def overtaken(source: Path) -> migrate.Legacy:
        monkeypatch.setattr(migrate, "read_legacy", read)
        FileStateStore(path).policies()  # the other opener, just before our read
        return read(source)

    monkeypatch.setattr(migrate, "read_legacy", overtaken)

    assert_holds_the_legacy_state(FileStateStore(path))
    assert leftovers(path) == []


_MIGRATE_UNTIL = """
import sys, time
from pathlib import Path
from bridge.state import FileStateStore, migrate, sqlite_schema

def pause(*args, **kwargs):
    print("paused", flush=True)
    time.sleep(60)

step = sys.argv[2]
if step == "building":  # inside the build's transaction, half of the records written
    read = migrate.read_legacy

    def read_then_pause_halfway(path):
        legacy = read(path)
        rows = legacy.policies

        def rows_then_pause():
            yield from rows[: len(rows) // 2]
            pause()
            yield from rows[len(rows) // 2 :]

        legacy.policies = rows_then_pause()
        return legacy

    migrate.read_legacy = read_then_pause_halfway
else:
    setattr(sqlite_schema if step == "fsync_file" else migrate, step, pause)
FileStateStore(Path(sys.argv[1])).policies()
"""

# Where a kill can land, in the order of ``bridge.state.migrate``'s steps: building the
# database in a temporary file, before its fsync, before the backup (in place only), before
# its rename into place, and after it, before the old JSON's rename (old default name only).
KILL_POINTS = [
    *(("in place", s) for s in ("building", "fsync_file", "_write_backup", "_put_in_place")),
    *(("old default name", s) for s in ("building", "fsync_file", "_put_in_place", "_retire")),
]


@pytest.mark.parametrize(("layout", "step"), KILL_POINTS)
def test_a_migration_killed_at_any_step_is_finished_by_the_next_opener(
    tmp_path: Path, layout: str, step: str
) -> None:
    path, legacy = legacy_at(tmp_path, layout)
    with running(_MIGRATE_UNTIL, str(path), step) as migrator:
        assert hear(migrator) == "paused"
        os.kill(migrator.pid, signal.SIGKILL)
        migrator.wait(timeout=10)

    # What the kill left: the JSON untouched; the database in place only after its rename.
    assert legacy.read_text(encoding="utf-8") == LEGACY
    assert path.exists() == (layout == "in place" or step == "_retire")
    store = FileStateStore(path)

    assert_holds_the_legacy_state(store)
    assert path.read_bytes().startswith(SQLITE_MAGIC)
    if layout == "in place":
        assert path.with_name(path.name + ".v1.json").read_text(encoding="utf-8") == LEGACY
    else:
        assert not legacy.exists()
        assert legacy.with_name(legacy.name + ".migrated").read_text(encoding="utf-8") == LEGACY
    assert leftovers(path) == []


def test_a_stale_write_ahead_log_beside_a_legacy_state_is_never_replayed_onto_it(
    tmp_path: Path,
) -> None:
    """A ``-wal`` whose database is gone holds another database's pages; SQLite would apply
    them to the new one. The migration deletes it, and any dead temporary file, first."""
    path, _ = legacy_at(tmp_path, "old default name")
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("CREATE TABLE policies (junk)")
        conn.execute("INSERT INTO policies VALUES (randomblob(3000))")
        path.with_name(path.name + "-wal").write_bytes(other.with_name("other.db-wal").read_bytes())
    path.with_name(f".{path.name}.99999.tmp").write_bytes(b"half a database")

    store = FileStateStore(path)

    assert_holds_the_legacy_state(store)
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert leftovers(path) == []


def test_an_old_name_state_changed_after_its_import_is_left_where_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed after the database went into place but before the old JSON was renamed, the
    import is finished by the next opener only if the JSON is still the one imported."""
    from bridge.state import migrate

    path, legacy = legacy_at(tmp_path, "old default name")

    def killed(source: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(migrate, "_retire", killed)
    with pytest.raises(KeyboardInterrupt):
        FileStateStore(path).policies()
    monkeypatch.undo()
    changed = legacy_text([*LEGACY_RECORDS, PolicyRecord(policy="late", version=1)])
    legacy.write_text(changed, encoding="utf-8")

    store = FileStateStore(path)

    assert_holds_the_legacy_state(store)  # the database is the state; "late" came too late
    assert legacy.read_text(encoding="utf-8") == changed
    assert "changed after it was imported" in caplog.text
