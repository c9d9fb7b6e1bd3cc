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

    def discard(self, rotation_id: str) -> None:
        """Undo what an abandoned rotation left staged but never made current (AWS: its
        ``AWSPENDING``). Never touches what consumers read; a no-op where nothing is staged.
        """
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


class StagedProvider(Provider, Protocol):
    """A store with its own pending and current pointers, which an external rotation
    protocol drives step by step (AWS Secrets Manager's ``AWSPENDING``/``AWSCURRENT``)."""

    def stage_pending(self, payload: Payload) -> str:
        """Write ``payload`` as the pending version, keyed by ``payload.rotation_id``."""
        ...

    def read_version(self, version: str) -> Stored | None:
        """The payload of one version, or ``None`` if there is no such version."""
        ...

    def promote(self, version: str) -> None:
        """Make ``version`` current; the previous current one stays as the previous."""
        ...

    def current_version(self) -> str | None:
        """The id of the current version, or ``None`` when there is none."""
        ...
