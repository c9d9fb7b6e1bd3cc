"""What LangSmith's key listing and the targets say about the record: pure, for the planner.

The targets are the second source of truth. A key an owned target serves is never deleted;
when the record does not know it (the state was lost, or restored from an older backup) it
is adopted. A key counts as gone only when its delete answered 404 or two listings at least
``GONE_CONFIRM`` apart missed it: one empty or partial listing proves nothing. A key the
record holds as gone that is listed again is superseded again, behind its gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bridge.config import format_duration
from bridge.engine.plan import (
    Adopt,
    Bookkeeping,
    DeleteOrphan,
    MarkMissing,
    Observation,
    Restore,
    Step,
)
from bridge.langsmith import ApiKey
from bridge.marker import Marker
from bridge.state import Generation, Phase, PolicyRecord

# A key minted this close to the listing may be missing from it without being gone.
LISTING_SKEW = timedelta(seconds=30)
# Two listings missing a key must be this far apart before it counts as gone.
GONE_CONFIRM = timedelta(minutes=2)
# Markers older versions put on keys when no instance was configured. Another deployment
# may share it, so a key so marked that this record does not know is never deleted.
SHARED_INSTANCE = "default"


def adoptions(policy: str, record: PolicyRecord, obs: Observation) -> list[Adopt]:
    """Generations to rebuild from keys owned targets serve that the record does not know."""
    if obs.keys is None:
        return []
    known = {g.fingerprint for g in record.generations if g.fingerprint}
    # A target naming a rotation the record knows but holding another key was edited:
    # that is drift to repair, not a lost generation to adopt.
    rotations = {g.rotation_id for g in record.generations}
    by_rotation = {
        marker.rotation_id: key
        for key in obs.keys.values()
        if (marker := Marker.parse(key.description)) and marker.policy == policy
    }
    served: dict[str, list[str]] = {}
    versions: dict[str, list[tuple[str, str]]] = {}
    fingerprints: dict[str, str] = {}
    for view in obs.targets:
        if view.ownership != "ours" or not view.fingerprint or view.fingerprint in known:
            continue
        if view.rotation_id in by_rotation and view.rotation_id not in rotations:
            served.setdefault(view.rotation_id, []).append(view.target_id)
            if view.version is not None:
                versions.setdefault(view.rotation_id, []).append((view.target_id, view.version))
            fingerprints[view.rotation_id] = view.fingerprint
    if not served:
        return []
    current = record.current()
    newest = max(served, key=lambda rotation: _minted(by_rotation[rotation]))
    newest_is_current = current is None or (
        current.created_at is not None
        and _minted(by_rotation[newest]) > current.created_at.timestamp()
    )
    steps = []
    for rotation, targets in served.items():
        key = by_rotation[rotation]
        steps.append(
            Adopt(
                rotation_id=rotation,
                key_id=key.id,
                short_key=key.short_key,
                fingerprint=fingerprints[rotation],
                created_at=key.created_at,
                expires_at=key.expires_at,
                targets=tuple(targets),
                current=rotation == newest and newest_is_current,
                at=obs.now,
                versions=tuple(versions.get(rotation, ())),
            )
        )
    return sorted(steps, key=lambda step: step.current)  # the current one last


def _minted(key: ApiKey) -> float:
    return key.created_at.timestamp() if key.created_at else 0.0


def listing_notes(record: PolicyRecord, obs: Observation) -> list[Bookkeeping]:
    """Keys the listing missed for the first time, keys listed again, gone keys come back."""
    if obs.keys is None or obs.keys_listed_at is None:
        return []
    steps: list[Bookkeeping] = []
    for generation in record.generations:
        if not generation.key_id:
            continue
        listed = generation.key_id in obs.keys
        if generation.phase is Phase.REVOKED and listed and _listed_after_end(generation, obs):
            steps.append(Restore(generation.rotation_id, generation.short_key or "?", obs.now))
        elif generation.phase in (Phase.CURRENT, Phase.SUPERSEDED):
            if not listed and generation.missing_since is None and missing(generation, obs):
                short = generation.short_key or "?"
                steps.append(MarkMissing(generation.rotation_id, short, obs.keys_listed_at))
            elif listed and generation.missing_since is not None:
                steps.append(MarkMissing(generation.rotation_id, generation.short_key or "?", None))
    return steps


def _listed_after_end(generation: Generation, obs: Observation) -> bool:
    """The listing was taken after the generation ended. A run lists once, before it takes
    a lease, so another runner may revoke a key after this run's listing showed it."""
    assert obs.keys_listed_at is not None
    ended = generation.ended_at
    return ended is not None and ended < obs.keys_listed_at - LISTING_SKEW


