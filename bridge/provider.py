"""The protocols every secret store implements: a ``Connection`` per store per process, and
a ``Provider`` per target it opens.

An adapter translates (SDK call, payload shape, error mapping) and decides nothing: retries,
ordering, dry runs and logging belong to the engine. There is one exception, and it is the
adapter's because only it can see the store: whether a target is the policy's to write
(``Observed.ownership``). The planner acts on that answer and has no ownership rule of its
own. Adapters live in the top-level ``providers`` package, one subpackage per store, each
importing only its own SDK; only ``bridge.wiring`` imports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from bridge.config.targets import TargetConfig
from bridge.payload import Payload, Stored

Ownership = Literal["ours", "adoptable", "foreign", "absent"]
"""What a read sees: the policy's own target; one the config allows it to take over
(``adopt = true``); one it must not touch; or nothing there yet."""


@dataclass(frozen=True)
class Observed:
    """A target as one read saw it. Never holds the key itself, only its fingerprint.

    Attributes:
        ownership: Whether the policy may write it (see ``Ownership``).
        fingerprint: Of the key consumers read there now; ``None`` when absent or empty.
        version: The store's reference of what consumers read (an AWS version id, a file's
            identity); ``None`` when absent.
        owner: The policy the store's marker names, when it names one.
        detail: Why the target is foreign, for the operator.
        content_read: Whether the value itself was read, rather than known from metadata
            (the store showed the version recorded for this target is still current).
        settings_digest: ``bridge.payload.settings_digest`` of everything the value holds
            besides the key and the marker, when the value was read.
    """

    ownership: Ownership
    fingerprint: str | None = None
    version: str | None = None
    owner: str | None = None
    detail: str | None = None
    content_read: bool = True
    settings_digest: str | None = None

    @property
    def exists(self) -> bool:
        return self.ownership != "absent"


ABSENT = Observed("absent", content_read=False)

Known = Mapping[str, str]
"""Versions the state recorded for one target, each with the fingerprint it holds."""


class Provider(Protocol):
    """One target: a place a policy's payload is written."""

    name: str
    """The store's registered name (``file``, ``aws``, ...)."""

    reference: str
    """The target's address for messages (a path, a secret id); never its content."""

    @property
    def staging(self) -> Staging | None:
        """The store's own pending/current pointers, where it has them (AWS); else ``None``."""
        ...

    def observe(self, known: Known) -> Observed:
        """What consumers read now and whether it is the policy's to write.

        Args:
            known: Versions the state recorded for this target. When the store's metadata
                shows one of them is current, the adapter answers from it without reading
                the value (a version's content never changes, so no drift is possible).

        Raises:
            ProviderError: the store failed or the content is unreadable.
        """
        ...

    def read(self) -> Stored | None:
        """The value consumers read now, or ``None`` when the target does not exist.

        Raises:
            ProviderError: the store failed or the content is unreadable.
        """
        ...

    def publish(self, payload: Payload) -> str:
        """Make ``payload`` what consumers read, read it back and compare, keeping the
        previous one where the store keeps history. Idempotent: publishing what is already
        there writes nothing.

        Returns:
            The store's version reference for what consumers now read.

        Raises:
            OwnershipError: the target exists and the policy may not write it.
            ProviderConflict: the read-back does not hold ``payload``, or the store changed
                under the write.
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


class Staging(Protocol):
    """A store with its own pending and current pointers, which an external rotation
    protocol drives step by step (AWS Secrets Manager's ``AWSPENDING``/``AWSCURRENT``)."""

    def stage_pending(self, payload: Payload, token: str | None = None) -> str:
        """Write ``payload`` as the pending version under ``token`` (default: derived from
        ``payload.rotation_id``) and read it back; returns the version."""
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


class Targets(Protocol):
    """Opens targets on the store connections of one process (``bridge.wiring`` owns it)."""

    def open(self, target: TargetConfig, policy: str) -> Provider:
        """The adapter for ``target`` acting for ``policy``."""
        ...

    def close(self) -> None:
        """Close every store connection opened."""
        ...
