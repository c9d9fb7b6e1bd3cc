"""The state store contract: every backend in ``state_backends.BACKENDS`` keeps policy
records with compare-and-swap, excludes concurrent runners with fenced leases renewed while
held, keeps the latest ack of each consumer's replicas, keeps run outcomes apart from the
record, gives one deployment id, reports damage in one line, and never stores key
material."""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from bridge.errors import LeaseHeld, LeaseLost, StateConflict, StateError
from bridge.secrets import KEY_PATTERN, fingerprint
from bridge.state import StateStore
from bridge.state.lease import HeldLease
from bridge.state.model import (
    EVENTS_KEPT,
    PROOF_MAX,
    REPLICAS_KEPT,
    Ack,
    Alerted,
    Event,
    Generation,
    Phase,
    PolicyRecord,
)
from tests.contract.state_backends import BACKENDS, Backend, Clock
from tests.support.keys import new_key

TTL = timedelta(minutes=5)
SHORT_TTL = timedelta(milliseconds=600)  # renewed every 200 ms
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
        missing_since=at + timedelta(days=3),
        idle_seen_at=at + timedelta(days=4),
        idle_last_used=at + timedelta(hours=5),
        adopted=n % 2 == 0,
        request=f"pubsub:{n}",
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
    store.record_run("only-ran", T0, "LangSmith 503")
    store.deployment_id()
    with store.lease("unsaved", "me", TTL):
        assert store.policies() == ["alpha", "mid", "zeta"]


def event(n: int) -> Event:
    return Event(
        at=T0 + timedelta(minutes=n),
        action="rotated" if n % 2 else "revoked",
        rotation_id=f"20250101T000000Z-{n:016x}",
        short_key=f"lsv2_sk_{n:04d}***",
        reason=f"reason {n}",
        actor="host:1",
    )


def test_records_round_trip_every_field_of_generations_in_every_phase(
    store: StateStore,
) -> None:
    alerts = {"overdue:r1": Alerted(digest="0123456789abcdef", at=T0)}
    record = store.load("p").model_copy(
        update={
            "last_run_at": T0,
            "last_error": "LangSmith 503",
            "last_success_at": T0,
            "alerts": alerts,
        }
    )
    for n, phase in enumerate(Phase):
        record = record.with_generation(full_generation(n, phase)).with_event(event(n))
    for name, field in Generation.model_fields.items():  # every field is really exercised
        assert any(getattr(g, name) != field.get_default() for g in record.generations), name
    for name, field in Event.model_fields.items():
        assert any(getattr(e, name) != field.get_default() for e in record.history), name
    for name, field in PolicyRecord.model_fields.items():
        assert getattr(record, name) != field.get_default() or name == "version", name

    saved = store.save(record)
    loaded = store.load("p")

    assert loaded == saved
    assert [g.phase for g in loaded.generations] == list(Phase)
    assert loaded.generations[0].started_at.utcoffset() == timedelta(0)
    assert loaded.history == record.history


def test_the_history_keeps_the_newest_events_in_order(store: StateStore) -> None:
    record = store.load("p")
    for n in range(EVENTS_KEPT + 5):
        record = record.with_event(event(n))

    loaded = store.load("p") if store.save(record) else None

    assert loaded is not None
    assert [e.reason for e in loaded.history] == [f"reason {n}" for n in range(5, EVENTS_KEPT + 5)]


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


def test_the_block_gets_a_handle_that_holds_until_the_block_ends(
    backend: Backend, store: StateStore
) -> None:
    with store.lease("p", "host:1", TTL) as lease:
        assert lease.policy == "p"
        assert not lease.lost
        assert lease.remaining > TTL - timedelta(seconds=30)
        lease.ensure()
        lease.ensure(timedelta(minutes=1))
        if backend.clock is not None:  # leases that expire cannot promise more than the TTL
            with pytest.raises(LeaseLost, match="expires in"):
                lease.ensure(TTL + timedelta(minutes=1))
            assert not lease.lost  # a margin it cannot meet does not lose the lease

    assert lease.lost
    assert lease.remaining == timedelta(0)
    with pytest.raises(LeaseLost, match="released"):
        lease.ensure()


