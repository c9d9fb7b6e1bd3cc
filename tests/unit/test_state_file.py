"""``FileStateStore``: compare-and-swap records, acks, leases across threads and processes,
and a state file that is never damaged further when it is found damaged."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.errors import LeaseHeld, StateConflict, StateError
from bridge.secrets import fingerprint
from bridge.state import FileStateStore
from bridge.state.model import HISTORY_KEPT, Ack, Generation, Phase, PolicyRecord

TTL = timedelta(minutes=5)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


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
    return tmp_path / "state" / "bridge-state.json"


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


# -- records and compare-and-swap ------------------------------------------------------


def test_a_policy_never_saved_loads_empty_at_version_0(store: FileStateStore, path: Path) -> None:
    record = store.load("new-policy")

    assert (record.policy, record.version, record.generations) == ("new-policy", 0, ())
    assert store.policies() == []
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

    assert caught.value.retryable
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
    """Two writes inside one coarse timestamp tick can leave (inode, size, mtime) as they
    were (ext4 hands the freed inode straight back); the loser of a CAS must still see the
    winner's record, or it retries against the same stale copy forever."""
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
while done < 50:
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
    workers = [child(_INCREMENTS, str(path), name) for name in ("one", "two")]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == "ready\n"
        for worker in workers:  # start both as close together as possible
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        for worker in workers:
            worker.communicate(timeout=30)
            assert worker.returncode == 0
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()

    assert store.load("counter").version == 100


# -- acknowledgements ------------------------------------------------------------------


def test_the_latest_ack_of_each_consumer_wins(store: FileStateStore) -> None:
    old, new, other = fingerprint(new_key()), fingerprint(new_key()), fingerprint(new_key())
    store.record_ack("p", Ack(consumer="api", fingerprint=old, at=T0))
    store.record_ack("p", Ack(consumer="worker", fingerprint=other, at=T0))
    store.record_ack("p", Ack(consumer="api", fingerprint=new, at=T0 + timedelta(hours=1)))

    acks = store.acks("p")

    assert {name: ack.fingerprint for name, ack in acks.items()} == {"api": new, "worker": other}
    assert acks["api"].at == T0 + timedelta(hours=1)
    assert store.acks("another-policy") == {}


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
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"

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


# -- damaged files ---------------------------------------------------------------------

DAMAGED = {
    "truncated JSON": '{"format": 1, "policies": {"p": ',
    "not JSON at all": "policy p version 3\n",
    "a JSON list": "[]",
    "no format": '{"policies": {}}',
    "a future format": '{"format": 99, "policies": {}, "acks": {}}',
}


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_or_unknown_state_file_is_an_error_and_is_left_untouched(
    store: FileStateStore, path: Path, content: str
) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    before = (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino)
    ack = Ack(consumer="api", fingerprint=fingerprint(new_key()), at=T0)

    for attempt in (
        lambda: store.load("p"),
        store.policies,
        lambda: store.acks("p"),
        lambda: store.save(PolicyRecord(policy="p")),
        lambda: store.record_ack("p", ack),
    ):
        with pytest.raises(StateError) as caught:
            attempt()
        assert not isinstance(caught.value, StateConflict)

    assert (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino) == before


@pytest.mark.parametrize("section", ["policies", "acks"])
def test_a_malformed_record_is_a_state_error(
    store: FileStateStore, path: Path, section: str
) -> None:
    path.parent.mkdir(parents=True)
    broken = {"p": {"version": "many"}} if section == "policies" else {"p": {"api": {"at": 1}}}
    path.write_text(json.dumps({"format": 1, section: broken}), encoding="utf-8")

    with pytest.raises(StateError):
        store.load("p") if section == "policies" else store.acks("p")


# -- what is written -------------------------------------------------------------------


def test_the_state_file_holds_fingerprints_and_short_keys_never_a_key(
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

    text = path.read_text(encoding="utf-8")

    for key in keys:
        assert fingerprint(key) in text
        assert key not in text
        assert key[12:40] not in text
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
