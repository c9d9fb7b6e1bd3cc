"""The state store protocol every backend implements (file now; DynamoDB, Vault KV later)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Protocol

from bridge.state.model import Ack, PolicyRecord


class StateStore(Protocol):
    """Policy records with compare-and-swap writes, per-policy leases and consumer acks.

    Acknowledgements live apart from policy records so that a consumer can be allowed to
    write its own ack and nothing else, and so an ack never races a runner's CAS.
    """

    def load(self, policy: str) -> PolicyRecord:
        """The policy's record; an empty one (version 0) when the policy is new."""
        ...

    def save(self, record: PolicyRecord) -> PolicyRecord:
        """Write ``record`` if the stored version still equals ``record.version``.

        Returns:
            The record as stored, with its version incremented.

        Raises:
            StateConflict: someone wrote a newer version first.
        """
        ...

    def policies(self) -> list[str]:
        """Names of the policies that have a record."""
        ...

    def lease(self, policy: str, owner: str, ttl: timedelta) -> AbstractContextManager[None]:
        """Hold the policy's lease for the ``with`` block.

        Raises:
            LeaseHeld: another live runner holds it.
        """
        ...

    def record_ack(self, policy: str, ack: Ack) -> None:
        """Remember ``ack`` as its consumer's latest acknowledgement for ``policy``."""
        ...

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> dict[str, Ack]:
        """The latest acknowledgement of each consumer of ``policy``.

        Args:
            policy: The policy name.
            consumers: Only these consumers. Backends that store one item per consumer
                (so that IAM can confine a consumer to its own) may require it.
        """
        ...

    def close(self) -> None:
        """Release connections and locks."""
        ...
