"""``status``: what each policy looks like now, from the state and the targets alone.

Status never calls LangSmith, so it works with any credentials that can read the state and
the targets, and it cannot rate-limit a run. Gates that need LangSmith's view (``usage``)
show as not observed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bridge.config import Policy
from bridge.engine.plan import Observation, TargetView
from bridge.engine.planner import evaluate_gate, expiry_margin
from bridge.state import Ack, Generation, Phase, PolicyRecord


def policy_status(
    policy: Policy,
    record: PolicyRecord,
    acks: dict[str, Ack],
    targets: Sequence[TargetView],
    now: datetime,
) -> dict[str, Any]:
    """The ``status --json`` entry of one policy."""
    obs = Observation(now=now, targets=tuple(targets), acks=acks)
    current = record.current()
    pending = record.by_phase(Phase.MINTING, Phase.PUBLISHING)
    return {
        "name": policy.name,
        "current": _current(current) if current else None,
        "pending": [_brief(g) for g in pending],
        "superseded": [
            _superseded(policy, record, g, obs) for g in record.by_phase(Phase.SUPERSEDED)
        ],
        "targets": [_target(view, current) for view in targets],
        "acks": {
            consumer: {"fingerprint": ack.fingerprint, "at": _iso(ack.at)}
            for consumer, ack in sorted(acks.items())
        },
        "next_rotation_at": _iso(next_rotation_at(policy, current)),
        "last_error": record.last_error,
        "history": [_brief(g) for g in record.generations if not g.phase.live],
    }


def next_rotation_at(policy: Policy, current: Generation | None) -> datetime | None:
    if current is None or current.created_at is None:
        return None
    due = current.created_at + policy.rotate_every
    if current.expires_at:
        due = min(due, current.expires_at - policy.min_overlap - expiry_margin(policy))
    return due


def _current(g: Generation) -> dict[str, Any]:
    return {
        "key_id": g.key_id,
        "short_key": g.short_key,
        "fingerprint": g.fingerprint,
        "rotation_id": g.rotation_id,
        "created_at": _iso(g.created_at),
        "expires_at": _iso(g.expires_at),
        "published_at": _iso(g.published_at),
    }


def _superseded(
    policy: Policy, record: PolicyRecord, g: Generation, obs: Observation
) -> dict[str, Any]:
    gate = evaluate_gate(policy, record, g, obs)
    return {
        "key_id": g.key_id,
        "short_key": g.short_key,
        "fingerprint": g.fingerprint,
        "rotation_id": g.rotation_id,
        "superseded_at": _iso(g.superseded_at),
        "expires_at": _iso(g.expires_at),
        "acked_by": list(gate.acked_by),
        "waiting_for": list(gate.waiting_for),
        "gate": "open" if gate.open else ("overdue" if gate.overdue else "closed"),
        "gate_reason": gate.reason,
    }


def _brief(g: Generation) -> dict[str, Any]:
    return {
        "rotation_id": g.rotation_id,
        "phase": g.phase.value,
        "short_key": g.short_key,
        "started_at": _iso(g.started_at),
        "ended_at": _iso(g.ended_at),
        "reason": g.end_reason or g.reason,
    }


def _target(view: TargetView, current: Generation | None) -> dict[str, Any]:
    in_sync = bool(current and view.fingerprint and view.fingerprint == current.fingerprint)
    return {
        "provider": view.provider,
        "reference": view.reference,
        "in_sync": in_sync,
        "fingerprint": view.fingerprint,
        "error": view.error,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
