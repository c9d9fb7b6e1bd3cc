"""Outside requests to rotate a policy (Secret Manager's SECRET_ROTATE over Pub/Sub), and
whether one was already served.

Pub/Sub delivers at least once: the same message may arrive twice, even at once on two
instances. A request is served by the first generation minted for it (its id is recorded
on the generation, under the policy's lease), or by any generation minted after the request
was made: the key it asked to replace is already replaced. Either way a redelivery rotates
nothing more. An abandoned generation serves nothing: its key never reached a consumer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bridge.state.model import Generation, Phase, PolicyRecord


@dataclass(frozen=True)
class RotateRequest:
    """One request to rotate a policy now.

    Attributes:
        id: Unique per request, stable across redeliveries (``pubsub:<message id>``).
        made_at: When it was made (the message's publish time).
        reason: For the new generation and its history entry.
    """

    id: str
    made_at: datetime
    reason: str


def served_by(record: PolicyRecord, request: RotateRequest) -> Generation | None:
    """The generation that already answers ``request``, or ``None`` when none does."""
    for generation in reversed(record.generations):
        if generation.phase is Phase.ABANDONED:
            continue
        if generation.request == request.id or generation.started_at >= request.made_at:
            return generation
    return None


__all__ = ["RotateRequest", "served_by"]
