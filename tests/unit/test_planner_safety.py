"""The planner's safety rules of issue 7: a served key is never deleted, deployments keep to
their own keys, "gone" is confirmed, acks are per replica and proven, usage is judged on
LangSmith's clock, and keys are replaced before they can expire between two runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bridge.engine import Observation, TargetView, plan
from bridge.engine.gates import evaluate_gate
from bridge.engine.plan import Adopt, DeleteOrphan, Republish, Restore, Revoke, Rotate
from bridge.engine.planner import rotation_reason
from bridge.state import Ack, Phase, PolicyRecord
from tests.unit.test_planner import EVERY, INSTANCE, NOW, A, B, acks_of, gen, key, policy


def views(**held: str | None) -> tuple[TargetView, ...]:
    """Target views by letter: ``views(a="fp1", b=None)``; ``rot`` names the marker."""
    ids = {"a": A, "b": B}
    return tuple(
        TargetView(ids[name], "file", ids[name], fp, "ours" if fp else "absent",
                   rotation_id=f"r{fp[2:]}" if fp else None)
        for name, fp in held.items()
    )  # fmt: skip


def observe(targets: tuple[TargetView, ...], keys: list[Any], **fields: Any) -> Observation:
    base: dict[str, Any] = {
        "now": NOW,
        "targets": targets,
        "keys": {k.id: k for k in keys},
        "keys_listed_at": NOW,
        "instance": INSTANCE,
        "run_every": EVERY,
    }
    return Observation(**(base | fields))


def marked(n: int, instance: str = INSTANCE, *, age: timedelta = timedelta(days=1)) -> Any:
    k = key(n)
    return k.__class__(**{**k.__dict__, "description": f"langsmith-bridge:{instance} policy=p "
                          f"rotation=r{n}", "created_at": NOW - age})  # fmt: skip


# -- 1. state lost: adopt what the targets serve -----------------------------------------


def test_an_empty_record_beside_served_targets_adopts_and_deletes_nothing() -> None:
    obs = observe(views(a="fp1", b="fp1"), [marked(1)])

    result = plan(policy(), PolicyRecord(policy="p"), obs)

    assert [type(s) for s in result.steps] == [Adopt]
    (adopt,) = result.steps
    assert isinstance(adopt, Adopt) and adopt.current and adopt.key_id == "k1"


def test_targets_on_two_keys_adopt_both_and_keep_the_older_behind_its_gate() -> None:
    obs = observe(views(a="fp1", b="fp2"), [marked(1, age=timedelta(days=2)), marked(2)])

    result = plan(policy(), PolicyRecord(policy="p"), obs)

    kinds = [type(s) for s in result.steps]
    assert kinds == [Adopt, Adopt, Republish]  # the older superseded, the newer current
    assert not any(isinstance(s, (Revoke, DeleteOrphan)) for s in result.steps)
    assert any("still served" in note for note in result.notes)


def test_a_restored_older_record_adopts_the_newer_served_key() -> None:
    record = PolicyRecord(policy="p", generations=(gen(1, Phase.CURRENT, age=timedelta(days=3)),))
    obs = observe(views(a="fp2", b="fp2"), [marked(1, age=timedelta(days=3)), marked(2)])

    result = plan(policy(), record, obs)

    assert [type(s) for s in result.steps] == [Adopt]
    assert not any("drift" in note for note in result.notes)


def test_an_unknown_key_no_target_serves_is_adopted_behind_its_gate_once_old_enough() -> None:
    """A consumer may still hold it (the record of its supersession was lost): it goes
    through the gate like any superseded key, and a young one may be a live run's."""
    current = gen(1, Phase.CURRENT)
    record = PolicyRecord(policy="p", generations=(current,))
    young = marked(9, age=timedelta(minutes=10))
    old = marked(8, age=timedelta(hours=2))

    result = plan(policy(), record, observe(views(a="fp1", b="fp1"), [marked(1), young, old]))

    (adopt,) = result.steps
    assert isinstance(adopt, Adopt) and (adopt.key_id, adopt.current) == ("k8", False)
    assert any("lsv2_sk_9" in note and "younger" in note for note in result.notes)
    assert any("lsv2_sk_8" in note and "waiting for api, worker" in note for note in result.notes)


