"""What the executor guarantees about the order of its side effects, and what a failure at
each step leaves behind; and how the engine's guard retries a store's failures.

Everything runs at unit speed on fakes of LangSmith (``FakeKeyService``) and of the state
(``MemoryState``), and on real file targets wrapped in ``FaultyProvider``. All of them
record into one list, so a test reads the trail of a step in the order it happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.config import BridgeConfig, Policy
from bridge.engine import Engine, RunReport
from bridge.engine.executor import Context, PolicyExecutor
from bridge.engine.guarded import Guard
from bridge.engine.plan import Abandon, DeleteOrphan, Resume, Revoke, Rotate, Step
from bridge.errors import (
    LangSmithAuthError,
    LangSmithRateLimited,
    LangSmithServerError,
    ProviderAccessDenied,
    ProviderUnavailable,
    RotationError,
)
from bridge.langsmith import RetryPolicy
from bridge.marker import Marker
from bridge.secrets import KEY_PATTERN
from bridge.state import Generation, Phase
from providers import Connections
from tests.support.fakes import FakeKeyService, MemoryState
from tests.support.faults import ALWAYS, Call, FaultyProvider, faulty_targets

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
VERIFY_ATTEMPTS = 3
VERIFY_DELAY = timedelta(seconds=2)


def unavailable(where: str, operation: str = "publish") -> ProviderUnavailable:
    return ProviderUnavailable(
        "disk on fire", provider="file", operation=operation, reference=where
    )


def rejected() -> LangSmithAuthError:
    return LangSmithAuthError("Invalid token", operation="verify_key", status=401)


def server_error(operation: str) -> LangSmithServerError:
    return LangSmithServerError("bad gateway", operation=operation, status=502)


def policy_fields(out: Path) -> dict[str, Any]:
    """Policy ``p`` writing two files: target A (dotenv) and target B (JSON)."""
    return {
        "name": "p",
        "ack": "grace",
        "default_workspace": "00000000-0000-4000-8000-000000000001",
        "target": [
            {"provider": "file", "path": str(out / "a.env")},
            {"provider": "file", "path": str(out / "b.json"), "format": "json"},
        ],
    }


# -- the executor, on its own ----------------------------------------------------------


@dataclass
class World:
    """One policy with targets A and B, LangSmith and the state, recording into ``calls``."""

    calls: list[Call]
    keys: FakeKeyService
    state: MemoryState
    policy: Policy
    targets: dict[str, FaultyProvider]  # "A", "B" -> the wrapped file target
    slept: list[float]
    step_calls: list[Call] = field(default_factory=list)  # what the last step called

    def target_id(self, name: str) -> str:
        return self.policy.target["AB".index(name)].target_id

    def executor(self) -> PolicyExecutor:
        ctx = Context(
            keys=self.keys,
            store=self.state,
            clock=lambda: NOW,
            sleep=self.slept.append,
            instance="default",
            endpoint="https://api.example",
            verify_attempts=VERIFY_ATTEMPTS,
            verify_delay=VERIFY_DELAY,
        )
        providers = {self.target_id(name): target for name, target in self.targets.items()}
        return PolicyExecutor(ctx, self.policy, self.state.load("p"), providers)

    @property
    def trail(self) -> list[str]:
        """The last step's calls, in order, as ``where.verb``."""
        return [call.name for call in self.step_calls]

    def execute(self, step: Step) -> None:
        """Carry out ``step`` on the stored record, keeping the calls it made."""
        executor = self.executor()  # loads the record: not part of the step's calls
        start = len(self.calls)
        try:
            executor.execute(step)
        finally:
            self.step_calls = self.calls[start:]

    def rotate(self) -> Generation:
        """A rotation carried through; the generation it made current."""
        self.execute(Rotate("scheduled"))
        current = self.state.load("p").current()
        assert current is not None
        return current

    def generation(self, rotation_id: str) -> Generation:
        return self.state.records["p"].find(rotation_id)

    def newest(self) -> Generation:
        return self.state.records["p"].generations[-1]

    def held_by(self, name: str) -> str | None:
        """The fingerprint of the key target ``name`` holds (read without recording)."""
        stored = self.targets[name].inner.read()
        return stored.fingerprint if stored else None


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    calls: list[Call] = []
    policy = Policy.model_validate(policy_fields(tmp_path / "out"))
    with Connections() as connections:
        targets = {
            name: FaultyProvider(connections.open(target, "p"), calls=calls, where=name)
            for name, target in zip("AB", policy.target, strict=True)
        }
        yield World(
            calls=calls,
            keys=FakeKeyService(calls=calls, clock=lambda: NOW),
            state=MemoryState(calls=calls),
            policy=policy,
            targets=targets,
            slept=[],
        )