def test_renewal_keeps_a_short_lease_held_well_past_its_ttl(
    backend: Backend, store: StateStore
) -> None:
    other = backend.open()
    with store.lease("p", "host:1", SHORT_TTL) as lease:
        record = store.save(store.load("p"))
        for _ in range(3):
            time.sleep(SHORT_TTL.total_seconds())
            with pytest.raises(LeaseHeld), other.lease("p", "host:2", SHORT_TTL):
                pass
            assert not lease.lost
            lease.ensure()
            record = store.save(record)

    assert record.version == 4
    with other.lease("p", "host:2", SHORT_TTL):  # released at the block's end
        pass
    other.close()


def needs_expiry(backend: Backend) -> Clock:
    if backend.clock is None:
        pytest.skip(f"{backend.name} leases cannot expire while their process lives")
    return backend.clock


@pytest.fixture
def no_renewals(monkeypatch: pytest.MonkeyPatch) -> Callable[[object], None]:
    """Stop leases from renewing (a runner frozen, its renewals lost); returns what starts
    a given lease's renewals after all."""
    start = HeldLease.start
    monkeypatch.setattr(HeldLease, "start", lambda self: None)
    return lambda lease: start(cast(HeldLease, lease))


def test_a_lease_taken_over_after_its_expiry_fences_the_late_holders_saves(
    backend: Backend, store: StateStore
) -> None:
    clock = needs_expiry(backend)
    other, third = backend.open(), backend.open()
    successor = contextlib.ExitStack()
    with store.lease("p", "host:1", TTL) as late:
        mine = store.save(store.load("p"))
        clock.advance(TTL + timedelta(seconds=1))  # the holder froze past its lease
        with other.lease("p", "host:2", TTL):
            theirs = other.save(other.load("p").model_copy(update={"last_error": "theirs"}))

            with pytest.raises(LeaseLost, match="'p'"):
                store.save(mine.model_copy(update={"last_error": "mine"}))
            with pytest.raises(LeaseLost):
                store.save(theirs.model_copy(update={"last_error": "mine, up to date"}))
            assert late.lost
            with pytest.raises(LeaseLost):
                late.ensure()
        successor.enter_context(third.lease("p", "host:3", TTL))
    # The late holder's exit released nothing of its successor's.
    with pytest.raises(LeaseHeld), other.lease("p", "host:2", TTL):
        pass
    successor.close()
    assert store.load("p") == theirs
    other.close()
    third.close()


def test_a_lease_whose_renewals_stop_lapses_and_another_runner_takes_it_over(
    backend: Backend, store: StateStore, no_renewals: Callable[[object], None]
) -> None:
    needs_expiry(backend)
    other = backend.open()
    with store.lease("p", "host:1", SHORT_TTL) as lease:
        record = store.save(store.load("p"))
        time.sleep(SHORT_TTL.total_seconds() * 1.5)

        assert lease.lost
        assert lease.remaining == timedelta(0)
        with pytest.raises(LeaseLost, match="expired"):
            lease.ensure()
        with pytest.raises(LeaseLost):
            store.save(record)
        with other.lease("p", "host:2", TTL):
            winner = other.save(record.model_copy(update={"last_error": "the new holder"}))
    assert store.load("p") == winner
    other.close()


def test_a_renewal_that_finds_another_holder_marks_the_lease_lost(
    backend: Backend, store: StateStore, no_renewals: Callable[[object], None]
) -> None:
    clock = needs_expiry(backend)
    other = backend.open()
    ttl = timedelta(seconds=3)  # renewed every second
    with store.lease("p", "host:1", ttl) as lease:
        clock.advance(ttl + timedelta(seconds=1))
        with other.lease("p", "host:2", TTL):
            no_renewals(lease)  # now they start, and find host:2 holding it
            deadline = time.monotonic() + 3 * ttl.total_seconds()
            while not lease.lost and time.monotonic() < deadline:
                time.sleep(0.05)
            assert lease.lost
            with pytest.raises(LeaseLost, match="host:2"):
                lease.ensure()
    other.close()


def test_a_runner_that_lost_its_lease_and_takes_it_again_holds_it_anew(
    backend: Backend, store: StateStore
) -> None:
    clock = needs_expiry(backend)
    other = backend.open()
    with store.lease("p", "host:1", TTL) as first:
        clock.advance(TTL + timedelta(seconds=1))
        with other.lease("p", "host:1", TTL):  # same owner string, new acquisition
            other.save(other.load("p"))
        with pytest.raises(LeaseLost):
            store.save(store.load("p"))
    with store.lease("p", "host:1", TTL) as second:
        assert not second.lost
        assert store.save(store.load("p")).version == 2
    assert first.lost
    other.close()


