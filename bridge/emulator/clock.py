"""The emulator's clock: real time plus an offset that tests can move.

Key expiry, ``last_used_at`` and the rate-limit windows all read this clock, so a test
can jump a day ahead instead of sleeping through it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def isoformat(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix; microseconds only when they are not zero.

    ``2099-12-31T00:00:00Z`` in therefore comes back out as the very same string.
    """
    return utc(value).isoformat().replace("+00:00", "Z")


class EmulatorClock:
    """A thread-safe clock that ticks with real time but can be moved.

    Args:
        start: The instant ``now()`` returns at construction; defaults to real time.
        frozen: If true, time stands still between ``advance``/``set`` calls, which makes
            timestamps in responses exactly predictable.
    """

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._frozen = frozen
        real = datetime.now(UTC)
        self._offset = (utc(start) - real) if start is not None else timedelta(0)
        self._frozen_at = utc(start) if start is not None else real

    def now(self) -> datetime:
        """The emulator's current instant, an aware UTC datetime."""
        with self._lock:
            if self._frozen:
                return self._frozen_at
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward (or back, with a negative delta); returns the new now.

        Args:
            delta: A ``timedelta`` or a number of seconds.
        """
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._offset += step
            self._frozen_at += step
        return self.now()

    def set(self, instant: datetime) -> datetime:
        """Jump to ``instant`` (naive means UTC); returns it as the new now."""
        target = utc(instant)
        with self._lock:
            self._offset = target - datetime.now(UTC)
            self._frozen_at = target
        return self.now()

    def __repr__(self) -> str:
        return f"EmulatorClock(now={isoformat(self.now())!r}, frozen={self._frozen})"