def test_an_adopted_key_is_revoked_once_every_consumer_acked_the_current_one() -> None:
    record = PolicyRecord(policy="p", generations=(gen(1, Phase.CURRENT),))
    obs = observe(
        views(a="fp1", b="fp1"),
        [marked(1), marked(8, age=timedelta(hours=2))],
        **acks_of(api="fp1", worker="fp1"),
    )

    kinds = [type(step) for step in plan(policy(), record, obs).steps]

    assert kinds == [Adopt, Revoke]


# -- 2. deployments keep to their own keys -----------------------------------------------


def test_keys_of_another_deployment_are_never_deleted() -> None:
    record = PolicyRecord(policy="p", generations=(gen(1, Phase.CURRENT),))
    other = marked(7, instance="dother", age=timedelta(days=5))

    result = plan(policy(), record, observe(views(a="fp1", b="fp1"), [marked(1), other]))

    assert result.steps == ()
    assert any("dother" in note for note in result.notes)


def test_under_the_shared_default_mark_an_unknown_rotation_is_kept() -> None:
    record = PolicyRecord(policy="p", generations=(gen(1, Phase.CURRENT),))
    obs = observe(
        views(a="fp1", b="fp1"),
        [marked(1, "default"), marked(7, "default", age=timedelta(days=5))],
        instance="default",
    )

    result = plan(policy(), record, obs)

    assert result.steps == ()
    assert any("langsmith.instance" in note for note in result.notes)


def test_a_dead_runs_own_leftover_goes_at_once_even_under_the_default_mark() -> None:
    leftover = gen(2, Phase.ABANDONED, key_id=None)
    record = PolicyRecord(policy="p", generations=(gen(1, Phase.CURRENT), leftover))
    young = marked(2, "default", age=timedelta(minutes=1))
    obs = observe(views(a="fp1", b="fp1"), [marked(1, "default"), young], instance="default")

    assert plan(policy(), record, obs).steps == (DeleteOrphan("k2", "lsv2_sk_2", "r2"),)


# -- 3. gone is confirmed ----------------------------------------------------------------


def test_a_revoked_key_listed_again_is_superseded_again_behind_its_gate() -> None:
    revoked = gen(
        1,
        Phase.REVOKED,
        superseded_at=NOW - timedelta(hours=2),
        ended_at=NOW - timedelta(hours=1),
    )
    record = PolicyRecord(policy="p", generations=(revoked, gen(2, Phase.CURRENT)))

    result = plan(policy(), record, observe(views(a="fp2", b="fp2"), [marked(1), marked(2)]))

    assert [type(s) for s in result.steps] == [Restore]  # no acks: the gate stays closed
    assert any("waiting for api, worker" in note for note in result.notes)


def test_a_listing_older_than_the_revocation_restores_nothing() -> None:
    """Another runner revoked the key after this run's listing (taken before its lease)."""
    revoked = gen(1, Phase.REVOKED, superseded_at=NOW - timedelta(hours=2), ended_at=NOW)
    record = PolicyRecord(policy="p", generations=(revoked, gen(2, Phase.CURRENT)))

    result = plan(policy(), record, observe(views(a="fp2", b="fp2"), [marked(1), marked(2)]))

    assert result.steps == ()


def test_an_empty_listing_is_suspect_and_acts_on_nothing() -> None:
    record = PolicyRecord(policy="p", generations=(gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)))

    result = plan(policy(), record, observe(views(a="fp2", b="fp2"), []))

    assert not any(isinstance(s, (Revoke, Rotate, DeleteOrphan)) for s in result.steps)
    assert any("suspect" in note for note in result.notes)


# -- 9, 10. replicas and proofs ----------------------------------------------------------


