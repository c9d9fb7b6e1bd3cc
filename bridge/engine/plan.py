"""What the planner sees (``Observation``) and what it decides (``Plan`` of ``Step`` s)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from bridge.langsmith import ApiKey
from bridge.provider import Ownership
from bridge.state import Ack


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

    @property
    def exists(self) -> bool:
        return self.ownership != "absent"


@dataclass(frozen=True)
class Observation:
    """Everything a plan depends on besides the policy and its record."""

    now: datetime
    targets: tuple[TargetView, ...]
    acks: Mapping[str, Ack] = field(default_factory=dict)
    keys: Mapping[str, ApiKey] | None = None  # this policy's marked keys by id; None: unseen
    keys_listed_at: datetime | None = None
    settings_digest: str | None = None  # of the settings the bridge would publish now


@dataclass(frozen=True)
class Step:
    """One action. ``describe`` is what ``plan`` and ``run --dry-run`` print."""

    def describe(self) -> str:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"action": type(self).__name__.lower(), **asdict(self)}


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
