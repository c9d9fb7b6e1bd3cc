"""``bridge.state.lease``: the lease handle and the renewal every backend shares, with a
scripted renew. What each backend's renew does is held to the state contract suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from bridge.errors import LeaseLost, StateError
from bridge.state import Lease
from bridge.state.lease import HeldLease, Leases, lease_token

TTL = timedelta(seconds=30)


class Busy(StateError):
    retryable = True


class Monotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Monotonic:
    return Monotonic()


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


@pytest.fixture
def started() -> Iterator[list[HeldLease]]:
    """Leases a test starts; stopped at the end whatever happens."""
    leases: list[HeldLease] = []
    yield leases
    for lease in leases:
        lease.stop()


# -- the handle ------------------------------------------------------------------------


def test_a_lease_counts_down_from_when_it_was_sent_and_is_lost_at_its_deadline(
    clock: Monotonic,
) -> None:
    sent_at = clock.now
    clock.advance(2)  # the acquisition took two seconds to come back
    lease: Lease = HeldLease("p", "me#1", TTL, sent_at=sent_at, monotonic=clock)

    assert lease.remaining == TTL - timedelta(seconds=2)
    lease.ensure(timedelta(seconds=27))
    with pytest.raises(LeaseLost, match=r"expires in 28\.000s, less than the 29\.000s needed"):
        lease.ensure(timedelta(seconds=29))
    assert not lease.lost

    clock.advance(28)

    assert lease.lost
    assert lease.remaining == timedelta(0)
    with pytest.raises(LeaseLost, match="'p' is lost: it expired before a renewal succeeded"):
        lease.ensure()


def test_a_lease_without_a_ttl_never_expires_until_released(clock: Monotonic) -> None:
    lease = HeldLease("p", "me#1", None, monotonic=clock)
    lease.start()  # nothing to renew: no thread

    clock.advance(10**9)

    assert not lease.lost
    assert lease.remaining == timedelta.max
    lease.ensure(timedelta(days=365))
    lease.stop()
    assert lease.lost
    with pytest.raises(LeaseLost, match="released"):
        lease.ensure()


def test_the_first_reason_a_lease_was_lost_is_the_one_it_keeps(clock: Monotonic) -> None:
    lease = HeldLease("p", "me#1", TTL, monotonic=clock)

    lease.lose("taken over by them#2")
    lease.stop()

    with pytest.raises(LeaseLost, match="taken over by them#2"):
        lease.ensure()


def test_tokens_are_unique_per_acquisition() -> None:
    tokens = {lease_token("host:1") for _ in range(100)}

    assert len(tokens) == 100
    assert all(token.startswith("host:1#") for token in tokens)


# -- renewal ---------------------------------------------------------------------------


def test_renewals_run_every_third_of_the_ttl_and_extend_from_when_they_were_sent(
    started: list[HeldLease],
) -> None:
    renewed = threading.Event()
    lease = HeldLease("p", "me#1", timedelta(milliseconds=300), renew=renewed.set)
    started.append(lease)

    lease.start()
    assert renewed.wait(1.0)
    time.sleep(0.5)  # past the TTL: only renewals can keep it

    assert not lease.lost
    assert lease.remaining > timedelta(0)
    assert [t.name for t in threading.enumerate()].count("lease-renewal p") == 1
    lease.stop()
    assert "lease-renewal p" not in [t.name for t in threading.enumerate()]


def test_a_renewal_that_finds_another_holder_loses_the_lease_for_good(
    started: list[HeldLease],
) -> None:
    calls: list[int] = []

    def renew() -> None:
        calls.append(1)
        raise LeaseLost("the lease was taken over by them#2")

    lease = HeldLease("p", "me#1", timedelta(seconds=3), renew=renew)
    started.append(lease)
    lease.start()

    assert wait_until(lambda: lease.lost)
    time.sleep(1.2)  # another renewal interval: no second attempt
    assert calls == [1]
    with pytest.raises(LeaseLost, match="taken over by them#2"):
        lease.ensure()


def test_failed_renewals_are_retried_sooner_and_one_success_keeps_the_lease(
    started: list[HeldLease],
) -> None:
    outcomes: list[BaseException | None] = [Busy("throttled"), TimeoutError(), None]
    attempts: list[float] = []

    def renew() -> None:
        attempts.append(time.monotonic())
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is not None:
            raise outcome

    lease = HeldLease("p", "me#1", timedelta(milliseconds=900), renew=renew)
    started.append(lease)
    lease.start()

    assert wait_until(lambda: len(attempts) >= 3)
    time.sleep(0.3)
    assert not lease.lost
    assert attempts[2] - attempts[0] < 0.6  # two retries within two renewal intervals


def test_a_lease_renewals_cannot_keep_is_lost_at_its_deadline(
    started: list[HeldLease],
) -> None:
    def renew() -> None:
        raise StateError("DynamoDB unreachable")

    lease = HeldLease("p", "me#1", timedelta(milliseconds=300), renew=renew)
    started.append(lease)
    lease.start()
    time.sleep(0.4)

    assert lease.lost
    with pytest.raises(LeaseLost, match="expired before a renewal succeeded"):
        lease.ensure()


def test_stopping_waits_for_a_renewal_in_flight() -> None:
    inside, leave = threading.Event(), threading.Event()
    finished: list[bool] = []

    def renew() -> None:
        inside.set()
        leave.wait(2)
        finished.append(True)

    lease = HeldLease("p", "me#1", timedelta(milliseconds=150), renew=renew)
    lease.start()
    assert inside.wait(1)
    threading.Timer(0.1, leave.set).start()

    lease.stop()

    assert finished == [True]  # the release that follows never races a renewal


# -- the leases a store holds ----------------------------------------------------------


def test_a_store_fences_only_the_policies_whose_lease_it_holds(clock: Monotonic) -> None:
    leases = Leases()
    released: list[str] = []
    lease = HeldLease("p", "me#1", TTL, monotonic=clock)

    assert leases.fence("p") is None
    with leases.hold(lease, release=lambda: released.append("p")) as held:
        assert leases.fence("p") is held
        assert leases.fence("q") is None
        clock.advance(TTL.total_seconds())
        with pytest.raises(LeaseLost):
            leases.fence("p")

    assert released == ["p"]
    assert leases.fence("p") is None  # the block ended: saves are plain again


def test_a_failing_release_never_hides_the_blocks_own_error(clock: Monotonic) -> None:
    leases = Leases()

    def release() -> None:
        raise StateError("the table is gone")

    with (
        pytest.raises(RuntimeError, match="reconcile failed"),
        leases.hold(HeldLease("p", "me#1", TTL, monotonic=clock), release),
    ):
        raise RuntimeError("reconcile failed")
    with (  # with no error of its own, the release's is the one raised
        pytest.raises(StateError, match="the table is gone"),
        leases.hold(HeldLease("p", "me#2", TTL, monotonic=clock), release),
    ):
        pass
    assert leases.fence("p") is None