def test_the_intent_is_saved_before_the_key_is_minted_and_names_the_keys_marker(
    world: World,
) -> None:
    """Catches a mint before the intent is recorded, and a key whose marker names another
    rotation: either way a run killed right after the mint leaves a key that no record
    announces, and the next run could not tell it is this rotation's."""
    world.execute(Rotate("scheduled"))

    assert world.trail[:2] == ["state.save", "keys.create_service_key"]
    (intent,) = world.state.history[0].generations
    assert intent.phase is Phase.MINTING and intent.key_id is None
    description = world.step_calls[1].arg
    assert description == Marker("default", "p", intent.rotation_id).description()


def test_a_mint_that_fails_leaves_the_intent_recorded_and_touches_no_target(
    world: World,
) -> None:
    """Catches dropping or undoing the intent when LangSmith fails: the key may exist even
    so (the answer can be lost), and the recorded intent is how the next run finds it."""
    world.keys.fail("create_service_key", server_error("create_service_key"))

    with pytest.raises(LangSmithServerError):
        world.execute(Rotate("scheduled"))

    assert world.trail == ["state.save", "keys.create_service_key"]
    (generation,) = world.state.records["p"].generations
    assert generation.phase is Phase.MINTING and generation.key_id is None


def test_the_key_id_is_saved_right_after_the_mint_and_before_verification(
    world: World,
) -> None:
    """Catches verifying (or publishing) before the new key's id is recorded: a failure or
    crash in between would leave a live key the state does not know. The record carries
    the id, short key and fingerprint, never the key itself."""
    world.execute(Rotate("scheduled"))

    mint = world.trail.index("keys.create_service_key")
    assert world.trail[mint + 1 : mint + 3] == ["state.save", "keys.verify_key"]
    (key_id,) = world.keys.listing
    minted = world.newest()
    recorded = world.state.history[1].find(minted.rotation_id)
    assert recorded.phase is Phase.PUBLISHING
    assert recorded.key_id == key_id
    assert recorded.short_key == world.keys.listing[key_id].short_key
    assert recorded.fingerprint == world.keys.secret(key_id).fingerprint
    assert recorded.expires_at == NOW + world.policy.key_ttl
    for record in world.state.history:
        assert not KEY_PATTERN.search(record.model_dump_json())


def test_a_key_that_fails_verification_is_deleted_its_generation_abandoned_and_nothing_published(
    world: World,
) -> None:
    """Catches publishing an unverified key, leaking a rejected key (not deleting it), not
    abandoning its generation, and a wrong number of verification attempts or pauses."""
    world.keys.fail("verify_key", rejected(), times=ALWAYS)

    with pytest.raises(RotationError, match="rejected by LangSmith 3 time"):
        world.execute(Rotate("scheduled"))

    assert world.trail == [
        "state.save",
        "keys.create_service_key",
        "state.save",
        *["keys.verify_key"] * VERIFY_ATTEMPTS,
        "keys.delete_service_key",
        "state.save",
    ]
    assert world.slept == [VERIFY_DELAY.total_seconds()] * (VERIFY_ATTEMPTS - 1)
    assert world.keys.listing == {}
    (generation,) = world.state.records["p"].generations
    assert generation.phase is Phase.ABANDONED
    assert generation.end_reason == "new key failed verification"
    assert generation.ended_at == NOW
    assert world.held_by("A") is None and world.held_by("B") is None


def test_a_key_rejected_fewer_times_than_verify_attempts_is_published(world: World) -> None:
    """Catches giving up at the first 401: LangSmith caches auth results, so a brand-new
    key may be refused for a moment before it is accepted everywhere."""
    world.keys.fail("verify_key", rejected(), times=VERIFY_ATTEMPTS - 1)

    current = world.rotate()

    assert world.trail.count("keys.verify_key") == VERIFY_ATTEMPTS
    assert world.held_by("A") == world.held_by("B") == current.fingerprint


