"""What the state store remembers about each policy. Never key material: ids, short keys,
fingerprints and instants only."""

from __future__ import annotations

import re
import secrets as _random
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bridge.errors import StateError

HISTORY_KEPT = 10  # ended generations (revoked, abandoned) kept for the audit trail
EVENTS_KEPT = 100  # newest events kept in a record's ``history``
DEFAULT_REPLICA = "default"  # the replica of every ack written before acks had replicas
REPLICA_NAME = re.compile(r"[A-Za-z0-9_.:@/-]{1,128}")
PROOF_MAX = 1024  # characters of an ack's proof a store keeps (an HMAC is under 100)
REPLICAS_KEPT = 200  # per consumer; beyond, the replicas heard from longest ago are forgotten
DEPLOYMENT_ID = re.compile(r"[A-Za-z0-9_.-]+")
LEGACY_DEPLOYMENT_ID = "default"  # what versions without a deployment id marked keys with


class Phase(StrEnum):
    """Where a generation is in its life. Only the first four are live."""

    MINTING = "minting"  # intent recorded; the key may or may not exist yet
    PUBLISHING = "publishing"  # key minted and recorded; targets being written
    CURRENT = "current"  # every target holds it
    SUPERSEDED = "superseded"  # a newer generation is current; waiting for its gate
    REVOKED = "revoked"  # key deleted in LangSmith
    ABANDONED = "abandoned"  # never reached consumers; key deleted

    @property
    def live(self) -> bool:
        return self not in (Phase.REVOKED, Phase.ABANDONED)


def new_rotation_id(now: datetime) -> str:
    """A sortable, readable id: UTC instant plus 16 random hex digits.

    33 characters, so it can serve as an AWS ``ClientRequestToken`` (32 to 64) as is.
    """
    return f"{now:%Y%m%dT%H%M%SZ}-{_random.token_hex(8)}"


class _Record(BaseModel):
    # defer_build: validators are built on first use, not at import (Lambda cold start).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class Generation(_Record):
    """One LangSmith key in the life of a policy."""

    rotation_id: str
    phase: Phase
    started_at: datetime
    reason: str = ""
    native: bool = False  # staged by an AWS Secrets Manager rotation function, step by step
    key_id: str | None = None
    short_key: str | None = None
    fingerprint: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    published_at: datetime | None = None
    superseded_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str = ""
    targets: dict[str, str] = Field(default_factory=dict, description="target id -> version")
    settings_digest: str | None = None  # of the settings published with the key, last time
    # The first listing (bridge clock) that missed the key; a later one confirms it gone.
    missing_since: datetime | None = None
    # ack includes "usage": LangSmith's clock at the first listing that showed the
    # superseded key idle, and the last_used_at it showed then (None: never used).
    idle_seen_at: datetime | None = None
    idle_last_used: datetime | None = None
    adopted: bool = False  # rebuilt from what a target serves, after the state was lost
    # The outside request that asked for this key (a Pub/Sub message id), so a redelivered
    # request finds it and rotates nothing more.
    request: str | None = None


class Ack(_Record):
    """One replica of a consumer reporting the key it now uses, by fingerprint.

    ``proof`` is computed by the consumer and checked by the engine; to a store it is an
    opaque string (never key material). Acks stored before replicas existed load as
    replica ``default`` without a proof.
    """

    consumer: str
    fingerprint: str
    at: datetime
    replica: str = DEFAULT_REPLICA
    proof: str | None = None


def check_ack(ack: Ack) -> None:
    """Refuse an ack no store may record: a malformed replica name or an oversized proof.

    Raises:
        StateError: naming the consumer and what is wrong.
    """
    if not REPLICA_NAME.fullmatch(ack.replica):
        raise StateError(
            f"ack of consumer {ack.consumer!r}: replica name {ack.replica!r} must be 1 to 128 "
            "of A-Z a-z 0-9 _ . : @ / -"
        )
    if ack.proof is not None and len(ack.proof) > PROOF_MAX:
        raise StateError(
            f"ack of consumer {ack.consumer!r} replica {ack.replica!r}: proof of "
            f"{len(ack.proof)} characters, over the {PROOF_MAX} a store keeps"
        )