def test_saves_of_a_policy_whose_lease_this_store_does_not_hold_are_plain_cas(
    backend: Backend, store: StateStore
) -> None:
    """What acks and the AWS native-rotation path rely on."""
    other = backend.open()
    with other.lease("p", "host:2", TTL):
        saved = store.save(store.load("p"))
        with store.lease("q", "host:1", TTL):
            assert store.save(saved).version == 2
    other.close()


# -- acknowledgements ------------------------------------------------------------------


def ack(consumer: str, replica: str, fp: str, at: datetime = T0, proof: str | None = None) -> Ack:
    return Ack(consumer=consumer, replica=replica, fingerprint=fp, at=at, proof=proof)


def test_the_latest_ack_of_each_replica_wins_filtered_by_consumers(store: StateStore) -> None:
    old, new, other = (fingerprint(new_key()) for _ in range(3))
    store.record_ack("p", ack("api", "pod-b", old))
    store.record_ack("p", ack("api", "pod-a", old))
    store.record_ack("p", ack("worker", "default", other))
    store.record_ack("p", ack("api", "pod-b", new, T0 + timedelta(hours=1), proof="v1:abc"))
    store.record_ack("q", ack("api", "pod-a", other))

    acks = store.acks("p", ("worker", "api", "never-acked"))

    assert acks == [
        ack("api", "pod-a", old),
        ack("api", "pod-b", new, T0 + timedelta(hours=1), proof="v1:abc"),
        ack("worker", "default", other),
    ]
    assert [a.consumer for a in store.acks("p", ["worker"])] == ["worker"]
    assert store.acks("p", []) == []
    assert store.acks("another-policy", ["api"]) == []


def test_an_ack_without_a_replica_is_replica_default_without_a_proof(store: StateStore) -> None:
    fp = fingerprint(new_key())
    store.record_ack("p", Ack(consumer="api", fingerprint=fp, at=T0))

    assert store.acks("p", ["api"]) == [ack("api", "default", fp)]


@pytest.mark.parametrize(
    "replica",
    ["", "x" * 129, "pod a", "pod#1", "pod\n", "pöd", "pod*"],
    ids=["empty", "129 chars", "space", "hash", "newline", "non-ascii", "star"],
)
def test_a_malformed_replica_name_is_refused_and_nothing_is_recorded(
    store: StateStore, replica: str
) -> None:
    with pytest.raises(StateError, match="replica name"):
        store.record_ack("p", ack("api", replica, fingerprint(new_key())))

    assert store.acks("p", ["api"]) == []


def test_replica_names_may_use_every_allowed_character(store: StateStore) -> None:
    names = ["a", "x" * 128, "api-7d9f8:xk2lp@node/zone_a.1", "A-Z_.:@/-09"]
    for name in names:
        store.record_ack("p", ack("api", name, fingerprint(new_key())))

    assert sorted(a.replica for a in store.acks("p", ["api"])) == sorted(names)


def test_a_proof_longer_than_a_store_keeps_is_refused(store: StateStore) -> None:
    store.record_ack("p", ack("api", "r", fingerprint(new_key()), proof="p" * PROOF_MAX))
    with pytest.raises(StateError, match="proof"):
        store.record_ack("p", ack("api", "s", fingerprint(new_key()), proof="p" * (PROOF_MAX + 1)))

    assert [a.replica for a in store.acks("p", ["api"])] == ["r"]


def test_beyond_the_replicas_kept_those_heard_from_longest_ago_are_forgotten(
    store: StateStore,
) -> None:
    fp = fingerprint(new_key())
    for n in range(REPLICAS_KEPT + 3):
        store.record_ack("p", ack("api", f"pod-{n:03d}", fp, T0 + timedelta(seconds=n)))
    store.record_ack("p", ack("worker", "only", fp))  # another consumer's replicas count apart
    # A replica whose clock is behind is still kept when it reports: the others make room.
    store.record_ack("p", ack("api", "late", fp, T0 - timedelta(days=1)))

    kept = {a.replica for a in store.acks("p", ["api"])}

    assert len(kept) == REPLICAS_KEPT
    assert "late" in kept
    assert not {f"pod-{n:03d}" for n in range(4)} & kept
    assert {f"pod-{n:03d}" for n in range(4, REPLICAS_KEPT + 3)} <= kept
    assert [a.replica for a in store.acks("p", ["worker"])] == ["only"]