def test_a_verification_that_fails_for_another_reason_keeps_the_key_and_the_generation(
    world: World,
) -> None:
    """Catches treating any verification failure as a rejection: an outage of LangSmith
    says nothing about the key, so the key is kept (nothing published) and the generation
    stays ``publishing`` for the next run to decide on."""
    world.keys.fail("verify_key", server_error("verify_key"))

    with pytest.raises(LangSmithServerError):
        world.execute(Rotate("scheduled"))

    assert world.trail[-1] == "keys.verify_key"
    generation = world.newest()
    assert generation.phase is Phase.PUBLISHING and generation.key_id in world.keys.listing
    assert world.held_by("A") is None and world.held_by("B") is None


def test_a_publish_failing_on_the_second_target_leaves_the_first_serving_and_supersedes_nothing(
    world: World,
) -> None:
    """What a publish failure on target B (after A took the new key) leaves behind:

    * the new generation stays ``publishing`` with its key id: the key is not deleted,
      since A's consumers may already use it;
    * no target version is recorded yet (versions are saved with the promotion, so the
      state holds none of this publish), but A holds the new key, which is what the next
      run resumes from;
    * the previous generation is still ``current``, not superseded: B still serves it.

    Catches promoting or superseding before every target holds the new key (which would
    let the old key be revoked under B's consumers), and deleting a key A already serves.
    """
    old = world.rotate()
    world.targets["B"].faults.arm("publish", unavailable("B"))

    with pytest.raises(ProviderUnavailable, match="disk on fire"):
        world.execute(Rotate("scheduled"))

    assert world.trail[-2:] == ["A.publish", "B.publish"]
    new = world.newest()
    assert new.phase is Phase.PUBLISHING and new.key_id in world.keys.listing
    assert new.targets == {}
    assert world.generation(old.rotation_id).phase is Phase.CURRENT
    assert world.generation(old.rotation_id).superseded_at is None
    assert world.held_by("A") == new.fingerprint
    assert world.held_by("B") == old.fingerprint


def test_resuming_reads_the_key_back_from_a_target_that_holds_it_and_completes_the_rotation(
    world: World,
) -> None:
    """Catches a resume that mints another key instead of finishing the pending one, that
    skips verification, or that promotes without recording every target's version; the
    old generation becomes superseded at that instant."""
    old = world.rotate()
    world.targets["B"].faults.arm("publish", unavailable("B"))
    with pytest.raises(ProviderUnavailable):
        world.execute(Rotate("scheduled"))
    pending = world.newest()
    a, b = world.target_id("A"), world.target_id("B")

    world.execute(Resume(pending.rotation_id, source=a, targets=(a, b)))

    assert world.trail == ["A.read", "keys.verify_key", "A.publish", "B.publish", "state.save"]
    current = world.generation(pending.rotation_id)
    assert current.phase is Phase.CURRENT and set(current.targets) == {a, b}
    assert world.generation(old.rotation_id).phase is Phase.SUPERSEDED
    assert world.generation(old.rotation_id).superseded_at == NOW
    assert world.held_by("B") == pending.fingerprint
    assert len(world.keys.listing) == 2  # the old key lives on until its gate opens


def revoke(generation: Generation, *, already_gone: bool = False) -> Revoke:
    assert generation.key_id and generation.short_key
    return Revoke(
        generation.rotation_id,
        generation.key_id,
        generation.short_key,
        "gate open",
        already_gone=already_gone,
    )


def test_a_revoke_deletes_the_key_then_retires_its_versions_then_marks_it_revoked(
    world: World,
) -> None:
    """Catches marking ``revoked`` before the key is deleted and its versions retired (a
    crash would leave a live key or kept versions that no run revisits), retiring before
    the key is gone, and retiring other versions than those the generation wrote."""
    old = world.rotate()
    world.rotate()

    world.execute(revoke(world.generation(old.rotation_id)))

    assert world.trail == ["keys.delete_service_key", "A.retire", "B.retire", "state.save"]
    retired = [call.arg for call in world.calls if call.verb == "retire"]
    assert retired == [old.targets[world.target_id("A")], old.targets[world.target_id("B")]]
    assert old.key_id not in world.keys.listing
    revoked = world.generation(old.rotation_id)
    assert revoked.phase is Phase.REVOKED
    assert (revoked.ended_at, revoked.end_reason) == (NOW, "gate open")


