"""The protocol every secret store adapter implements.

An adapter translates (SDK call, payload shape, error mapping) and decides nothing: retries,
ordering, dry runs and logging belong to the engine. Adapters live in the top-level
``providers`` package, one module per store, each importing only its own SDK.
"""

from __future__ import annotations

from typing import Protocol

from bridge.payload import Payload, Stored


class Provider(Protocol):
    """One target: a place a policy's payload is written."""

    name: str
    """The provider's registered name (``file``, ``aws``, ...)."""

    reference: str
    """The target's address for messages (a path, a secret id); never its content."""

    def read(self) -> Stored | None:
        """What consumers read now, or ``None`` when the target does not exist.

        Raises:
            ProviderError: the store failed or the content is unreadable.
        """
        ...

    def publish(self, payload: Payload) -> str:
        """Make ``payload`` what consumers read, keeping the previous one where the store
        keeps history. Idempotent: publishing what is already there writes nothing.

        Returns:
            The store's version reference for what was written.

        Raises:
            OwnershipError: the target exists and the bridge does not own it.
            ProviderError: the write failed.
        """
        ...

    def retire(self, version: str) -> None:
        """Drop a superseded version whose key was revoked (a no-op where none is kept)."""
        ...

    def validate(self) -> None:
        """Check that the target can be published to, without writing anything.

        Raises:
            ProviderError: it cannot; the message says why.
        """
        ...

    def close(self) -> None:
        """Release clients and connections."""
        ...
