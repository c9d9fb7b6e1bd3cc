"""``status``: what each policy looks like now, from the state and the targets alone, as a
typed model that the text and JSON renderers (``bridge.render``) both print.

Status never calls LangSmith, so it works with any credentials that can read the state and
the targets, and it cannot rate-limit a run. Gates that need LangSmith's view (``usage``)
show as not observed. Acks count as the planner counts them: only with a valid proof.
Nothing here holds key material: ids, short keys, fingerprints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from bridge.config import Policy
from bridge.engine.gates import evaluate_gate
from bridge.engine.plan import Observation, TargetView
from bridge.engine.planner import rotation_schedule
from bridge.state import Generation, Phase, PolicyRecord

GateState = Literal["open", "closed", "overdue"]


@dataclass(frozen=True)
class CurrentKey:
    key_id: str | None
    short_key: str | None
    fingerprint: str | None
    rotation_id: str
    created_at: datetime | None
    expires_at: datetime | None
    published_at: datetime | None


@dataclass(frozen=True)
class SupersededKey:
    key_id: str | None
    short_key: str | None
    fingerprint: str | None
    rotation_id: str
    superseded_at: datetime | None
    expires_at: datetime | None
    acked_by: tuple[str, ...]
    waiting_for: tuple[str, ...]
    gate: GateState
    gate_reason: str


@dataclass(frozen=True)
class GenerationBrief:
    """A pending or ended generation, as one history line."""

    rotation_id: str
    phase: str
    short_key: str | None
    started_at: datetime | None
    ended_at: datetime | None
    reason: str


@dataclass(frozen=True)
class TargetStatus:
    provider: str
    reference: str
    in_sync: bool
    fingerprint: str | None
    error: str | None


@dataclass(frozen=True)
class AckStatus:
    """One replica's latest acknowledgement."""

    consumer: str
    replica: str
    fingerprint: str
    at: datetime
    proven: bool | None  # its proof of holding the key checked out; None: not checkable
    # (the key is not one a target serves now, so the bridge cannot read it back)
    live: bool  # heard from within the policy's replica_ttl


@dataclass(frozen=True)
class PolicyStatus:
    """One policy's ``status`` entry."""

    name: str
    current: CurrentKey | None
    pending: tuple[GenerationBrief, ...]
    superseded: tuple[SupersededKey, ...]
    targets: tuple[TargetStatus, ...]
    acks: tuple[AckStatus, ...]
    next_rotation_at: datetime | None
    next_run_at: datetime | None  # last run + run.every; None before the first run
    expiring: tuple[str, ...]  # short keys that expire before the next run
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    history: tuple[GenerationBrief, ...]


def policy_status(policy: Policy, record: PolicyRecord, obs: Observation) -> PolicyStatus:
    """The status of one policy at ``obs.now``."""
    targets: Sequence[TargetView] = obs.targets
    current = record.current()
    next_run = record.last_run_at + obs.run_every if record.last_run_at else None
    return PolicyStatus(
        name=policy.name,
        current=_current(current) if current else None,
        pending=tuple(_brief(g) for g in record.by_phase(Phase.MINTING, Phase.PUBLISHING)),
        superseded=tuple(
            _superseded(policy, record, g, obs) for g in record.by_phase(Phase.SUPERSEDED)
        ),
        targets=tuple(_target(view, current) for view in targets),
        acks=tuple(
            AckStatus(
                a.consumer,
                a.replica,
                a.fingerprint,
                a.at,
                proven=(a.consumer, a.replica) in obs.proven
                if a.fingerprint in obs.provable
                else None,
                live=obs.now - a.at <= policy.replica_ttl,
            )
            for a in sorted(obs.acks, key=lambda a: (a.consumer, a.replica))
        ),
        next_rotation_at=next_rotation_at(policy, current, obs.run_every),
        next_run_at=next_run,
        expiring=_expiring(record, max(obs.now, next_run or obs.now) + _late_allowance(obs)),
        last_run_at=record.last_run_at,
        last_success_at=record.last_success_at,
        last_error=record.last_error,
        history=tuple(_brief(g) for g in record.generations if not g.phase.live),
    )


def next_rotation_at(
    policy: Policy, current: Generation | None, every: timedelta
) -> datetime | None:
    """When the planner will rotate ``current`` (the schedule it uses itself)."""
    if current is None or current.created_at is None:
        return None
    return rotation_schedule(policy, current, every).next_at


def _late_allowance(obs: Observation) -> timedelta:
    """Slack for a next run that starts late and takes a while: a tenth of an interval."""
    return obs.run_every / 10


def _expiring(record: PolicyRecord, by: datetime) -> tuple[str, ...]:
    """Live keys (current, or superseded and maybe still in use) that expire before ``by``."""
    return tuple(
        g.short_key or g.rotation_id
        for g in record.by_phase(Phase.CURRENT, Phase.SUPERSEDED)
        if g.expires_at is not None and g.expires_at <= by
    )


def _current(g: Generation) -> CurrentKey:
    return CurrentKey(
        g.key_id, g.short_key, g.fingerprint, g.rotation_id, g.created_at, g.expires_at,
        g.published_at,
    )  # fmt: skip


def _superseded(
    policy: Policy, record: PolicyRecord, g: Generation, obs: Observation
) -> SupersededKey:
    gate = evaluate_gate(policy, record, g, obs)
    state: GateState = "open" if gate.open else ("overdue" if gate.overdue else "closed")
    return SupersededKey(
        key_id=g.key_id,
        short_key=g.short_key,
        fingerprint=g.fingerprint,
        rotation_id=g.rotation_id,
        superseded_at=g.superseded_at,
        expires_at=g.expires_at,
        acked_by=gate.acked_by,
        waiting_for=gate.waiting_for,
        gate=state,
        gate_reason=gate.reason,
    )


def _brief(g: Generation) -> GenerationBrief:
    return GenerationBrief(
        g.rotation_id, g.phase.value, g.short_key, g.started_at, g.ended_at,
        g.end_reason or g.reason,
    )  # fmt: skip


def _target(view: TargetView, current: Generation | None) -> TargetStatus:
    in_sync = bool(current and view.fingerprint and view.fingerprint == current.fingerprint)
    error = view.error or view.detail  # a foreign target is reported with why
    return TargetStatus(view.provider, view.reference, in_sync, view.fingerprint, error)


def status_problems(status: PolicyStatus) -> list[str]:
    """What ``status --check`` fails on: no current key, a gate past ``max_wait``, a target
    that cannot be read or is not the policy's, a key expiring before the next run, a last
    run that failed."""
    problems = []
    if status.current is None:
        problems.append(f"{status.name}: no current key")
    problems += [
        f"{status.name}: key {key.short_key} overdue: {key.gate_reason}"
        for key in status.superseded
        if key.gate == "overdue"
    ]
    problems += [
        f"{status.name}: target {target.reference}: {target.error}"
        for target in status.targets
        if target.error
    ]
    problems += [
        f"{status.name}: key {short} expires before the next run" for short in status.expiring
    ]
    if status.last_error:
        problems.append(f"{status.name}: last run failed: {status.last_error}")
    return problems