def test_a_revoke_whose_delete_fails_retires_nothing_and_stays_superseded(world: World) -> None:
    """Catches retiring versions or recording ``revoked`` while the key is still alive."""
    old = world.rotate()
    world.rotate()
    world.keys.fail("delete_service_key", server_error("delete_service_key"))

    with pytest.raises(LangSmithServerError):
        world.execute(revoke(world.generation(old.rotation_id)))

    assert world.trail == ["keys.delete_service_key"]
    assert world.generation(old.rotation_id).phase is Phase.SUPERSEDED


def test_a_revoke_whose_retire_fails_is_not_marked_revoked(world: World) -> None:
    """Catches recording ``revoked`` before every version is retired: the generation stays
    superseded (its key already gone), so the next run retires what is left."""
    old = world.rotate()
    world.rotate()
    world.targets["B"].faults.arm("retire", unavailable("B", "retire"))

    with pytest.raises(ProviderUnavailable):
        world.execute(revoke(world.generation(old.rotation_id)))

    assert world.trail == ["keys.delete_service_key", "A.retire", "B.retire"]
    assert old.key_id not in world.keys.listing
    assert world.generation(old.rotation_id).phase is Phase.SUPERSEDED


def test_a_revoke_of_a_key_known_to_be_gone_retires_and_marks_it_without_deleting(
    world: World,
) -> None:
    """Catches a delete call for a key the listing already showed gone."""
    old = world.rotate()
    world.rotate()
    assert old.key_id
    world.keys.drop(old.key_id)

    world.execute(revoke(world.generation(old.rotation_id), already_gone=True))

    assert world.trail == ["A.retire", "B.retire", "state.save"]
    assert world.generation(old.rotation_id).phase is Phase.REVOKED


def test_a_delete_answering_404_counts_as_gone(world: World) -> None:
    """Catches treating LangSmith's 404 on delete as a failure: a key deleted out of band
    (or by a run killed after its delete) is what the revoke wanted."""
    old = world.rotate()
    world.rotate()
    assert old.key_id
    world.keys.drop(old.key_id)

    world.execute(revoke(world.generation(old.rotation_id)))

    assert world.trail == ["keys.delete_service_key", "A.retire", "B.retire", "state.save"]
    assert world.generation(old.rotation_id).phase is Phase.REVOKED


def test_an_orphan_already_deleted_counts_as_deleted(world: World) -> None:
    """Catches an orphan clean-up that fails on a key someone deleted first."""
    orphan = world.keys.seed(Marker("default", "p", "r-orphan").description())
    world.keys.drop(orphan.info.id)

    world.execute(DeleteOrphan(orphan.info.id, orphan.info.short_key, "r-orphan"))

    assert world.trail == ["keys.delete_service_key", "state.save"]  # the history's entry
    assert world.state.load("p").history[-1].action == "orphan_deleted"


def pending_generation(world: World) -> Generation:
    """A rotation whose publish failed on A: its key is minted, recorded, and nowhere."""
    world.targets["A"].faults.arm("publish", unavailable("A"))
    with pytest.raises(ProviderUnavailable):
        world.execute(Rotate("scheduled"))
    return world.newest()


def abandon(generation: Generation) -> Abandon:
    return Abandon(generation.rotation_id, generation.key_id, generation.short_key, "lost")


def test_abandoning_discards_what_is_staged_before_deleting_the_key(world: World) -> None:
    """Catches deleting the key while a store still stages it (an AWS ``AWSPENDING`` that
    points at a dead key), and recording ``abandoned`` before both are done."""
    pending = pending_generation(world)

    world.execute(abandon(pending))

    assert world.trail == ["A.discard", "B.discard", "keys.delete_service_key", "state.save"]
    assert [call.arg for call in world.calls if call.verb == "discard"] == [pending.rotation_id] * 2
    assert pending.key_id not in world.keys.listing
    abandoned = world.generation(pending.rotation_id)
    assert (abandoned.phase, abandoned.end_reason) == (Phase.ABANDONED, "lost")