def test_an_ack_never_bumps_the_record_version(store: StateStore) -> None:
    """A consumer's ack must not make a runner's compare-and-swap fail."""
    record = store.save(store.load("p"))

    store.record_ack("p", Ack(consumer="api", fingerprint=fingerprint(new_key()), at=T0))

    assert store.save(record).version == 2


# -- runs ------------------------------------------------------------------------------


def test_record_run_sets_the_run_fields_load_returns(store: StateStore) -> None:
    t1, t2, t3 = (T0 + timedelta(minutes=n) for n in (1, 2, 3))

    store.record_run("p", t1, None)
    assert store.load("p").run().model_dump() == {
        "last_run_at": t1,
        "last_error": None,
        "last_success_at": t1,
    }
    store.record_run("p", t2, "LangSmith 503")
    failed = store.load("p")
    assert (failed.last_run_at, failed.last_error, failed.last_success_at) == (
        t2,
        "LangSmith 503",
        t1,
    )
    store.record_run("p", t3, None)
    healed = store.load("p")
    assert (healed.last_run_at, healed.last_error, healed.last_success_at) == (t3, None, t3)
    assert healed.version == 0  # a run alone is no record
    assert store.load("other").last_run_at is None


def test_record_run_never_races_the_records_compare_and_swap(store: StateStore) -> None:
    record = store.save(store.load("p").model_copy(update={"last_error": "from an old version"}))

    store.record_run("p", T0, "timeout")  # between a runner's load and its save
    saved = store.save(record.with_event(event(1)))
    loaded = store.load("p")

    assert saved.version == 2
    assert loaded.history == (event(1),)
    assert (loaded.last_run_at, loaded.last_error) == (T0, "timeout")  # the run's, not stale


def test_a_record_saved_before_any_run_keeps_its_own_run_fields(store: StateStore) -> None:
    """What a state of an older version holds: the run fields inside the record."""
    saved = store.save(store.load("p").model_copy(update={"last_run_at": T0, "last_error": "x"}))

    assert store.load("p") == saved


# -- the deployment id -----------------------------------------------------------------


def test_the_deployment_id_is_made_once_and_the_same_for_every_store(
    backend: Backend, store: StateStore
) -> None:
    made = store.deployment_id()
    other = backend.open()

    assert re.fullmatch(r"d[0-9a-f]{12}", made)
    assert store.deployment_id() == made
    assert other.deployment_id() == made
    other.save(other.load("p"))
    assert other.deployment_id() == made  # records written since do not change it
    other.close()


def test_concurrent_first_runs_get_the_same_deployment_id(backend: Backend) -> None:
    stores = [backend.open() for _ in range(6)]
    start = threading.Barrier(len(stores))
    ids: list[str] = []
    failures: list[BaseException] = []

    def first_run(store: StateStore) -> None:
        try:
            start.wait()
            ids.append(store.deployment_id())
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=first_run, args=(s,)) for s in stores]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)

    assert failures == []
    assert len(ids) == len(stores)
    assert len(set(ids)) == 1
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", ids[0])


def test_a_store_holding_records_and_no_id_is_deployment_default(store: StateStore) -> None:
    """Versions without deployment ids marked their keys with instance ``default``."""
    store.save(store.load("written-by-an-older-version"))

    assert store.deployment_id() == "default"
    assert store.deployment_id() == "default"


# -- damage ----------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["record", "ack", "run"])
def test_damaged_data_is_one_state_error_naming_the_store_and_policy(
    backend: Backend, store: StateStore, what: str
) -> None:
    if backend.damage is None:
        pytest.skip(f"{backend.name} holds typed objects: nothing can damage them")
    fp = fingerprint(new_key())
    healthy = store.save(store.load("healthy"))
    store.record_ack("healthy", ack("api", "default", fp))
    store.record_run("healthy", T0, None)
    backend.damage("broken", what)

    with pytest.raises(StateError) as caught:
        store.acks("broken", ["api"]) if what == "ack" else store.load("broken")

    message = str(caught.value)
    assert "\n" not in message
    assert "broken" in message
    assert "bridge-state" in message  # the file or the table
    assert "malformed" in message
    assert type(caught.value) is StateError
    assert store.load("healthy") == healthy.with_run(store.load("healthy").run())
    assert store.acks("healthy", ["api"]) == [ack("api", "default", fp)]


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