def gate_with(*acks: tuple[str, str, str, timedelta, bool], **extra: Any) -> Any:
    """``acks``: (consumer, replica, fingerprint, age, proven)."""
    old, new = gen(1, Phase.SUPERSEDED), gen(2, Phase.CURRENT)
    record = PolicyRecord(policy="p", generations=(old, new))
    seen = tuple(Ack(consumer=c, replica=r, fingerprint=f, at=NOW - t) for c, r, f, t, _ in acks)
    proven = frozenset((c, r) for c, r, _, _, ok in acks if ok)
    obs = Observation(now=NOW, targets=(), acks=seen, proven=proven)
    return evaluate_gate(policy(consumers=["api"], **extra), record, old, obs)


FRESH = timedelta(minutes=1)


def test_one_replicas_ack_does_not_revoke_the_key_its_sibling_holds() -> None:
    gate = gate_with(("api", "pod-a", "fp2", FRESH, True), ("api", "pod-b", "fp1", FRESH, True))
    assert not gate.open and gate.waiting_for == ("api",)


def test_every_live_replica_acked_opens_the_gate() -> None:
    gate = gate_with(("api", "pod-a", "fp2", FRESH, True), ("api", "pod-b", "fp2", FRESH, True))
    assert gate.open


def test_a_replica_silent_past_replica_ttl_no_longer_holds_the_gate() -> None:
    gone = timedelta(hours=2)
    gate = gate_with(("api", "pod-a", "fp2", FRESH, True), ("api", "pod-old", "fp1", gone, True))
    assert gate.open


def test_an_ack_without_a_valid_proof_opens_nothing() -> None:
    """A fingerprint copied from ``status`` is not possession of the key."""
    gate = gate_with(("api", "pod-a", "fp2", FRESH, False))
    assert not gate.open


def test_gates_compose_explicit_and_usage_both_must_open() -> None:
    acked = ("api", "pod-a", "fp2", FRESH, True)
    gate = gate_with(acked, ack=["explicit", "usage"])
    assert not gate.open and "usage" in gate.reason


# -- 8. usage on LangSmith's clock -------------------------------------------------------


def test_usage_quiet_is_measured_on_langsmiths_clock_not_the_bridges() -> None:
    """The bridge's clock runs two hours fast: by it, a key used a minute ago on LangSmith's
    clock looks idle for two hours. The gate must see a key in use."""
    used = NOW - timedelta(hours=2) - timedelta(minutes=1)  # LangSmith's time
    old = gen(1, Phase.SUPERSEDED, superseded_at=NOW - timedelta(hours=3),
              idle_seen_at=used, idle_last_used=used)  # fmt: skip
    record = PolicyRecord(policy="p", generations=(old, gen(2, Phase.CURRENT)))
    k1 = key(1, last_used=used)
    obs = observe((), [k1, marked(2)], keys_served_at=NOW - timedelta(hours=2))

    gate = evaluate_gate(policy(ack="usage", consumers=[]), record, old, obs)

    assert not gate.open
    assert "unused for 1m of 1h" in gate.reason


# -- 5. never an expired key between runs ------------------------------------------------


def test_a_key_is_replaced_a_run_interval_before_it_would_have_to_be() -> None:
    short = policy(rotate_every="1h", key_ttl="3h", ack="grace", consumers=[], min_overlap="30m")
    expires = NOW + timedelta(minutes=30) + EVERY + timedelta(minutes=1)
    current = gen(1, Phase.CURRENT, age=timedelta(minutes=10), expires_at=expires)
    record = PolicyRecord(policy="p", generations=(current,))
    obs = observe(views(a="fp1", b="fp1"), [marked(1)])
    # expires_at - min_overlap - run.every is one minute away; the margin makes it now.
    assert rotation_reason(short, record, obs) is not None


def test_an_adopted_generation_records_the_versions_its_targets_serve_it_in() -> None:
    """So that revoking it retires them, as for any generation the bridge published."""
    adopt = Adopt(
        rotation_id="r1",
        key_id="k1",
        short_key="lsv2_sk_ab...cd",
        fingerprint="f1",
        created_at=NOW,
        expires_at=None,
        targets=("gcp:p/s",),
        current=False,
        at=NOW,
        versions=(("gcp:p/s", "5"),),
    )

    adopted = adopt.apply(PolicyRecord(policy="p")).find("r1")

    assert adopted.targets == {"gcp:p/s": "5"}
