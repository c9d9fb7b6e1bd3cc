"""Acknowledgements: a consumer replica's proof that it now holds a key.

An ack names the policy, the consumer, the replica, the key's fingerprint and an instant,
and carries ``proof``: an HMAC-SHA256 over those, keyed by the key itself. Only a holder of
the key can make it; the fingerprint ``status`` prints is not enough. The bridge checks the
proof at gate time with the key it reads back from a target, so a consumer's write access
to its own ack (all the state store grants it) cannot open a gate it has not earned.

Trust model: whoever can read a target can acknowledge for any consumer of that policy
(it holds the key); whoever can write acks can delay a gate (an ack of the old key), never
open one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import socket
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from bridge.config import Policy
from bridge.errors import BridgeError
from bridge.secrets import Secret
from bridge.state import Ack, Generation, StateStore

_PROOF_VERSION = "v1"
REPLICA = re.compile(r"[A-Za-z0-9_.:@/-]{1,128}")


class AckError(BridgeError):
    """The acknowledgement does not match the policy (unknown consumer or key)."""


def default_replica() -> str:
    """This replica's name: the host name, which is the pod name under Kubernetes."""
    name = re.sub(r"[^A-Za-z0-9_.:@/-]", "-", socket.gethostname())[:128]
    return name or "default"


def ack_proof(key: Secret, policy: str, consumer: str, replica: str, at: datetime) -> str:
    """The proof a replica holding ``key`` attaches to its ack."""
    # Whole seconds in UTC: the instant survives any store's round trip unchanged.
    instant = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = ["langsmith-bridge-ack", _PROOF_VERSION, policy, consumer, replica]
    message = "\n".join([*fields, key.fingerprint, instant])
    digest = hmac.new(key.reveal().encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"{_PROOF_VERSION}:{digest}"


def proven(
    policy: str, acks: Iterable[Ack], keys: Mapping[str, Secret]
) -> frozenset[tuple[str, str]]:
    """The ``(consumer, replica)`` pairs whose ack carries a valid proof for its key.

    Args:
        keys: Keys the bridge read back, by fingerprint; an ack of any other key is unproven.
    """
    found = set()
    for ack in acks:
        key = keys.get(ack.fingerprint)
        if key is None or not ack.proof:
            continue
        expected = ack_proof(key, policy, ack.consumer, ack.replica, ack.at)
        if hmac.compare_digest(expected, ack.proof):
            found.add((ack.consumer, ack.replica))
    return frozenset(found)


def acknowledge(
    store: StateStore,
    policy: Policy,
    consumer: str,
    key: Secret,
    now: datetime,
    *,
    replica: str | None = None,
) -> Generation:
    """Record that ``replica`` of ``consumer`` uses ``key``; return the key's generation.

    Only the fingerprint and the proof are stored. An ack of an older generation is
    recorded too (it is the truth: that replica is behind), and it keeps the gates of newer
    keys closed. Replicas re-acknowledge as a heartbeat: one silent for the policy's
    ``replica_ttl`` no longer holds a gate.

    Raises:
        AckError: the consumer is not one of the policy's, the replica name is malformed,
            or no generation of the policy has that key (the consumer reads a key the
            bridge did not publish).
    """
    replica = replica or default_replica()
    if consumer not in policy.consumers:
        known = ", ".join(policy.consumers) or "none"
        raise AckError(f"policy {policy.name!r} has no consumer {consumer!r} (consumers: {known})")
    if not REPLICA.fullmatch(replica):
        raise AckError(f"replica name {replica!r} must be 1-128 of [A-Za-z0-9_.:@/-]")
    return record_ack(store, policy.name, consumer, key, now, replica)


def record_ack(
    store: StateStore, policy: str, consumer: str, key: Secret, now: datetime, replica: str
) -> Generation:
    """``acknowledge`` for a consumer that knows only its policy's name (a consumer-only
    config): the gates count acks of the policy's configured consumers alone, so a name
    the policy does not list opens nothing.

    Raises:
        AckError: the replica name is malformed, or no generation of the policy has that key.
    """
    if not REPLICA.fullmatch(replica):
        raise AckError(f"replica name {replica!r} must be 1-128 of [A-Za-z0-9_.:@/-]")
    generation = store.load(policy).by_fingerprint(key.fingerprint)
    if generation is None:
        raise AckError(
            f"policy {policy!r} never published a key with fingerprint "
            f"{key.fingerprint}; is the consumer reading the right target?"
        )
    now = now.astimezone(UTC).replace(microsecond=0)
    proof = ack_proof(key, policy, consumer, replica, now)
    ack = Ack(consumer=consumer, replica=replica, fingerprint=key.fingerprint, at=now, proof=proof)
    store.record_ack(policy, ack)
    return generation
