"""The state store contract: every backend in ``state_backends.BACKENDS`` keeps policy
records with compare-and-swap, excludes concurrent runners with leases, keeps each
consumer's latest ack, and never stores key material."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bridge.errors import LeaseHeld, StateConflict
from bridge.secrets import KEY_PATTERN, fingerprint
from bridge.state import StateStore
from bridge.state.model import Ack, Generation, Phase, PolicyRecord
from tests.contract.state_backends import BACKENDS, Backend
from tests.support.keys import new_key

TTL = timedelta(minutes=5)
T0 = datetime(2025, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)


def full_generation(n: int, phase: Phase, key: str | None = None) -> Generation:
    """A generation with every field set, so a round trip that drops one is caught."""
    key = key or new_key()
    at = T0 + timedelta(days=n)
    return Generation(
        rotation_id=f"20250101T000000Z-{n:016x}",
        phase=phase,
        started_at=at,
        reason=f"scheduled rotation {n}",
        key_id=f"00000000-0000-4000-8000-{n:012d}",
        short_key=key[:12] + "***",
        fingerprint=fingerprint(key),
        created_at=at + timedelta(seconds=1),
        expires_at=at + timedelta(days=90),
        published_at=at + timedelta(minutes=1),
        superseded_at=at + timedelta(days=1),
        ended_at=at + timedelta(days=2),
        end_reason=f"ended {n}",
        targets={"file:out/app.env": f"v{n}", "aws:us-east-1:app": f"uuid-{n}"},
        native=n % 2 == 1,
        settings_digest=f"{n:016x}",
    )


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with BACKENDS[request.param](request) as opened:
        yield opened


@pytest.fixture
def store(backend: Backend) -> Iterator[StateStore]:
    opened = backend.open()
    yield opened
    opened.close()


# -- records and compare-and-swap ------------------------------------------------------


def test_a_policy_never_saved_loads_empty_at_version_0(store: StateStore) -> None:
    record = store.load("new-policy")

    assert record == PolicyRecord(policy="new-policy")
    assert record.version == 0
    assert store.policies() == []


def test_each_save_increments_the_version_and_is_what_load_returns(store: StateStore) -> None:
    first = store.save(store.load("p").with_generation(full_generation(1, Phase.CURRENT)))
    second = store.save(first.model_copy(update={"last_error": "boom"}))

    assert (first.version, second.version) == (1, 2)
    assert store.load("p") == second


@pytest.mark.parametrize("saves_before", [0, 1, 2], ids=["new policy", "v1", "v2"])
def test_a_save_from_a_stale_read_is_a_conflict_and_changes_nothing(
    store: StateStore, saves_before: int
) -> None:
    for _ in range(saves_before):
        store.save(store.load("p"))
    stale = store.load("p")
    winner = store.save(stale.with_generation(full_generation(1, Phase.MINTING)))

    with pytest.raises(StateConflict) as caught:
        store.save(stale.with_generation(full_generation(2, Phase.MINTING)))

    # The same write would lose again: a conflict is not for the engine to retry.
    assert not caught.value.retryable
    assert store.load("p") == winner


@pytest.fixture
def eager_thread_switching() -> Iterator[None]:
    """Switch threads as often as the interpreter can, so a check-then-write race that
    exists shows up (moto's own conditional writes lose updates this way)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("eager_thread_switching")
def test_concurrent_cas_increments_with_retry_on_conflict_lose_nothing(
    backend: Backend,
) -> None:
    threads, increments = 4, 10
    conflicts: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(threads)

    def runner(name: str) -> None:
        store = backend.open()  # each thread is its own runner
        lost = done = 0
        try:
            start.wait()
            while done < increments:
                record = store.load("counter")
                try:
                    store.save(record.model_copy(update={"last_error": f"{name} {done}"}))
                except StateConflict:
                    lost += 1
                    continue
                done += 1
            conflicts.append(lost)
        except BaseException as exc:
            failures.append(exc)
        finally:
            store.close()

    workers = [threading.Thread(target=runner, args=(f"t{i}",)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert failures == []
    assert len(conflicts) == threads
    assert backend.open().load("counter").version == threads * increments


def test_policies_lists_every_saved_policy_and_nothing_else(store: StateStore) -> None:
    for name in ("zeta", "alpha", "mid"):
        store.save(store.load(name))
    store.record_ack("alpha", Ack(consumer="api", fingerprint=fingerprint(new_key()), at=T0))
    with store.lease("unsaved", "me", TTL):
        assert store.policies() == ["alpha", "mid", "zeta"]


def test_records_round_trip_every_field_of_generations_in_every_phase(
    store: StateStore,
) -> None:
    record = store.load("p").model_copy(update={"last_run_at": T0, "last_error": "LangSmith 503"})
    for n, phase in enumerate(Phase):
        record = record.with_generation(full_generation(n, phase))
    for name, field in Generation.model_fields.items():  # every field is really exercised
        assert any(getattr(g, name) != field.get_default() for g in record.generations), name

    saved = store.save(record)
    loaded = store.load("p")

    assert loaded == saved
    assert [g.phase for g in loaded.generations] == list(Phase)
    assert loaded.generations[0].started_at.utcoffset() == timedelta(0)


# -- leases ----------------------------------------------------------------------------


def test_a_lease_excludes_a_second_runner_even_with_the_same_owner_name(
    backend: Backend, store: StateStore
) -> None:
    other = backend.open()
    with store.lease("p", "host:1", TTL):
        for owner in ("host:2", "host:1"):
            with pytest.raises(LeaseHeld), other.lease("p", owner, TTL):
                pass
        with other.lease("another-policy", "host:2", TTL):
            pass  # other policies are not blocked
    other.close()


def test_a_lease_excludes_another_thread_of_the_same_store(store: StateStore) -> None:
    outcome: list[BaseException | None] = []

    def try_lease() -> None:
        try:
            with store.lease("p", "host:1", TTL):
                outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with store.lease("p", "host:1", TTL):
        thread = threading.Thread(target=try_lease)
        thread.start()
        thread.join()

    assert len(outcome) == 1
    assert isinstance(outcome[0], LeaseHeld)


def test_a_lease_is_released_when_its_block_ends_or_raises(
    backend: Backend, store: StateStore
) -> None:
    other = backend.open()
    with store.lease("p", "first", TTL):
        pass
    with other.lease("p", "second", TTL):
        pass
    with pytest.raises(RuntimeError, match="reconcile failed"), store.lease("p", "first", TTL):
        raise RuntimeError("reconcile failed")
    with other.lease("p", "second", TTL):
        pass
    other.close()


def test_a_refused_lease_attempt_does_not_release_the_holder(
    backend: Backend, store: StateStore
) -> None:
    other, third = backend.open(), backend.open()
    with store.lease("p", "first", TTL):
        with pytest.raises(LeaseHeld), other.lease("p", "second", TTL):
            pass
        with pytest.raises(LeaseHeld), third.lease("p", "third", TTL):
            pass


# -- acknowledgements ------------------------------------------------------------------


def test_the_latest_ack_of_each_consumer_wins_filtered_by_consumers(store: StateStore) -> None:
    old, new, other = (fingerprint(new_key()) for _ in range(3))
    store.record_ack("p", Ack(consumer="api", fingerprint=old, at=T0))
    store.record_ack("p", Ack(consumer="worker", fingerprint=other, at=T0))
    store.record_ack("p", Ack(consumer="api", fingerprint=new, at=T0 + timedelta(hours=1)))
    store.record_ack("q", Ack(consumer="api", fingerprint=other, at=T0))

    acks = store.acks("p", ("api", "worker", "never-acked"))

    assert {name: ack.fingerprint for name, ack in acks.items()} == {"api": new, "worker": other}
    assert acks["api"] == Ack(consumer="api", fingerprint=new, at=T0 + timedelta(hours=1))
    assert set(store.acks("p", ["worker"])) == {"worker"}
    assert store.acks("p", []) == {}
    assert store.acks("another-policy", ["api"]) == {}


def test_an_ack_never_bumps_the_record_version(store: StateStore) -> None:
    """A consumer's ack must not make a runner's compare-and-swap fail."""
    record = store.save(store.load("p"))

    store.record_ack("p", Ack(consumer="api", fingerprint=fingerprint(new_key()), at=T0))

    assert store.save(record).version == 2


# -- what is stored --------------------------------------------------------------------


def test_storage_holds_fingerprints_and_short_keys_never_a_key(
    backend: Backend, store: StateStore
) -> None:
    keys = [new_key() for _ in range(3)]
    record = store.load("p")
    for n, key in enumerate(keys):
        # Even a careless caller handing a key to the model does not get it stored.
        careless = {**full_generation(n, Phase.CURRENT, key).model_dump(), "api_key": key}
        record = record.with_generation(Generation.model_validate(careless))
    store.save(record)
    store.record_ack("p", Ack(consumer="api", fingerprint=fingerprint(keys[-1]), at=T0))
    with store.lease("p", "me", TTL):
        raw = backend.raw()

    assert raw
    assert not KEY_PATTERN.search(raw)  # ``lsv2_sk_ab12***`` short keys are expected
    for key in keys:
        assert fingerprint(key) in raw
        assert key[:12] + "***" in raw
        assert key[12:40] not in raw
