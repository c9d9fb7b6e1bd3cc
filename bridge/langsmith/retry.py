"""How long to wait between attempts, and how to read the server's ``Retry-After`` hint.

Backoff is exponential with full jitter: before retry ``n`` (after the ``n``-th failed
attempt) the client sleeps ``rand() * min(max_delay, base_delay * 2**(n - 1))``. A server
hint (``Retry-After-Ms``, else ``Retry-After`` in seconds or as an HTTP-date, as the Go
SDK reads them) replaces the jittered backoff. A hint longer than ``max_retry_after`` is
not worth waiting for inside one call: the client raises at once and leaves the decision
to its caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for the client's own retries of retryable failures.

    Attributes:
        max_attempts: Total tries per call, the first included (1 disables retries).
        base_delay: Backoff ceiling in seconds before the first retry; doubles each retry.
        max_delay: Upper bound of the backoff ceiling, in seconds.
        max_retry_after: The longest server-requested wait the client will sleep through.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name in ("base_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")

    def delay(self, attempt: int, retry_after: float | None, rand: Callable[[], float]) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based).

        Args:
            attempt: How many attempts have failed so far (1 after the first).
            retry_after: The server's hint in seconds, or ``None``.
            rand: A uniform random source on ``[0, 1)``, e.g. ``random.random``.

        Returns:
            The server's hint (clamped to ``[0, max_retry_after]``) when there is one,
            else a full-jitter exponential backoff.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        exponent = max(attempt, 1) - 1
        ceiling = self.max_delay if exponent >= 64 else self.base_delay * 2.0**exponent
        return rand() * min(self.max_delay, ceiling)

    def waits_too_long(self, retry_after: float | None) -> bool:
        """Whether the server asked for a longer wait than this policy will sleep."""
        return retry_after is not None and retry_after > self.max_retry_after


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Read the server's wait hint in seconds from response headers.

    ``Retry-After-Ms`` wins over ``Retry-After``; the latter may be delta-seconds or an
    HTTP-date (resolved against ``now``). Negative or past values become ``0.0``;
    unparseable values are ignored.

    Args:
        headers: Response headers (a case-insensitive mapping such as ``httpx.Headers``).
        now: The current POSIX time, for HTTP-dates.

    Returns:
        The hint in seconds, or ``None`` when there is no usable one.
    """
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return max(millis / 1000.0, 0.0)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return max(seconds, 0.0)
    from email.utils import parsedate_to_datetime  # rare path; email costs ms to import

    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now, 0.0)


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None
