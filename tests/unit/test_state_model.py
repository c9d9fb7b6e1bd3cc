"""The state's models and the guard around a store: events trimmed to the newest, acks
checked before any store keeps them, the replicas a store forgets first, and
``GuardedState`` passing the lease handle and the new verbs through, retrying only what is
retryable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.engine.guarded import Guard, GuardedState
from bridge.errors import LeaseLost, StateError
from bridge.langsmith import RetryPolicy
from bridge.state import Ack, Event, PolicyRecord, Run
from bridge.state.model import (
    EVENTS_KEPT,
    PROOF_MAX,
    REPLICAS_KEPT,
    check_ack,
    forgotten,
    new_deployment_id,
)
from tests.support.fakes import MemoryState
from tests.support.faults import ALWAYS

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TTL = timedelta(minutes=5)


class Busy(StateError):
    retryable = True


def test_with_event_appends_and_keeps_the_newest_events() -> None:
    record = PolicyRecord(policy="p")
    for n in range(EVENTS_KEPT + 1):
        record = record.with_event(Event(at=T0 + timedelta(seconds=n), action="rotated"))

    assert len(record.history) == EVENTS_KEPT
    assert record.history[0].at == T0 + timedelta(seconds=1)
    assert record.history[-1].at == T0 + timedelta(seconds=EVENTS_KEPT)


def test_records_of_older_versions_load_with_the_new_fields_defaulted() -> None:
    record = PolicyRecord.model_validate_json('{"policy": "p", "version": 2}')

    assert record.history == ()
    assert record.last_success_at is None
    assert record.run() == Run()
    ack = Ack.model_validate_json('{"consumer": "api", "fingerprint": "sha256:1", "at": 0}')
    assert (ack.replica, ack.proof) == ("default", None)


def test_with_run_sets_exactly_the_run_fields() -> None:
    run = Run(last_run_at=T0, last_error="x", last_success_at=T0 - timedelta(days=1))

    record = PolicyRecord(policy="p", version=3).with_run(run)

    assert record.run() == run
    assert record.version == 3


def test_deployment_ids_are_d_and_12_hex_digits() -> None:
    ids = {new_deployment_id() for _ in range(50)}

    assert len(ids) == 50
    assert all(len(i) == 13 and i[0] == "d" and int(i[1:], 16) >= 0 for i in ids)
    assert all(i == i.lower() for i in ids)


def test_check_ack_names_the_consumer_and_what_is_wrong() -> None:
    check_ack(Ack(consumer="api", replica="a" * 128, fingerprint="f", at=T0, proof="p" * 1024))

    with pytest.raises(StateError, match=r"consumer 'api': replica name 'a b' must be"):
        check_ack(Ack(consumer="api", replica="a b", fingerprint="f", at=T0))
    with pytest.raises(StateError, match=f"proof of {PROOF_MAX + 1} characters"):
        check_ack(Ack(consumer="api", fingerprint="f", at=T0, proof="p" * (PROOF_MAX + 1)))


def test_the_replicas_forgotten_are_those_heard_from_longest_ago_never_the_new_one() -> None:
    def ack(replica: str, seconds: int) -> Ack:
        return Ack(
            consumer="api", replica=replica, fingerprint="f", at=T0 + timedelta(seconds=seconds)
        )

    held = [ack(f"r{n:03d}", n) for n in range(REPLICAS_KEPT)]
    new = ack("new", -1)  # its clock is behind: still the one just heard from

    assert forgotten([*held, new], new) == [held[0]]
    assert forgotten(held[:-1], held[-2]) == []
    assert forgotten([*held, ack("r000", 999)], ack("r000", 999)) == []  # a replacement


# -- GuardedState ----------------------------------------------------------------------


def guarded(state: MemoryState, attempts: int = 3) -> GuardedState:
    retry = RetryPolicy(max_attempts=attempts, base_delay=0.0)
    return GuardedState(state, Guard(per_store=2, retry=retry, sleep=lambda _: None))


def test_the_guard_passes_the_lease_handle_and_the_fence_through() -> None:
    clock_offset = [timedelta(0)]
    state = MemoryState(clock=lambda: datetime.now(UTC) + clock_offset[0])
    store = guarded(state)

    with store.lease("p", "host:1", TTL) as lease:
        assert lease.policy == "p"
        assert not lease.lost
        store.save(store.load("p"))
        clock_offset[0] = TTL + timedelta(seconds=1)
        with state.sibling().lease("p", "host:2", TTL):
            with pytest.raises(LeaseLost):
                store.save(store.load("p"))
            assert lease.lost

    assert [c.verb for c in state.calls].count("save") == 2  # a lost lease is not retried


def test_the_guard_retries_the_new_verbs_while_retryable() -> None:
    state = MemoryState()
    store = guarded(state)
    state.fail("record_run", Busy("locked"), times=2)
    state.fail("deployment_id", Busy("locked"), times=1)

    store.record_run("p", T0, None)
    made = store.deployment_id()

    assert store.load("p").last_success_at == T0
    assert made == state.deployment
    assert [c.verb for c in state.calls].count("record_run") == 3
    state.fail("record_run", Busy("locked"), times=ALWAYS)
    with pytest.raises(Busy):
        store.record_run("p", T0, "x")


def test_the_guard_retries_taking_a_lease_and_returns_acks_as_a_list() -> None:
    state = MemoryState()
    store = guarded(state)
    state.fail("lease", Busy("locked"), times=1)
    store.record_ack("p", Ack(consumer="api", replica="r1", fingerprint="f", at=T0))

    with store.lease("p", "host:1", TTL) as lease:
        assert not lease.lost

    assert store.acks("p", ["api"]) == [Ack(consumer="api", replica="r1", fingerprint="f", at=T0)]
