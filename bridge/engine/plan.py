"""What the planner sees (``Observation``) and what it decides (``Plan`` of ``Step`` s)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from bridge.langsmith import ApiKey
from bridge.provider import Ownership
from bridge.state import Ack, Generation, Phase, PolicyRecord


@dataclass(frozen=True)
class TargetView:
    """One target as observed at the start of a run. ``ownership`` is the adapter's
    decision (``bridge.provider.Ownership``); the planner only acts on it."""

    target_id: str
    provider: str
    reference: str
    fingerprint: str | None = None  # of the key it holds; None when absent or empty
    ownership: Ownership = "absent"
    detail: str | None = None  # why it is foreign
    error: str | None = None  # reading failed; the planner will not act blind
    settings_digest: str | None = None  # of what it holds besides the key; None: not read
    rotation_id: str | None = None  # its marker's, read when the state did not know its key
    version: str | None = None  # the store's reference of what it serves (a version number)

    @property
    def exists(self) -> bool:
        return self.ownership != "absent"


@dataclass(frozen=True)
class Observation:
    """Everything a plan depends on besides the policy and its record."""

    now: datetime
    targets: tuple[TargetView, ...]
    acks: tuple[Ack, ...] = ()  # the latest of every replica of the policy's consumers
    proven: frozenset[tuple[str, str]] = frozenset()  # (consumer, replica): proof checked
    provable: frozenset[str] = frozenset()  # fingerprints whose key was read to check proofs
    # Keys marked for this policy (by any deployment) and keys the record names, by id;
    # None: the listing failed.
    keys: Mapping[str, ApiKey] | None = None
    keys_listed_at: datetime | None = None  # the bridge's clock when it listed
    keys_served_at: datetime | None = None  # LangSmith's clock then (its Date header)
    settings_digest: str | None = None  # of the settings the bridge would publish now
    instance: str = "default"  # this deployment's mark; only its keys can be orphans
    run_every: timedelta = timedelta(hours=1)
    orphan_age: timedelta = timedelta(hours=1)  # younger unknown keys may be a live run's

    @property
    def langsmith_offset(self) -> timedelta:
        """LangSmith's clock minus the bridge's, as the listing showed it."""
        if self.keys_served_at is None or self.keys_listed_at is None:
            return timedelta(0)
        return self.keys_served_at - self.keys_listed_at


@dataclass(frozen=True)
class Step:
    """One action. ``describe`` is what ``plan`` and ``run --dry-run`` print."""

    def describe(self) -> str:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        fields = {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(self).items()
        }
        return {"action": type(self).__name__.lower(), **fields}


@dataclass(frozen=True)
class Abandon(Step):
    rotation_id: str
    key_id: str | None
    short_key: str | None
    reason: str

    def describe(self) -> str:
        key = f" and delete key {self.short_key}" if self.key_id else ""
        return f"abandon rotation {self.rotation_id}{key}: {self.reason}"


@dataclass(frozen=True)
class DeleteOrphan(Step):
    key_id: str
    short_key: str
    rotation_id: str

    def describe(self) -> str:
        return f"delete orphan key {self.short_key} (rotation {self.rotation_id}, unreferenced)"


@dataclass(frozen=True)
class Rotate(Step):
    reason: str

    def describe(self) -> str:
        return f"rotate: {self.reason}"


@dataclass(frozen=True)
class Resume(Step):
    rotation_id: str
    source: str  # a target that already holds the key, to read it back from
    targets: tuple[str, ...]  # every target: those holding the key already are no-op writes

    def describe(self) -> str:
        targets = ", ".join(self.targets) or "no other target"
        return f"resume rotation {self.rotation_id}: publish to {targets} (key from {self.source})"


@dataclass(frozen=True)
class Republish(Step):
    rotation_id: str
    source: str
    targets: tuple[str, ...]

    def describe(self) -> str:
        targets = ", ".join(self.targets)
        return f"republish rotation {self.rotation_id} to {targets} (key from {self.source})"


@dataclass(frozen=True)
class Revoke(Step):
    rotation_id: str
    key_id: str
    short_key: str
    reason: str
    already_gone: bool = False

    def describe(self) -> str:
        verb = "mark revoked" if self.already_gone else "revoke"
        return f"{verb} key {self.short_key} (rotation {self.rotation_id}): {self.reason}"


@dataclass(frozen=True)
class Bookkeeping(Step):
    """A step that only updates the record with what this run observed. ``apply`` is pure,
    so the planner plans the rest on the record the executor will have saved."""

    def apply(self, record: PolicyRecord) -> PolicyRecord:
        raise NotImplementedError


@dataclass(frozen=True)
class Adopt(Bookkeeping):
    """Rebuild a generation the record lost from what an owned target serves."""

    rotation_id: str
    key_id: str
    short_key: str
    fingerprint: str | None  # None: no target serves it, so its fingerprint is unknown
    created_at: datetime | None
    expires_at: datetime | None
    targets: tuple[str, ...]  # the targets serving it
    current: bool  # the newest key served: it becomes current; others superseded
    at: datetime
    # The version each serving target holds it in, so revoking it retires those versions
    # (a Secret Manager version disabled, as for any generation the bridge published).
    versions: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        role = "current" if self.current else "superseded, behind its gate"
        where = f"{', '.join(self.targets)} serve it" if self.targets else "no target serves it"
        return (
            f"adopt key {self.short_key} (rotation {self.rotation_id}) as {role}: "
            f"{where} and the state had lost it"
        )

    def apply(self, record: PolicyRecord) -> PolicyRecord:
        if self.current:
            for previous in record.by_phase(Phase.CURRENT):
                superseded = {"phase": Phase.SUPERSEDED, "superseded_at": self.at}
                record = record.with_generation(previous.model_copy(update=superseded))
        adopted = Generation(
            rotation_id=self.rotation_id,
            phase=Phase.CURRENT if self.current else Phase.SUPERSEDED,
            started_at=self.created_at or self.at,
            reason="adopted from a target: the state had lost it",
            key_id=self.key_id,
            short_key=self.short_key,
            fingerprint=self.fingerprint,
            created_at=self.created_at or self.at,
            expires_at=self.expires_at,
            published_at=self.at,
            superseded_at=None if self.current else self.at,
            adopted=True,
            targets=dict(self.versions),
        )
        if self.current:
            return record.with_generation(adopted)
        # The oldest: a superseded key's gate waits for acks of the generations after it.
        return record.model_copy(update={"generations": (adopted, *record.generations)})


@dataclass(frozen=True)
class Restore(Bookkeeping):
    """A key the record holds as gone is listed again: superseded again, behind its gate."""

    rotation_id: str
    short_key: str
    at: datetime

    def describe(self) -> str:
        return (
            f"key {self.short_key} (rotation {self.rotation_id}) is listed again: "
            "superseded again, behind its gate"
        )

    def apply(self, record: PolicyRecord) -> PolicyRecord:
        generation = record.find(self.rotation_id)
        update = {
            "phase": Phase.SUPERSEDED,
            "superseded_at": generation.superseded_at or self.at,
            "ended_at": None,
            "end_reason": "",
            "missing_since": None,
        }
        return record.with_generation(generation.model_copy(update=update))


@dataclass(frozen=True)
class MarkMissing(Bookkeeping):
    """Remember that a listing missed a key (``since``), or that it is listed again."""

    rotation_id: str
    short_key: str
    since: datetime | None

    def describe(self) -> str:
        if self.since is None:
            return f"key {self.short_key} is listed again; no longer missing"
        return (
            f"key {self.short_key} (rotation {self.rotation_id}) is missing from LangSmith's "
            "listing; it counts as gone only if a later listing misses it too"
        )

    def apply(self, record: PolicyRecord) -> PolicyRecord:
        generation = record.find(self.rotation_id)
        return record.with_generation(generation.model_copy(update={"missing_since": self.since}))


@dataclass(frozen=True)
class NoteIdle(Bookkeeping):
    """ack includes 'usage': the listing whose ``last_used_at`` later ones must repeat."""

    rotation_id: str
    short_key: str
    at: datetime  # LangSmith's clock
    last_used: datetime | None

    def describe(self) -> str:
        return f"watch key {self.short_key} for use (usage gate, LangSmith's clock)"

    def apply(self, record: PolicyRecord) -> PolicyRecord:
        generation = record.find(self.rotation_id)
        update = {"idle_seen_at": self.at, "idle_last_used": self.last_used}
        return record.with_generation(generation.model_copy(update=update))


@dataclass(frozen=True)
class Gate:
    """Whether a superseded generation may be revoked now, and why (not)."""

    open: bool
    reason: str
    acked_by: tuple[str, ...] = ()
    waiting_for: tuple[str, ...] = ()
    overdue: bool = False


@dataclass(frozen=True)
class Plan:
    """The steps for one policy, in execution order, and notes for the operator."""

    policy: str
    steps: tuple[Step, ...] = ()
    notes: tuple[str, ...] = ()
    blocked: str | None = None  # set: nothing can be done safely; the reason is an error

    @property
    def due(self) -> bool:
        return bool(self.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "steps": [step.to_json() | {"description": step.describe()} for step in self.steps],
            "notes": list(self.notes),
            "blocked": self.blocked,
        }
