"""``status``: what each policy looks like now, from the state and the targets alone, as a
typed model that the text and JSON renderers (``bridge.render``) both print.

Status never calls LangSmith, so it works with any credentials that can read the state and
the targets, and it cannot rate-limit a run. Gates that need LangSmith's view (``usage``)
show as not observed. Nothing here holds key material: ids, short keys, fingerprints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bridge.config import Policy
from bridge.engine.plan import Observation, TargetView
from bridge.engine.planner import evaluate_gate, rotation_schedule
from bridge.state import Ack, Generation, Phase, PolicyRecord

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
    fingerprint: str
    at: datetime


@dataclass(frozen=True)
class PolicyStatus:
    """One policy's ``status`` entry."""

    name: str
    current: CurrentKey | None
    pending: tuple[GenerationBrief, ...]
    superseded: tuple[SupersededKey, ...]
    targets: tuple[TargetStatus, ...]
    acks: dict[str, AckStatus]
    next_rotation_at: datetime | None
    last_error: str | None
    history: tuple[GenerationBrief, ...]


def policy_status(
    policy: Policy,
    record: PolicyRecord,
    acks: dict[str, Ack],
    targets: Sequence[TargetView],
    now: datetime,
) -> PolicyStatus:
    """The status of one policy at ``now``."""
    obs = Observation(now=now, targets=tuple(targets), acks=acks)
    current = record.current()
    return PolicyStatus(
        name=policy.name,
        current=_current(current) if current else None,
        pending=tuple(_brief(g) for g in record.by_phase(Phase.MINTING, Phase.PUBLISHING)),
        superseded=tuple(
            _superseded(policy, record, g, obs) for g in record.by_phase(Phase.SUPERSEDED)
        ),
        targets=tuple(_target(view, current) for view in targets),
        acks={c: AckStatus(a.fingerprint, a.at) for c, a in sorted(acks.items())},
        next_rotation_at=next_rotation_at(policy, current),
        last_error=record.last_error,
        history=tuple(_brief(g) for g in record.generations if not g.phase.live),
    )


def next_rotation_at(policy: Policy, current: Generation | None) -> datetime | None:
    """When the planner will rotate ``current`` (the schedule it uses itself)."""
    if current is None or current.created_at is None:
        return None
    return rotation_schedule(policy, current).next_at


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
    that cannot be read or is not the policy's, a last run that failed."""
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
    if status.last_error:
        problems.append(f"{status.name}: last run failed: {status.last_error}")
    return problems