def missing(generation: Generation, obs: Observation) -> bool:
    """This listing does not show the generation's key (and it is not too new to show)."""
    if obs.keys is None or obs.keys_listed_at is None or generation.key_id is None:
        return False
    minted = generation.created_at or generation.started_at
    return generation.key_id not in obs.keys and minted < obs.keys_listed_at - LISTING_SKEW


def gone(generation: Generation, obs: Observation) -> bool:
    """Two listings ``GONE_CONFIRM`` apart missed the key: it no longer exists."""
    since = generation.missing_since
    assert obs.keys_listed_at is not None or not missing(generation, obs)
    return (
        since is not None
        and missing(generation, obs)
        and obs.keys_listed_at is not None
        and obs.keys_listed_at - since >= GONE_CONFIRM
    )


def suspect_listing(record: PolicyRecord, obs: Observation) -> str | None:
    """A note when the listing misses every key the policy holds live: likely partial."""
    live = [g for g in record.by_phase(Phase.CURRENT, Phase.SUPERSEDED) if g.key_id]
    if live and all(missing(g, obs) for g in live):
        return (
            "LangSmith's listing shows none of this policy's keys; treating it as suspect "
            f"until a listing {format_duration(GONE_CONFIRM)} later agrees"
        )
    return None


def own_instances(record: PolicyRecord, obs: Observation) -> set[str]:
    """The marks this deployment's keys carry: its own, and those of keys its record holds.

    A record holds only keys the bridge minted or adopted from its own targets, so their
    marks are this deployment's earlier names (the state was lost and remade its id, or an
    operator renamed ``instance``). The shared ``default`` of older versions never counts.
    """
    held = {g.key_id for g in record.generations if g.key_id}
    found = {obs.instance}
    for key in (obs.keys or {}).values():
        marker = Marker.parse(key.description) if key.id in held else None
        if marker and marker.instance != SHARED_INSTANCE:
            found.add(marker.instance)
    return found


@dataclass(frozen=True)
class Leftovers:
    """Keys marked for a policy that no live generation references, sorted by fate."""

    delete: list[Step]  # a dead run's, whose rotation the record knows: its secret is lost
    adopt: list[Adopt]  # this deployment's, of a rotation the record lost: behind a gate
    notes: list[str]  # kept, and why


def leftovers(policy: str, record: PolicyRecord, obs: Observation) -> Leftovers:
    """What to do with keys marked for this policy that no live generation references.

    A key of a rotation the record knows (a run died between mint and publish) is deleted
    at once. One of a rotation it does not know is this deployment's only if it carries one
    of its marks; then, once older than ``orphan_age`` (no live run can still be publishing
    it), it is adopted as superseded, so it goes only when its gate opens: a consumer may
    still hold it. Another deployment's keys, keys a target serves, young keys and keys
    under the shared ``default`` mark are kept, with a note.
    """
    found = Leftovers([], [], [])
    if obs.keys is None or obs.keys_listed_at is None:
        return found
    referenced = {g.key_id for g in record.generations if g.key_id and g.phase.live}
    revoked = {g.key_id for g in record.by_phase(Phase.REVOKED) if g.key_id}
    # Rotations of this record that a dead run left behind (an AWS-driven one may be alive).
    rotations = {g.rotation_id for g in record.generations if not (g.native and g.phase.live)}
    served = {v.rotation_id for v in obs.targets if v.rotation_id}
    own = own_instances(record, obs)
    kept: dict[str, list[str]] = {}
    for key in obs.keys.values():
        marker = Marker.parse(key.description)
        if key.id in referenced or key.id in revoked or marker is None or marker.policy != policy:
            continue
        if marker.rotation_id in rotations and marker.instance in own | {SHARED_INSTANCE}:
            found.delete.append(DeleteOrphan(key.id, key.short_key, marker.rotation_id))
        elif marker.instance not in own:
            kept.setdefault(f"marked by deployment {marker.instance!r}", []).append(key.short_key)
        elif marker.rotation_id in served:
            kept.setdefault("served by a target", []).append(key.short_key)
        elif marker.instance == SHARED_INSTANCE:
            why = (
                "of an unknown rotation under the shared 'default' instance (set "
                "langsmith.instance to a name unique to this deployment)"
            )
            kept.setdefault(why, []).append(key.short_key)
        elif key.created_at is None or key.created_at > obs.keys_listed_at - obs.orphan_age:
            why = f"of an unknown rotation, younger than {format_duration(obs.orphan_age)}"
            kept.setdefault(why, []).append(key.short_key)
        else:
            found.adopt.append(
                Adopt(
                    rotation_id=marker.rotation_id,
                    key_id=key.id,
                    short_key=key.short_key,
                    fingerprint=None,
                    created_at=key.created_at,
                    expires_at=key.expires_at,
                    targets=(),
                    current=False,
                    at=obs.now,
                )
            )
    found.notes.extend(f"keeping key(s) {', '.join(keys)}: {why}" for why, keys in kept.items())
    return found
