"""The state store protocol every backend implements (a SQLite file and DynamoDB; the
in-memory ``tests.support.fakes.MemoryState`` for unit tests). ``tests/contract`` holds every
backend to the same behaviour."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

from bridge.state.lease import Lease
from bridge.state.model import Ack, PolicyRecord


class StateStore(Protocol):
    """Policy records with compare-and-swap writes, fenced per-policy leases, consumer acks,
    run outcomes and the deployment's id.

    Acknowledgements and run outcomes live apart from policy records, so that a consumer
    can be allowed to write its own ack and nothing else, and so that neither ever races a
    runner's CAS. A damaged record, ack or run fails with one ``StateError`` naming the
    store and the policy; other policies' data still loads.
    """

    def load(self, policy: str) -> PolicyRecord:
        """The policy's record; an empty one (version 0) when the policy is new.

        The run fields (``last_run_at``, ``last_error``, ``last_success_at``) are the last
        ``record_run`` of the policy, or, if it never had one, what ``save`` last stored
        (states of older versions kept them in the record).

        Raises:
            StateError: the store failed, or the policy's data is damaged (naming both).
        """
        ...

    def save(self, record: PolicyRecord) -> PolicyRecord:
        """Write ``record`` if the stored version still equals ``record.version``.

        If this store object holds the policy's lease (a ``lease`` block is running), the
        write is also conditional on still holding it, in one atomic step; otherwise it is
        a plain compare-and-swap (acks, the AWS native-rotation path).

        Returns:
            The record as stored, with its version incremented.

        Raises:
            StateConflict: someone wrote a newer version first.
            LeaseLost: this store's lease on the policy was lost; nothing was written.
        """
        ...

    def policies(self) -> list[str]:
        """Names of the policies that have a record (saved at least once), sorted."""
        ...

    def lease(self, policy: str, owner: str, ttl: timedelta) -> AbstractContextManager[Lease]:
        """Hold the policy's lease for the ``with`` block, which gets its ``Lease`` handle.

        Each acquisition has its own token (``owner`` plus a random part). While the block
        runs the lease is renewed every ``ttl / 3``, conditionally on still being the
        holder; it is released (only if still ours) when the block ends, however it ends.
        Backends whose leases cannot expire (the file's OS locks) ignore ``ttl``.

        Raises:
            LeaseHeld: another live runner holds it (even one with the same ``owner``).
        """
        ...

    def record_ack(self, policy: str, ack: Ack) -> None:
        """Remember ``ack`` as the latest of its ``(consumer, replica)`` for ``policy``.

        A consumer's replicas heard from longest ago may be forgotten beyond
        ``REPLICAS_KEPT`` of them; the one recorded now never is.

        Raises:
            StateError: the replica name is malformed or the proof too long (``check_ack``).
        """
        ...

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> list[Ack]:
        """The latest ack of every replica of ``consumers`` of ``policy``, ordered by
        consumer then replica (acks of older versions: replica ``default``).

        Args:
            policy: The policy name.
            consumers: Only these consumers. Backends that store one item per consumer
                (so that IAM can confine a consumer to its own) require it.
        """
        ...

    def record_run(self, policy: str, at: datetime, error: str | None) -> None:
        """Remember that a run of ``policy`` ended at ``at``, failing with ``error`` (or not).

        Sets ``last_run_at`` and ``last_error``, and ``last_success_at`` when ``error`` is
        ``None``; never changes the record's version, so it cannot make a CAS fail.
        """
        ...

    def deployment_id(self) -> str:
        """This deployment's id, created on first use and the same for every caller after.

        ``d`` and 12 lowercase hex digits, or ``default`` for a store that held policy
        records before ids existed (what those versions marked their keys with). Always
        matches ``[A-Za-z0-9_.-]+``. Two first callers at once get the same id.
        """
        ...

    def close(self) -> None:
        """Release connections and locks."""
        ...
