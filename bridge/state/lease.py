"""Fenced leases: the handle a store's ``lease`` yields, and the renewal all backends share.

A backend takes the lease with its own conditional write, wraps it in a ``HeldLease`` given
only its own conditional renew, and holds it for the ``with`` block through ``Leases.hold``:

* a daemon thread renews it every ``ttl / 3`` while the block runs (sooner again after a
  failed attempt) and stops when the block exits, before the backend releases it;
* a renewal that finds another holder (the renew raises ``LeaseLost``), or no successful
  renewal before the lease expires on this process's monotonic clock, marks it lost; a
  lost lease is never renewed again, even if the backend would still allow it;
* ``Leases.fence`` is what a backend's ``save`` asks first: a save of a policy whose lease
  this store object holds raises ``LeaseLost`` (writing nothing) once that lease is lost,
  and the backend makes the write itself conditional on still holding it.

The local deadline counts from the instant a successful acquisition or renewal was *sent*,
so it never ends after the expiry the backend stored; keep the TTL well above clock skew
between runners. A lease whose backend cannot lose it (an OS lock) has no TTL and no thread.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Protocol

from bridge.errors import LeaseLost, StateError
from bridge.logs import event

__all__ = ["HeldLease", "Lease", "Leases", "lease_token"]

log = logging.getLogger("bridge.state")
RETRY_FLOOR_S = 0.01  # the shortest pause between renewal attempts
FOREVER = timedelta.max


class Lease(Protocol):
    """A policy's lease, held for a ``with`` block of ``StateStore.lease``.

    Attributes:
        policy: The policy it guards.
    """

    policy: str

    def ensure(self, margin: timedelta = timedelta(0)) -> None:
        """Make sure the lease is still held, and for at least ``margin`` more.

        Call it before every side effect, with the longest the effect may take.

        Raises:
            LeaseLost: the lease was lost or released, or expires (on this process's
                monotonic clock) in less than ``margin``.
        """
        ...

    @property
    def lost(self) -> bool:
        """Whether the lease is gone: taken over, expired, or released at the block's end."""
        ...

    @property
    def remaining(self) -> timedelta:
        """How long the lease is certainly still held (``timedelta.max``: until released)."""
        ...


def lease_token(owner: str) -> str:
    """The holder's identity for one acquisition: ``owner`` and a random token, so that a
    runner re-acquiring after losing a lease (or two runners given the same owner string)
    is never mistaken for the earlier holder."""
    return f"{owner}#{secrets.token_hex(8)}"


class HeldLease:
    """One acquisition of a policy's lease: a ``Lease``, renewed in the background.

    Args:
        policy: The policy.
        token: The holder's identity for this acquisition (``lease_token``).
        ttl: How long the backend holds the lease past each successful (re)acquisition;
            ``None`` for a lease that cannot expire while the process lives.
        renew: The backend's conditional renewal: extends the lease by ``ttl`` if
            ``token`` still holds it; raises ``LeaseLost`` saying why (another holder has
            it, or it is gone) or any other error if it cannot tell (tried again, sooner,
            until the deadline).
        sent_at: The monotonic instant the acquisition was sent (default: now).
        monotonic: The clock of local deadlines (tests pass a fake one).
    """

    def __init__(
        self,
        policy: str,
        token: str,
        ttl: timedelta | None,
        *,
        renew: Callable[[], None] | None = None,
        sent_at: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.token = token
        self.ttl = ttl
        self._renew = renew
        self._monotonic = monotonic
        start = monotonic() if sent_at is None else sent_at
        self._deadline = start + ttl.total_seconds() if ttl is not None else float("inf")
        self._why: str | None = None  # why it is lost; None while held
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the Lease protocol ------------------------------------------------------------

    def ensure(self, margin: timedelta = timedelta(0)) -> None:
        why = self._lost_because()
        if why is not None:
            raise LeaseLost(f"lease on policy {self.policy!r} is lost: {why}")
        left = self.remaining
        if left < margin:
            raise LeaseLost(
                f"lease on policy {self.policy!r} expires in {left.total_seconds():.3f}s, "
                f"less than the {margin.total_seconds():.3f}s needed"
            )

    @property
    def lost(self) -> bool:
        return self._lost_because() is not None

    @property
    def remaining(self) -> timedelta:
        if self.ttl is None:
            return FOREVER if self._why is None else timedelta(0)
        if self._lost_because() is not None:
            return timedelta(0)
        return timedelta(seconds=max(0.0, self._deadline - self._monotonic()))

    # -- for backends ------------------------------------------------------------------

    def lose(self, why: str) -> None:
        """Mark the lease lost (the first reason given stays); it is never renewed again."""
        with self._lock:
            if self._why is None:
                self._why = why
        self._stop.set()

    def start(self) -> None:
        """Start renewing in a daemon thread, if this lease can expire."""
        if self._renew is None or self.ttl is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._renewing, name=f"lease-renewal {self.policy}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (waiting for an attempt in flight) and mark the lease released."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.lose("released when its block ended")

    # -- inside ------------------------------------------------------------------------

    def _lost_because(self) -> str | None:
        with self._lock:
            if self._why is None and self._monotonic() >= self._deadline:
                self._why = "it expired before a renewal succeeded"
            return self._why

    def _renewing(self) -> None:
        assert self._renew is not None and self.ttl is not None
        interval = self.ttl.total_seconds() / 3
        pause = interval
        while not self._stop.wait(pause):
            sent_at = self._monotonic()
            if self._lost_because() is not None:
                return
            try:
                self._renew()
            except LeaseLost as exc:
                self.lose(str(exc))
                return
            except Exception as exc:  # anything else: try again while there is time
                left = self._deadline - self._monotonic()
                pause = min(interval, max(RETRY_FLOOR_S, left / 3))
                event(
                    log,
                    "lease_renewal_failed",
                    level=logging.WARNING,
                    policy=self.policy,
                    remaining=round(max(0.0, left), 3),
                    error=exc,
                )
                continue
            with self._lock:
                if self._why is None:
                    self._deadline = max(self._deadline, sent_at + self.ttl.total_seconds())
            pause = interval


class Leases:
    """The leases one store object holds, by policy: what its ``save`` fences on."""

    def __init__(self) -> None:
        self._held: dict[str, HeldLease] = {}
        self._lock = threading.Lock()

    def fence(self, policy: str) -> HeldLease | None:
        """The lease this store holds on ``policy``, checked; ``None`` if it holds none.

        Raises:
            LeaseLost: it holds one, and it is lost or expired: the save must write nothing.
        """
        with self._lock:
            held = self._held.get(policy)
        if held is not None:
            held.ensure()
        return held

    @contextlib.contextmanager
    def hold(self, lease: HeldLease, release: Callable[[], None]) -> Iterator[HeldLease]:
        """Hold ``lease`` for the block: registered and renewed; then stopped, unregistered
        and released with ``release``. A failure to release never hides the block's own."""
        with self._lock:
            self._held[lease.policy] = lease
        lease.start()
        try:
            yield lease
        except BaseException:
            self._end(lease)
            with contextlib.suppress(StateError):
                release()
            raise
        self._end(lease)
        release()

    def _end(self, lease: HeldLease) -> None:
        lease.stop()
        with self._lock:
            if self._held.get(lease.policy) is lease:
                del self._held[lease.policy]
