"""The planner's rules, as a table: given a record, an observation and a policy, the plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.config import Policy
from bridge.engine import Observation, TargetView, plan
from bridge.engine.plan import (
    Abandon,
    Adopt,
    DeleteOrphan,
    MarkMissing,
    NoteIdle,
    Republish,
    Resume,
    Revoke,
    Rotate,
)
from bridge.engine.planner import evaluate_gate
from bridge.engine.reconcile_keys import GONE_CONFIRM, LISTING_SKEW
from bridge.langsmith import ApiKey
from bridge.state import Ack, Generation, Phase, PolicyRecord

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
A, B = "file:/out/a.env", "file:/out/b.env"
WORKSPACE = "00000000-0000-4000-8000-000000000001"
INSTANCE = "dtest"  # this deployment's mark
EVERY = timedelta(minutes=5)  # run.every of the observations here


def acks_of(**fingerprints: str) -> dict[str, Any]:
    """Observation fields for one proven replica per consumer, acking ``fingerprints``."""
    acks = tuple(
        Ack(consumer=c, replica="r0", fingerprint=fp, at=NOW) for c, fp in fingerprints.items()
    )
    return {"acks": acks, "proven": frozenset((c, "r0") for c in fingerprints)}


def policy(**overrides: Any) -> Policy:
    fields: dict[str, Any] = {
        "name": "p",
        "rotate_every": "30d",
        "key_ttl": "60d",
        "consumers": ["api", "worker"],
        "default_workspace": WORKSPACE,
        "target": [
            {"provider": "file", "path": "/out/a.env"},
            {"provider": "file", "path": "/out/b.env", "format": "json"},
        ],
    }
    return Policy.model_validate(fields | overrides)


def gen(n: int, phase: Phase, *, age: timedelta = timedelta(days=1), **extra: Any) -> Generation:
    created = NOW - age
    fields: dict[str, Any] = {
        "rotation_id": f"r{n}",
        "phase": phase,
        "started_at": created,
        "key_id": f"k{n}",
        "short_key": f"lsv2_sk_{n}",
        "fingerprint": f"fp{n}",
        "created_at": created,
        "expires_at": created + timedelta(days=60),
    }
    if phase is Phase.SUPERSEDED:
        fields["superseded_at"] = NOW - timedelta(hours=2)
    return Generation.model_validate(fields | extra)


def key(n: int | str, *, last_used: datetime | None = None) -> ApiKey:
    return ApiKey(
        id=f"k{n}",
        short_key=f"lsv2_sk_{n}",
        description=f"langsmith-bridge:{INSTANCE} policy=p rotation=r{n}",
        created_at=NOW - timedelta(days=1),
        last_used_at=last_used,
        expires_at=None,
        workspace_names=None,
        access_scope="organization",
        role_id=None,
        org_role_id=None,
    )


@dataclass
class Case:
    generations: list[Generation]
    holders: dict[str, str | None]  # target id -> fingerprint held
    expected: list[type]
    keys: list[ApiKey] | None = None
    acks: dict[str, str] = field(default_factory=dict)  # consumer -> fingerprint
    policy: dict[str, Any] = field(default_factory=dict)
    force: bool = False


def run_case(case: Case) -> Any:
    record = PolicyRecord(policy="p", generations=tuple(case.generations))
    keys = (
        case.keys
        if case.keys is not None
        else [key(g.rotation_id[1:]) for g in case.generations if g.phase.live]
    )
    obs = Observation(
        now=NOW,
        targets=tuple(
            TargetView(tid, "file", tid, fingerprint=fp, ownership="ours" if fp else "absent")
            for tid, fp in case.holders.items()
        ),
        keys={k.id: k for k in keys},
        keys_listed_at=NOW,
        instance=INSTANCE,
        run_every=EVERY,
        **acks_of(**case.acks),
    )
    return plan(policy(**case.policy), record, obs, force=case.force)


CASES = {
    "new policy rotates": Case([], {A: None, B: None}, [Rotate]),
    "in sync and young: nothing": Case([gen(1, Phase.CURRENT)], {A: "fp1", B: "fp1"}, []),
    "rotate_every passed": Case(
        [gen(1, Phase.CURRENT, age=timedelta(days=31))], {A: "fp1", B: "fp1"}, [Rotate]
    ),
    "forced": Case([gen(1, Phase.CURRENT)], {A: "fp1", B: "fp1"}, [Rotate], force=True),
    "expiring key rotates early": Case(
        [gen(1, Phase.CURRENT, expires_at=NOW + timedelta(minutes=30))],
        {A: "fp1", B: "fp1"},
        [Rotate],
    ),
    "current key missing from one listing is only marked": Case(
        [gen(1, Phase.CURRENT)], {A: "fp1", B: "fp1"}, [MarkMissing], keys=[]
    ),
    "current key missing from two listings apart is gone: rotate": Case(
        [gen(1, Phase.CURRENT, missing_since=NOW - GONE_CONFIRM)],
        {A: "fp1", B: "fp1"},
        [Rotate],
        keys=[],
    ),
    "current key missing from two listings too close together: wait": Case(
        [gen(1, Phase.CURRENT, missing_since=NOW - GONE_CONFIRM / 2)],
        {A: "fp1", B: "fp1"},
        [],
        keys=[],
    ),
    "a missing key listed again is no longer missing": Case(
        [gen(1, Phase.CURRENT, missing_since=NOW - GONE_CONFIRM / 2)],
        {A: "fp1", B: "fp1"},
        [MarkMissing],
    ),
    "drift: unknown key in a target": Case([gen(1, Phase.CURRENT)], {A: "fp1", B: "fpX"}, [Rotate]),
    "missing target gets republished": Case(
        [gen(1, Phase.CURRENT)], {A: "fp1", B: None}, [Republish]
    ),
    "no target holds the current key": Case([gen(1, Phase.CURRENT)], {A: None, B: None}, [Rotate]),
    "interrupted intent is abandoned and its unrecorded key deleted by marker": Case(
        [
            gen(1, Phase.CURRENT),
            gen(2, Phase.MINTING, key_id=None, fingerprint=None, short_key=None),
        ],
        {A: "fp1", B: "fp1"},
        [Abandon, DeleteOrphan],
    ),
    "minted but unpublished key is abandoned": Case(
        [gen(1, Phase.CURRENT), gen(2, Phase.PUBLISHING)], {A: "fp1", B: "fp1"}, [Abandon]
    ),
    "half-published generation resumes": Case(
        [gen(1, Phase.CURRENT), gen(2, Phase.PUBLISHING)], {A: "fp2", B: "fp1"}, [Resume]
    ),
    "an unknown key of this deployment is adopted behind its gate, not deleted": Case(
        [gen(1, Phase.CURRENT)], {A: "fp1", B: "fp1"}, [Adopt], keys=[key(1), key(9)]
    ),
    "superseded waits for acks": Case(
        [gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [],
        acks={"api": "fp2"},
    ),
    "superseded revoked once all acked": Case(
        [gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [Revoke],
        acks={"api": "fp2", "worker": "fp2"},
    ),
    "an ack of the old key keeps the gate closed": Case(
        [gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [],
        acks={"api": "fp2", "worker": "fp1"},
    ),
    "never revoke a key a target still serves": Case(
        [gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp1"},
        [Republish],
        acks={"api": "fp2", "worker": "fp2"},
    ),
    "grace revokes after min_overlap": Case(
        [gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [Revoke],
        policy={"ack": "grace", "min_overlap": "1h", "consumers": []},
    ),
    "grace holds within min_overlap": Case(
        [gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [],
        policy={"ack": "grace", "min_overlap": "3h", "consumers": []},
    ),
    "min_overlap holds even when acked": Case(
        [gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [],
        acks={"api": "fp2", "worker": "fp2"},
        policy={"min_overlap": "3h"},
    ),
    "max_wait with revoke": Case(
        [gen(1, Phase.SUPERSEDED, superseded_at=NOW - timedelta(days=8)), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [Revoke],
        policy={"on_timeout": "revoke"},
    ),
    "max_wait with hold": Case(
        [gen(1, Phase.SUPERSEDED, superseded_at=NOW - timedelta(days=8)), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [],
    ),
    "usage: a quiet key is first watched": Case(
        [gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [NoteIdle],
        keys=[key(1, last_used=NOW - timedelta(hours=3)), key(2)],
        policy={"ack": "usage"},
    ),
    "usage: quiet across two listings usage_quiet apart: revoked": Case(
        [
            gen(
                1,
                Phase.SUPERSEDED,
                idle_seen_at=NOW - timedelta(hours=1),
                idle_last_used=NOW - timedelta(hours=3),
            ),
            gen(2, Phase.CURRENT),
        ],
        {A: "fp2", B: "fp2"},
        [Revoke],
        keys=[key(1, last_used=NOW - timedelta(hours=3)), key(2)],
        policy={"ack": "usage"},
    ),
    "usage: used since the watch began: watched again": Case(
        [
            gen(
                1,
                Phase.SUPERSEDED,
                idle_seen_at=NOW - timedelta(hours=1),
                idle_last_used=NOW - timedelta(hours=3),
            ),
            gen(2, Phase.CURRENT),
        ],
        {A: "fp2", B: "fp2"},
        [NoteIdle],
        keys=[key(1, last_used=NOW - timedelta(minutes=90)), key(2)],
        policy={"ack": "usage"},
    ),
    "usage: key still used holds (and is watched)": Case(
        [gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [NoteIdle],
        keys=[key(1, last_used=NOW - timedelta(minutes=5)), key(2)],
        policy={"ack": "usage"},
    ),
    "superseded key missing once is only marked": Case(
        [gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [MarkMissing],
        keys=[key(2)],
    ),
    "superseded key confirmed gone is marked revoked": Case(
        [gen(1, Phase.SUPERSEDED, missing_since=NOW - GONE_CONFIRM), gen(2, Phase.CURRENT)],
        {A: "fp2", B: "fp2"},
        [Revoke],
        keys=[key(2)],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_plan(case: Case) -> None:
    result = run_case(case)
    assert result.blocked is None
    assert [type(step) for step in result.steps] == case.expected


def test_key_minted_just_before_listing_is_not_taken_for_gone() -> None:
    young = gen(1, Phase.CURRENT, age=LISTING_SKEW / 2)
    result = run_case(Case([young], {A: "fp1", B: "fp1"}, [], keys=[]))
    assert result.steps == ()


def test_unreadable_target_blocks_everything() -> None:
    record = PolicyRecord(policy="p", generations=(gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)))
    obs = Observation(
        now=NOW,
        targets=(
            TargetView(A, "file", A, error="permission denied"),
            TargetView(B, "file", B, "fp2", "ours"),
        ),
        keys={},
        keys_listed_at=NOW,
        **acks_of(api="fp2", worker="fp2"),
    )
    result = plan(policy(), record, obs)
    assert result.steps == ()
    assert result.blocked and "permission denied" in result.blocked


def test_foreign_target_blocks_rotation() -> None:
    obs = Observation(now=NOW, targets=(TargetView(A, "file", A, "fpX", ownership="foreign"),))
    result = plan(
        policy(target=[{"provider": "file", "path": "/out/a.env"}]), PolicyRecord(policy="p"), obs
    )
    assert result.steps == ()
    assert result.blocked and "refusing to touch it" in result.blocked


def test_gate_reports_who_acked_and_who_is_awaited() -> None:
    old, new = gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)
    record = PolicyRecord(policy="p", generations=(old, new))
    obs = Observation(now=NOW, targets=(), **acks_of(worker="fp2"))
    gate = evaluate_gate(policy(), record, old, obs)
    assert (gate.open, gate.acked_by, gate.waiting_for) == (False, ("worker",), ("api",))


def test_ack_of_a_later_generation_counts_for_an_older_one() -> None:
    oldest, old, new = gen(1, Phase.SUPERSEDED), gen(2, Phase.SUPERSEDED), gen(3, Phase.CURRENT)
    record = PolicyRecord(policy="p", generations=(oldest, old, new))
    obs = Observation(now=NOW, targets=(), **acks_of(api="fp3", worker="fp3"))
    assert evaluate_gate(policy(), record, oldest, obs).open
    assert evaluate_gate(policy(), record, old, obs).open


def test_revocations_come_before_a_rotation() -> None:
    case = Case(
        [gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT, age=timedelta(days=31))],
        {A: "fp2", B: "fp2"},
        [Revoke, Rotate],
        acks={"api": "fp2", "worker": "fp2"},
    )
    assert [type(s) for s in run_case(case).steps] == case.expected


@pytest.mark.parametrize("holders", [{A: "fp2", B: "fp1"}, {A: "fp2", B: "fp2"}])
def test_resume_publishes_to_every_target_holders_included(holders: dict[str, str]) -> None:
    """A run that died mid-publish never recorded the versions it wrote, and may have cut a
    store-level move short (AWSPENDING left beside AWSCURRENT): re-publishing to a target
    that holds the key writes nothing, but returns its version and finishes that move."""
    case = Case([gen(1, Phase.CURRENT), gen(2, Phase.PUBLISHING)], holders, [Resume])
    (step,) = run_case(case).steps
    assert step == Resume("r2", source=A, targets=(A, B))


def test_plan_is_pure() -> None:
    case = CASES["half-published generation resumes"]
    assert run_case(case) == run_case(case)


def test_short_lived_keys_rotate_on_schedule_not_on_every_run() -> None:
    from bridge.engine.planner import expiry_margin

    short = policy(rotate_every="10m", key_ttl="1h", ack="grace", consumers=[])
    assert expiry_margin(short, EVERY) == timedelta(minutes=22, seconds=30)
    young = gen(1, Phase.CURRENT, age=timedelta(minutes=5), expires_at=NOW + timedelta(minutes=55))
    result = run_case(
        Case(
            [young],
            {A: "fp1", B: "fp1"},
            [],
            policy={"rotate_every": "10m", "key_ttl": "1h", "ack": "grace", "consumers": []},
        )
    )
    assert result.steps == ()


def test_an_aws_driven_rotation_in_progress_is_left_to_aws() -> None:
    native = gen(
        2,
        Phase.PUBLISHING,
        age=timedelta(minutes=10),
        native=True,
        started_at=NOW - timedelta(minutes=10),
    )
    result = run_case(
        Case([gen(1, Phase.CURRENT, age=timedelta(days=40)), native], {A: "fp1", B: "fp1"}, [])
    )
    assert result.steps == ()  # neither abandoned nor a competing rotation, although one is due
    assert any("native rotation r2 in progress" in note for note in result.notes)


def test_a_stalled_aws_driven_rotation_is_abandoned() -> None:
    stalled = gen(2, Phase.PUBLISHING, native=True, started_at=NOW - timedelta(hours=2))
    result = run_case(Case([gen(1, Phase.CURRENT), stalled], {A: "fp1", B: "fp1"}, [Abandon]))
    assert [type(s) for s in result.steps] == [Abandon]


# -- acting on the adapter's ownership decision ----------------------------------------


def one_target(*views: TargetView, keys: dict[str, ApiKey] | None = None) -> Observation:
    return Observation(
        now=NOW, targets=views, keys={} if keys is None else keys, keys_listed_at=NOW
    )


def test_an_adoptable_target_of_a_new_policy_gets_the_first_key() -> None:
    obs = one_target(TargetView(A, "file", A, "fpHand", ownership="adoptable"))

    result = plan(
        policy(target=[{"provider": "file", "path": "/out/a.env"}]), PolicyRecord(policy="p"), obs
    )

    assert [type(step) for step in result.steps] == [Rotate]
    assert result.blocked is None


def test_an_adoptable_target_beside_a_current_key_is_republished_not_taken_for_drift() -> None:
    current = gen(1, Phase.CURRENT)
    record = PolicyRecord(policy="p", generations=(current,))
    obs = one_target(
        TargetView(A, "file", A, "fp1", ownership="ours"),
        TargetView(B, "file", B, "fpHand", ownership="adoptable"),
        keys={"k1": key(1)},
    )

    result = plan(policy(), record, obs)

    assert result.steps == (Republish("r1", A, (B,)),)


def test_a_foreign_target_is_reported_with_the_adapters_reason() -> None:
    why = "belongs to policy 'other'"
    obs = one_target(TargetView(A, "aws", A, "fpX", ownership="foreign", detail=why))

    result = plan(
        policy(target=[{"provider": "file", "path": "/out/a.env"}]), PolicyRecord(policy="p"), obs
    )

    assert result.blocked == f"target {A} {why}; refusing to touch it"


def test_without_the_key_listing_a_policy_with_work_is_blocked_not_acted_on() -> None:
    obs = Observation(now=NOW, targets=(TargetView(A, "file", A), TargetView(B, "file", B)))

    result = plan(policy(), PolicyRecord(policy="p"), obs)

    assert result.steps == ()
    assert result.blocked == "LangSmith key listing failed; not acting blind"


def test_without_the_key_listing_a_policy_with_nothing_to_do_is_fine() -> None:
    current = gen(1, Phase.CURRENT)
    views = (TargetView(A, "file", A, "fp1", "ours"), TargetView(B, "file", B, "fp1", "ours"))

    result = plan(
        policy(), PolicyRecord(policy="p", generations=(current,)), Observation(NOW, views)
    )

    assert (result.steps, result.blocked) == ((), None)


def test_status_and_planner_share_one_schedule() -> None:
    from bridge.engine.planner import rotation_reason, rotation_schedule
    from bridge.engine.status import next_rotation_at

    for expires in (timedelta(days=60), timedelta(hours=20), timedelta(minutes=30)):
        current = gen(1, Phase.CURRENT, expires_at=NOW - timedelta(days=1) + expires)
        record = PolicyRecord(policy="p", generations=(current,))
        due = next_rotation_at(policy(), current, EVERY)
        assert due == rotation_schedule(policy(), current, EVERY).next_at
        views = (TargetView(A, "file", A, "fp1", "ours"), TargetView(B, "file", B, "fp1", "ours"))
        keys = {"k1": key(1)}
        before = Observation(
            due - timedelta(seconds=1), views, keys=keys, keys_listed_at=NOW, run_every=EVERY
        )
        at = Observation(due, views, keys=keys, keys_listed_at=NOW, run_every=EVERY)
        assert rotation_reason(policy(), record, before) is None
        assert rotation_reason(policy(), record, at) is not None


def test_a_record_from_before_settings_were_remembered_republishes_nothing() -> None:
    current = gen(1, Phase.CURRENT)  # settings_digest None: written by an older version
    views = (TargetView(A, "file", A, "fp1", "ours"), TargetView(B, "file", B, "fp1", "ours"))
    obs = Observation(NOW, views, keys={"k1": key(1)}, keys_listed_at=NOW, settings_digest="new")

    assert plan(policy(), PolicyRecord(policy="p", generations=(current,)), obs).steps == ()


def test_a_target_read_with_other_settings_is_republished_alone() -> None:
    current = gen(1, Phase.CURRENT, settings_digest="same")
    views = (
        TargetView(A, "file", A, "fp1", "ours", settings_digest="same"),
        TargetView(B, "file", B, "fp1", "ours", settings_digest="edited"),
    )
    obs = Observation(NOW, views, keys={"k1": key(1)}, keys_listed_at=NOW, settings_digest="same")

    result = plan(policy(), PolicyRecord(policy="p", generations=(current,)), obs)

    assert result.steps == (Republish("r1", A, (B,)),)
