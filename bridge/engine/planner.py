"""Deciding what a policy needs next: a pure function of its config, its record and an
observation. No I/O happens here, which is what makes ``--dry-run`` honest and the rules
testable without a server.

The rules, in order:

1. What the targets and the listing say is booked first (``reconcile_keys``): keys owned
   targets serve that the record lost are adopted, keys missing from the listing are marked
   (gone only when a later listing agrees), gone keys listed again are superseded again.
   The rest is planned on the record as those steps will leave it.
2. A generation left in ``minting``/``publishing`` by a dead run is resumed when some target
   already holds its key (the key can be read back from there), and abandoned otherwise: its
   secret is lost, so its key is deleted.
3. Keys marked for the policy that no live generation references: a dead run's (its
   rotation is in the record) are deleted; this deployment's of a rotation the record lost
   are adopted as superseded once no live run can still be publishing them, so they go only
   through their gate; others' are kept (``reconcile_keys.leftovers``).
4. A rotation is due when there is no current key, when asked, when the current key is gone
   or would expire before the run after next, when ``rotate_every`` has passed, when a
   target drifted (holds a key the bridge never minted) or when no target holds the current
   key. Otherwise targets that are missing or stale get the current key again.
5. Each superseded generation is revoked when its gate opens (``gates``), never while a
   target still serves its key. (Revocations run before step 4's rotation; see ``plan``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.config import Policy, format_duration
from bridge.engine.gates import evaluate_gate, idle_note
from bridge.engine.plan import (
    Abandon,
    Bookkeeping,
    Observation,
    Plan,
    Republish,
    Resume,
    Revoke,
    Rotate,
    Step,
    TargetView,
)
from bridge.engine.reconcile_keys import (
    adoptions,
    gone,
    leftovers,
    listing_notes,
    missing,
    suspect_listing,
)
from bridge.state import Generation, Phase, PolicyRecord

__all__ = ["evaluate_gate", "plan", "rotation_reason", "rotation_schedule"]

# How long an AWS-driven rotation may sit between its steps before it counts as dead.
NATIVE_WINDOW = timedelta(hours=1)
# Rotate ahead of expiry by at least this much, on top of min_overlap and one run interval.
EXPIRY_MARGIN = timedelta(hours=1)


def plan(policy: Policy, record: PolicyRecord, obs: Observation, *, force: bool = False) -> Plan:
    """The steps that bring ``policy`` to its desired state, in execution order."""
    blocked = _blocked(obs)
    if blocked:
        return Plan(policy.name, blocked=blocked)
    steps: list[Step] = []
    notes: list[str] = []
    suspect = suspect_listing(record, obs)
    if suspect:
        notes.append(suspect)
    for adopt in adoptions(policy.name, record, obs):
        steps.append(adopt)
        record = adopt.apply(record)
    for booked in listing_notes(record, obs):  # on the record as adoption left it
        steps.append(booked)
        record = booked.apply(record)
    busy = _unfinished(record, obs, steps, notes)
    found = leftovers(policy.name, record, obs)
    steps.extend(found.delete)
    notes.extend(found.notes)
    for adopt in found.adopt:
        steps.append(adopt)
        record = adopt.apply(record)
    # Revocations go before a rotation: their gates were decided on what is true now, and
    # a rotation that fails halfway must not hold back keys whose consumers moved on.
    for generation in record.by_phase(Phase.SUPERSEDED):
        if "usage" in policy.ack and (note := idle_note(generation, obs)):
            steps.append(note)
            record = note.apply(record)
            generation = record.find(generation.rotation_id)
        step, note_text = _revocation(policy, record, generation, obs)
        if step:
            steps.append(step)
        if note_text:
            notes.append(note_text)
    if not busy:
        steps.extend(_rotation_or_repair(policy, record, obs, force))
    if obs.keys is None and any(not isinstance(s, Bookkeeping) for s in steps):
        # Without LangSmith's listing, orphans, gone keys and usage gates are all unknown.
        blocked = "LangSmith key listing failed; not acting blind"
        return Plan(policy.name, notes=tuple(notes), blocked=blocked)
    return Plan(policy.name, steps=tuple(steps), notes=tuple(notes))


def _blocked(obs: Observation) -> str | None:
    for view in obs.targets:
        if view.error:
            return f"target {view.target_id} cannot be read: {view.error}"
        if view.ownership == "foreign":
            why = view.detail or "exists and is not this policy's"
            return f"target {view.target_id} {why}; refusing to touch it"
    return None


def _unfinished(
    record: PolicyRecord, obs: Observation, steps: list[Step], notes: list[str]
) -> bool:
    """Plan the generations a dead run left behind; True when one is still under way."""
    resume: Resume | None = None
    busy = False
    for generation in reversed(record.by_phase(Phase.MINTING, Phase.PUBLISHING)):
        if generation.native and obs.now - generation.started_at < NATIVE_WINDOW:
            # AWS drives this rotation step by step; its finishSecret will promote it.
            notes.append(f"native rotation {generation.rotation_id} in progress")
            busy = True
            continue
        holders = _holders(obs, generation.fingerprint)
        if resume is None and generation.phase is Phase.PUBLISHING and holders:
            # Every target, the holders too: publishing what a target holds writes nothing
            # but returns its version, which the dead run never recorded (revocation retires
            # it), and finishes a store-level move cut short (AWSPENDING left on AWSCURRENT).
            every = tuple(v.target_id for v in obs.targets)
            resume = Resume(generation.rotation_id, source=holders[0], targets=every)
            steps.append(resume)
            continue
        reason = (
            "minted but reached no target; its secret is lost"
            if generation.key_id
            else "interrupted before its key was recorded"
        )
        steps.append(
            Abandon(generation.rotation_id, generation.key_id, generation.short_key, reason)
        )
    return busy or resume is not None


def _rotation_or_repair(
    policy: Policy, record: PolicyRecord, obs: Observation, force: bool
) -> list[Step]:
    current = record.current()
    reason = rotation_reason(policy, record, obs, force=force)
    if reason:
        return [Rotate(reason)]
    assert current is not None and current.fingerprint is not None
    stale = tuple(
        v.target_id
        for v in obs.targets
        if v.fingerprint != current.fingerprint or _settings_moved(v, current, obs)
    )
    if not stale:
        return []
    return [Republish(current.rotation_id, _holders(obs, current.fingerprint)[0], stale)]


def _settings_moved(view: TargetView, current: Generation, obs: Observation) -> bool:
    """Whether a target holding the current key holds other settings than the bridge would
    write now: an edited endpoint, an extra variable, or a config change since the publish."""
    expected = obs.settings_digest
    if expected is None:
        return False
    if view.settings_digest is not None:  # its value was read: judge what it holds
        return view.settings_digest != expected
    return current.settings_digest is not None and current.settings_digest != expected


def rotation_reason(
    policy: Policy, record: PolicyRecord, obs: Observation, *, force: bool = False
) -> str | None:
    """Why the policy needs a new key now, or ``None`` when it does not."""
    current = record.current()
    if current is None or current.fingerprint is None or current.created_at is None:
        return "no current key"
    if force:
        return "rotation requested"
    if gone(current, obs):
        return f"current key {current.short_key} no longer exists in LangSmith"
    schedule = rotation_schedule(policy, current, obs.run_every)
    if schedule.expiry_at is not None and obs.now >= schedule.expiry_at:
        assert current.expires_at is not None
        return f"current key {current.short_key} expires at {current.expires_at:%Y-%m-%d %H:%M}Z"
    if obs.now >= schedule.due_at:
        return f"due: rotate_every {format_duration(policy.rotate_every)} has passed"
    known = {g.fingerprint for g in record.generations if g.fingerprint}
    for view in obs.targets:
        # An adoptable target holds someone else's key by definition: it is only stale.
        if view.ownership == "ours" and view.fingerprint and view.fingerprint not in known:
            return f"drift: target {view.target_id} holds a key the bridge did not mint"
    if not _holders(obs, current.fingerprint):
        return "no target holds the current key"
    return None


@dataclass(frozen=True)
class Schedule:
    """When the current key must be replaced: ``due_at`` by ``rotate_every``, and
    ``expiry_at`` ahead of its expiry (``None`` for a key that does not expire)."""

    due_at: datetime
    expiry_at: datetime | None

    @property
    def next_at(self) -> datetime:
        return min(self.due_at, self.expiry_at) if self.expiry_at else self.due_at


def rotation_schedule(policy: Policy, current: Generation, every: timedelta) -> Schedule:
    """The one computation of when ``current`` rotates, for the planner and ``status``.

    A key is replaced early enough that, even when the run that replaces it comes a whole
    run interval (``every``) late, its successor overlaps it for ``min_overlap`` before it
    expires: no target ever serves an expired key.
    """
    assert current.created_at is not None
    expiry_at = None
    if current.expires_at:
        lead = policy.min_overlap + every + expiry_margin(policy, every)
        expiry_at = current.expires_at - lead
    return Schedule(current.created_at + policy.rotate_every, expiry_at)


def expiry_margin(policy: Policy, every: timedelta) -> timedelta:
    """How long before its expiry deadline a key is replaced regardless of ``rotate_every``:
    an hour, or less for short-lived keys, so those still rotate on time."""
    slack = policy.key_ttl - policy.rotate_every - policy.needs_slack(every)
    return max(timedelta(0), min(EXPIRY_MARGIN, slack / 2))


def _holders(obs: Observation, fingerprint: str | None) -> list[str]:
    if fingerprint is None:
        return []
    return [v.target_id for v in obs.targets if v.fingerprint == fingerprint]


def _revocation(
    policy: Policy, record: PolicyRecord, generation: Generation, obs: Observation
) -> tuple[Step | None, str | None]:
    short = generation.short_key or "?"
    key_id = generation.key_id or ""
    if gone(generation, obs):
        return Revoke(generation.rotation_id, key_id, short, "already deleted", True), None
    if missing(generation, obs):
        return None, f"key {short} is missing from LangSmith's listing; confirming it is gone"
    holders = _holders(obs, generation.fingerprint)
    if holders:
        return None, f"key {short} is still served by {', '.join(holders)}; not revoking"
    gate = evaluate_gate(policy, record, generation, obs)
    if gate.open:
        return Revoke(generation.rotation_id, key_id, short, gate.reason), None
    state = "overdue" if gate.overdue else "waiting"
    return None, f"key {short} {state}: {gate.reason}"
