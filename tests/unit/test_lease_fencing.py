"""Issue 7, item 4, on the engine's side: a runner whose lease lapsed starts nothing.

The state's own writes are fenced by the store (the contract suite checks every backend);
here: before every side effect the executor checks that its lease outlasts the longest call
it is about to make, so a runner that lost its policy to a takeover cannot publish or delete
behind the new holder's back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.engine.executor import PolicyExecutor
from bridge.engine.plan import Rotate
from bridge.errors import LeaseLost
from bridge.state import Phase
from tests.unit import test_executor
from tests.unit.test_executor import World

world = test_executor.world  # the fixture, shared

MARGIN = timedelta(seconds=70)


class LapsingLease:
    """A lease that is lost after ``good`` checks; records the margins asked for."""

    policy = "p"

    def __init__(self, good: int) -> None:
        self.good = good
        self.margins: list[timedelta] = []

    @property
    def lost(self) -> bool:
        return len(self.margins) > self.good

    @property
    def remaining(self) -> timedelta:
        return timedelta(0) if self.lost else timedelta(minutes=5)

    def ensure(self, margin: timedelta = timedelta(0)) -> None:
        self.margins.append(margin)
        if self.lost:
            raise LeaseLost("policy 'p': the lease was taken over; nothing written")


def leased(world: World, lease: LapsingLease) -> PolicyExecutor:
    executor = world.executor()
    executor.ctx = executor.ctx.__class__(**{**executor.ctx.__dict__, "call_margin": MARGIN})
    executor.lease = lease
    return executor


def test_a_lease_lost_after_the_mint_publishes_nothing(world: World) -> None:
    lease = LapsingLease(good=1)  # the mint's check passes; the first publish's fails

    with pytest.raises(LeaseLost):
        leased(world, lease).execute(Rotate("scheduled"))

    assert world.held_by("A") is None and world.held_by("B") is None
    assert world.newest().phase is Phase.PUBLISHING  # the new holder abandons it
    assert lease.margins == [MARGIN, MARGIN]


def test_a_lease_lost_before_the_mint_mints_nothing(world: World) -> None:
    with pytest.raises(LeaseLost):
        leased(world, LapsingLease(good=0)).execute(Rotate("scheduled"))

    assert world.keys.listing == {}
    assert world.newest().phase is Phase.MINTING  # the intent, for the next holder


def test_every_side_effect_of_a_rotation_is_checked_against_the_lease(world: World) -> None:
    lease = LapsingLease(good=100)

    leased(world, lease).execute(Rotate("scheduled"))

    assert len(lease.margins) == 3  # the mint and each of the two publishes