def test_an_abandon_whose_discard_fails_keeps_the_key_and_the_generation(world: World) -> None:
    """Catches deleting the key, or recording ``abandoned``, before every target dropped
    what it staged: the next run must find the generation and discard again."""
    pending = pending_generation(world)
    world.targets["B"].faults.arm("discard", unavailable("B", "discard"))

    with pytest.raises(ProviderUnavailable):
        world.execute(abandon(pending))

    assert world.trail == ["A.discard", "B.discard"]
    assert pending.key_id in world.keys.listing
    assert world.generation(pending.rotation_id).phase is Phase.PUBLISHING


def test_abandoning_an_intent_with_no_key_discards_and_deletes_nothing(world: World) -> None:
    """Catches a delete call for a key that was never minted (the intent's mint failed)."""
    world.keys.fail("create_service_key", server_error("create_service_key"))
    with pytest.raises(LangSmithServerError):
        world.execute(Rotate("scheduled"))
    intent = world.newest()

    world.execute(abandon(intent))

    assert world.trail == ["A.discard", "B.discard", "state.save"]
    assert world.generation(intent.rotation_id).phase is Phase.ABANDONED


# -- the guard's retries ---------------------------------------------------------------

RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.03)


class Failing:
    """A call that raises ``errors`` one by one, then returns ``result``; counts calls."""

    def __init__(self, errors: list[Exception], result: str = "done") -> None:
        self.errors = errors
        self.result = result
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def test_the_guard_retries_a_retryable_failure_up_to_max_attempts_with_the_policys_backoff() -> (
    None
):
    """Catches an off-by-one in attempts, a backoff that does not double or ignores
    ``max_delay``, and a sleep after the last attempt. With ``rand`` fixed at 0.5 the
    full-jitter delays are half of 0.01, 0.02 and min(0.04, 0.03)."""
    slept: list[float] = []
    guard = Guard(per_store=1, retry=RETRY, sleep=slept.append, rand=lambda: 0.5)
    call = Failing([unavailable("A") for _ in range(RETRY.max_attempts)])

    with pytest.raises(ProviderUnavailable):
        guard.call("file", "publish", call)

    assert call.count == RETRY.max_attempts
    assert slept == pytest.approx([0.005, 0.01, 0.015])


def test_the_guard_returns_what_a_retried_call_finally_returns() -> None:
    """Catches a guard that gives up, or answers stale, once a retry succeeds."""
    slept: list[float] = []
    guard = Guard(per_store=1, retry=RETRY, sleep=slept.append, rand=lambda: 0.5)
    call = Failing([unavailable("A"), unavailable("A")], result="v2")

    assert guard.call("file", "publish", call) == "v2"
    assert call.count == 3
    assert slept == pytest.approx([0.005, 0.01])


def test_the_guard_never_retries_a_failure_that_is_not_retryable() -> None:
    """Catches retrying what ``retryable`` says will fail again (access denied)."""
    slept: list[float] = []
    guard = Guard(per_store=1, retry=RETRY, sleep=slept.append, rand=lambda: 0.5)
    denied = ProviderAccessDenied("no", provider="file", operation="publish", reference="A")
    call = Failing([denied])

    with pytest.raises(ProviderAccessDenied):
        guard.call("file", "publish", call)

    assert call.count == 1 and slept == []


def test_the_guard_waits_as_long_as_a_server_asks() -> None:
    """Catches ignoring a failure's ``retry_after`` hint in favour of the backoff."""
    slept: list[float] = []
    guard = Guard(per_store=1, retry=RETRY, sleep=slept.append, rand=lambda: 0.5)
    throttled = LangSmithRateLimited("slow down", operation="list", retry_after=0.25)

    assert guard.call("state", "save", Failing([throttled])) == "done"
    assert slept == [0.25]


# -- the engine: the guard around real file targets ----------------------------------

ENGINE_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.04)