def ack_order(ack: Ack) -> tuple[str, str]:
    """How every store orders the acks it returns: by consumer, then replica."""
    return ack.consumer, ack.replica


def forgotten(acks: list[Ack], kept: Ack) -> list[Ack]:
    """The acks of one consumer a store drops after recording ``kept`` (which stays): the
    ones heard from longest ago, beyond ``REPLICAS_KEPT`` (ties: by replica name)."""
    others = sorted((a for a in acks if a.replica != kept.replica), key=lambda a: (a.at, a.replica))
    return others[: max(0, len(others) + 1 - REPLICAS_KEPT)]


class Event(_Record):
    """One entry of a policy's history: what was done to which key, why, and by whom."""

    at: datetime
    action: str  # "rotated", "revoked", "abandoned", "adopted", ...
    rotation_id: str | None = None
    short_key: str | None = None
    reason: str = ""
    actor: str = ""


class Alerted(_Record):
    """A problem announced: what it looked like (its digest) and when it was sent."""

    digest: str
    at: datetime


class Run(_Record):
    """How the latest runs of a policy went; stored apart from the record (no CAS race)."""

    last_run_at: datetime | None = None
    last_error: str | None = None
    last_success_at: datetime | None = None


def new_deployment_id() -> str:
    """A fresh deployment id: ``d`` and 12 lowercase hex digits."""
    return "d" + _random.token_hex(6)


class PolicyRecord(_Record):
    """Everything the bridge knows about one policy. ``version`` drives compare-and-swap."""

    policy: str
    version: int = 0
    generations: tuple[Generation, ...] = ()
    last_run_at: datetime | None = None
    last_error: str | None = None
    last_success_at: datetime | None = None
    history: tuple[Event, ...] = ()  # the newest EVENTS_KEPT, oldest first
    alerts: dict[str, Alerted] = Field(default_factory=dict)  # problem id -> last notice

    def live(self) -> list[Generation]:
        return [g for g in self.generations if g.phase.live]

    def current(self) -> Generation | None:
        found = [g for g in self.generations if g.phase is Phase.CURRENT]
        return found[-1] if found else None

    def by_phase(self, *phases: Phase) -> list[Generation]:
        return [g for g in self.generations if g.phase in phases]

    def find(self, rotation_id: str) -> Generation:
        for generation in self.generations:
            if generation.rotation_id == rotation_id:
                return generation
        raise KeyError(rotation_id)

    def by_fingerprint(self, fingerprint: str) -> Generation | None:
        for generation in reversed(self.generations):
            if generation.fingerprint == fingerprint:
                return generation
        return None

    def newer_than(self, generation: Generation) -> list[Generation]:
        """Live-or-ended generations started after ``generation``, oldest first."""
        index = self.generations.index(generation)
        return [g for g in self.generations[index + 1 :] if g.phase is not Phase.ABANDONED]

    def with_generation(self, generation: Generation) -> PolicyRecord:
        """This record with ``generation`` replaced (by rotation id) or appended."""
        kept = [g for g in self.generations if g.rotation_id != generation.rotation_id]
        if len(kept) == len(self.generations):
            generations = (*self.generations, generation)
        else:
            generations = tuple(
                generation if g.rotation_id == generation.rotation_id else g
                for g in self.generations
            )
        return self.model_copy(update={"generations": _trim(generations)})

    def with_event(self, event: Event) -> PolicyRecord:
        """This record with ``event`` appended to its history, trimmed to the newest
        ``EVENTS_KEPT``."""
        return self.model_copy(update={"history": (*self.history, event)[-EVENTS_KEPT:]})

    def with_run(self, run: Run) -> PolicyRecord:
        """This record with the run fields of ``run``."""
        return self.model_copy(update=dict(run))

    def run(self) -> Run:
        """The run fields of this record."""
        return Run(
            last_run_at=self.last_run_at,
            last_error=self.last_error,
            last_success_at=self.last_success_at,
        )


def _trim(generations: tuple[Generation, ...]) -> tuple[Generation, ...]:
    ended = [g for g in generations if not g.phase.live]
    drop = {g.rotation_id for g in ended[: max(0, len(ended) - HISTORY_KEPT)]}
    return tuple(g for g in generations if g.rotation_id not in drop)
