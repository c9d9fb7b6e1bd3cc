"""What the state store remembers about each policy. Never key material: ids, short keys,
fingerprints and instants only."""

from __future__ import annotations

import secrets as _random
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

HISTORY_KEPT = 10  # ended generations (revoked, abandoned) kept for the audit trail


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


class Ack(_Record):
    """A consumer's report of the key it now uses, by fingerprint."""

    consumer: str
    fingerprint: str
    at: datetime


class PolicyRecord(_Record):
    """Everything the bridge knows about one policy. ``version`` drives compare-and-swap."""

    policy: str
    version: int = 0
    generations: tuple[Generation, ...] = ()
    last_run_at: datetime | None = None
    last_error: str | None = None

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


def _trim(generations: tuple[Generation, ...]) -> tuple[Generation, ...]:
    ended = [g for g in generations if not g.phase.live]
    drop = {g.rotation_id for g in ended[: max(0, len(ended) - HISTORY_KEPT)]}
    return tuple(g for g in generations if g.rotation_id not in drop)