@dataclass
class Rig:
    """The engine on the fakes, with file targets opened by ``providers.Connections``."""

    engine: Engine
    keys: FakeKeyService
    state: MemoryState
    calls: list[Call]
    slept: list[float]

    def run(self) -> RunReport:
        return self.engine.run(self.engine.select())

    def attempts(self, suffix: str, verb: str) -> int:
        return sum(1 for c in self.calls if c.where.endswith(suffix) and c.verb == verb)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """Builds the engine with ``fail`` injected into its targets (``faulty_targets``)."""
    engines: list[Engine] = []

    def build(fail: dict[str, dict[str, Exception]], *, times: int | None = 1) -> Rig:
        config = BridgeConfig.model_validate(
            {
                "langsmith": {"admin_key_env": "LANGSMITH_ADMIN_KEY"},
                "run": {"verify_attempts": 1},
                "policy": [policy_fields(tmp_path / "out")],
            }
        )
        calls: list[Call] = []
        slept: list[float] = []
        keys, state = FakeKeyService(calls=calls, clock=lambda: NOW), MemoryState(calls=calls)
        connections = Connections()
        targets = faulty_targets(connections, fail, times=times, calls=calls)
        engine = Engine(
            config,
            keys,
            state,
            targets,
            clock=lambda: NOW,
            sleep=slept.append,
            retry=ENGINE_RETRY,
            on_close=connections.close,
        )
        engines.append(engine)
        return Rig(engine, keys, state, calls, slept)

    yield build
    for engine in engines:
        engine.close()


def within_backoff(slept: list[float], retry: RetryPolicy) -> bool:
    """Each wait is a full-jitter draw under the policy's ceiling for that retry."""
    return all(
        0 <= delay <= min(retry.max_delay, retry.base_delay * 2**n) for n, delay in enumerate(slept)
    )


def test_the_engine_retries_a_retryable_publish_failure_and_the_run_succeeds(
    rig: Callable[..., Rig],
) -> None:
    """Catches an engine whose targets are not guarded (the first failure would end the
    run) and waits outside the retry policy's backoff."""
    bridge = rig({"b.json": {"publish": unavailable("b.json")}}, times=2)

    report = bridge.run()

    assert report.ok, [o.error for o in report.outcomes]
    assert bridge.attempts("b.json", "publish") == 3
    assert len(bridge.slept) == 2 and within_backoff(bridge.slept, ENGINE_RETRY)
    assert bridge.state.records["p"].current() is not None


def test_the_engine_stops_retrying_at_max_attempts_and_reports_the_failure(
    rig: Callable[..., Rig],
) -> None:
    """Catches retrying past ``max_attempts`` (a run that never ends on a dead store) or
    sleeping after the last attempt."""
    bridge = rig({"b.json": {"publish": unavailable("b.json")}}, times=ALWAYS)

    report = bridge.run()

    assert not report.ok and "disk on fire" in (report.outcomes[0].error or "")
    assert bridge.attempts("b.json", "publish") == ENGINE_RETRY.max_attempts
    assert len(bridge.slept) == ENGINE_RETRY.max_attempts - 1
    assert bridge.state.records["p"].generations[-1].phase is Phase.PUBLISHING


def test_the_engine_does_not_retry_a_failure_that_is_not_retryable(
    rig: Callable[..., Rig],
) -> None:
    """Catches retries that ignore ``retryable`` (access denied will not change)."""
    denied = ProviderAccessDenied("no", provider="file", operation="publish", reference="b")
    bridge = rig({"b.json": {"publish": denied}}, times=ALWAYS)

    report = bridge.run()

    assert not report.ok
    assert bridge.attempts("b.json", "publish") == 1
    assert bridge.slept == []


def test_a_publish_that_failed_on_one_target_is_resumed_from_the_other_by_the_next_run(
    rig: Callable[..., Rig],
) -> None:
    """Catches a next run that mints another key (or abandons the pending one) instead of
    reading the key back from the target that holds it and finishing the rotation."""
    bridge = rig({"b.json": {"publish": unavailable("b.json")}}, times=ENGINE_RETRY.max_attempts)
    assert not bridge.run().ok
    (pending,) = bridge.state.records["p"].by_phase(Phase.PUBLISHING)

    report = bridge.run()

    assert report.ok, [o.error for o in report.outcomes]
    (step,) = report.outcomes[0].done
    assert isinstance(step, Resume) and step.rotation_id == pending.rotation_id
    assert step.source.endswith("a.env")
    current = bridge.state.records["p"].current()
    assert current is not None and current.rotation_id == pending.rotation_id
    assert [c.verb for c in bridge.calls].count("create_service_key") == 1
    assert list(bridge.keys.listing) == [pending.key_id]
