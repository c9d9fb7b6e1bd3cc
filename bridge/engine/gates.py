"""The revocation gate of a superseded generation: pure, shared by the planner and ``status``.

Gates compose: ``ack = ["explicit", "usage"]`` opens only when both do, and never before
``min_overlap``. Past ``max_wait`` the policy's ``on_timeout`` decides.

* ``explicit``: every consumer moved on. A consumer moved on when some replica of it
  acknowledged a newer key with a proof of holding it, and every replica heard from within
  ``replica_ttl`` did (a replica still on the old key holds the gate; one that stopped
  heartbeating is gone).
* ``usage``: the old key shows no use, on LangSmith's clock (its ``Date`` header, never the
  bridge's), for ``usage_quiet`` since supersession, and a listing at least ``usage_quiet``
  after the one that first saw it idle shows the same ``last_used_at``.
* ``grace``: ``min_overlap`` alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bridge.config import Policy, format_duration
from bridge.engine.plan import Gate, NoteIdle, Observation
from bridge.state import Ack, Generation, PolicyRecord


def evaluate_gate(
    policy: Policy, record: PolicyRecord, generation: Generation, obs: Observation
) -> Gate:
    """Whether ``generation`` (superseded) may be revoked now, and why (not)."""
    assert generation.superseded_at is not None
    since = obs.now - generation.superseded_at
    acked, waiting = acknowledgements(policy, record, generation, obs)
    if since < policy.min_overlap:
        left = _whole(policy.min_overlap - since)
        return Gate(False, f"min_overlap: {format_duration(left)} left", acked, waiting)
    opened: list[str] = []
    closed: list[str] = []
    for gate in policy.ack:
        if gate == "grace":
            opened.append("grace: min_overlap has passed")
        elif gate == "explicit":
            if waiting:
                closed.append(f"waiting for {', '.join(waiting)}")
            else:
                opened.append(f"acknowledged by {', '.join(acked)}")
        else:
            is_open, why = usage_gate(policy, generation, obs)
            (opened if is_open else closed).append(why)
    if not closed:
        return Gate(True, "; ".join(opened), acked, waiting)
    why = "; ".join(closed)
    if since >= policy.max_wait:
        if policy.on_timeout == "revoke":
            passed = f"max_wait {format_duration(policy.max_wait)} passed ({why})"
            return Gate(True, passed, acked, waiting)
        return Gate(False, f"max_wait passed, holding ({why})", acked, waiting, overdue=True)
    return Gate(False, why, acked, waiting)


def acknowledgements(
    policy: Policy, record: PolicyRecord, generation: Generation, obs: Observation
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Consumers that moved past ``generation``, and those that did not (yet)."""
    newer = {g.fingerprint for g in record.newer_than(generation) if g.fingerprint}

    def moved(ack: Ack) -> bool:
        return ack.fingerprint in newer and (ack.consumer, ack.replica) in obs.proven

    acked = []
    for consumer in policy.consumers:
        replicas = [a for a in obs.acks if a.consumer == consumer]
        live = [a for a in replicas if obs.now - a.at <= policy.replica_ttl]
        if any(moved(a) for a in replicas) and all(moved(a) for a in live):
            acked.append(consumer)
    return tuple(acked), tuple(c for c in policy.consumers if c not in acked)


def usage_gate(policy: Policy, generation: Generation, obs: Observation) -> tuple[bool, str]:
    """Whether the old key has been idle long enough, measured on LangSmith's clock."""
    key = obs.keys.get(generation.key_id or "") if obs.keys is not None else None
    served = _served_at(obs)
    if key is None or served is None or generation.superseded_at is None:
        return False, "usage: key usage not observed"
    idle_since = generation.superseded_at + obs.langsmith_offset
    if key.last_used_at is not None:
        idle_since = max(idle_since, key.last_used_at)
    quiet = served - idle_since
    if quiet < policy.usage_quiet:
        return False, "usage: key still in use" if quiet < timedelta(0) else (
            f"usage: unused for {format_duration(_whole(quiet))} of "
            f"{format_duration(policy.usage_quiet)}"
        )
    watched = generation.idle_seen_at
    if watched is None or generation.idle_last_used != key.last_used_at:
        return False, "usage: idle; confirming on a later listing"
    if served - watched < policy.usage_quiet:
        left = _whole(policy.usage_quiet - (served - watched))
        return False, f"usage: idle; confirming ({format_duration(left)} left)"
    return True, f"usage: unused for {format_duration(_whole(quiet))}"


def idle_note(generation: Generation, obs: Observation) -> NoteIdle | None:
    """The listing later ones are compared with, when there is none yet or the key was used
    since the last one."""
    key = obs.keys.get(generation.key_id or "") if obs.keys is not None else None
    served = _served_at(obs)
    if key is None or served is None:
        return None
    if generation.idle_seen_at is not None and generation.idle_last_used == key.last_used_at:
        return None
    short = generation.short_key or "?"
    return NoteIdle(generation.rotation_id, short, served, key.last_used_at)


def _served_at(obs: Observation) -> datetime | None:
    return obs.keys_served_at or obs.keys_listed_at


def _whole(value: timedelta) -> timedelta:
    return timedelta(seconds=int(value.total_seconds()))
