"""Recording a consumer's acknowledgement: "I now use the key with this fingerprint"."""

from __future__ import annotations

from datetime import datetime

from bridge.config import Policy
from bridge.errors import BridgeError
from bridge.state import Ack, Generation, StateStore


class AckError(BridgeError):
    """The acknowledgement does not match the policy (unknown consumer or key)."""


def acknowledge(
    store: StateStore, policy: Policy, consumer: str, fingerprint: str, now: datetime
) -> Generation:
    """Record that ``consumer`` uses the key with ``fingerprint``; return its generation.

    Only the fingerprint is stored. An ack of an older generation is recorded too (it is
    the truth: that consumer is behind), and it keeps the gates of newer keys closed.

    Raises:
        AckError: the consumer is not one of the policy's, or no generation of the policy
            has that fingerprint (the consumer reads a key the bridge did not publish).
    """
    if consumer not in policy.consumers:
        known = ", ".join(policy.consumers) or "none"
        raise AckError(f"policy {policy.name!r} has no consumer {consumer!r} (consumers: {known})")
    generation = store.load(policy.name).by_fingerprint(fingerprint)
    if generation is None:
        raise AckError(
            f"policy {policy.name!r} never published a key with fingerprint {fingerprint}; "
            "is the consumer reading the right target?"
        )
    store.record_ack(policy.name, Ack(consumer=consumer, fingerprint=fingerprint, at=now))
    return generation
