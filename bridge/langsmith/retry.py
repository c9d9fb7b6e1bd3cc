"""How long to wait between attempts, and how to read the server's ``Retry-After`` hint.

Backoff is exponential with full jitter: before retry ``n`` (after the ``n``-th failed
attempt) the client sleeps ``rand() * min(max_delay, base_delay * 2**(n - 1))``. A server
hint (``Retry-After-Ms``, else ``Retry-After`` in seconds or as an HTTP-date, as the Go
SDK reads them) replaces the jittered backoff. A hint longer than ``max_retry_after`` is
not worth waiting for inside one call: the client raises at once and leaves the decision
to its caller.

A 429 *without* a hint is different from a server error. LangSmith counts requests per key
in 10-second windows (1000 per window by default), so a refusal means this window is spent
and a retry within it is refused too: sleeping a jittered fraction of a second, as for a
5xx, would only burn the remaining attempts. The client waits out one ``rate_window``
instead, plus the usual jittered backoff so that runners refused together do not all come
back at the same instant. (The Python SDK waits 30 s doubling per attempt when the header
is missing; one window is enough to be inside a fresh one, and keeps a run moving.)

Every wait counts against ``max_elapsed``, the call's total deadline: a retry whose wait
would end past it is not made, and the last failure is raised instead. That is what keeps
10-second waits from stretching one call over minutes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bridge.langsmith.models import parse_http_date


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for the client's own retries of retryable failures.

    Attributes:
        max_attempts: Total tries per call, the first included (1 disables retries).
        base_delay: Backoff ceiling in seconds before the first retry; doubles each retry.
        max_delay: Upper bound of the backoff ceiling, in seconds.
        max_retry_after: The longest server-requested wait the client will sleep through.
        max_elapsed: The total deadline of one call in seconds: time spent in attempts
            plus every wait. A retry whose wait would end past it is not made.
        rate_window: LangSmith's rate-limit window in seconds; a 429 without a hint
            waits this long before the jittered backoff.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0
    max_elapsed: float = 120.0
    rate_window: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name in ("base_delay", "max_delay", "max_retry_after", "max_elapsed", "rate_window"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")

    def delay(
        self,
        attempt: int,
        retry_after: float | None,
        rand: Callable[[], float],
        *,
        rate_limited: bool = False,
    ) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based).

        Args:
            attempt: How many attempts have failed so far (1 after the first).
            retry_after: The server's hint in seconds, or ``None``.
            rand: A uniform random source on ``[0, 1)``, e.g. ``random.random``.
            rate_limited: The failure was a 429 (only matters without a hint).

        Returns:
            The server's hint (clamped to ``[0, max_retry_after]``) when there is one;
            else, after a 429, ``rate_window`` plus a full-jitter exponential backoff;
            else the backoff alone.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        exponent = max(attempt, 1) - 1
        ceiling = self.max_delay if exponent >= 64 else self.base_delay * 2.0**exponent
        backoff = rand() * min(self.max_delay, ceiling)
        return self.rate_window + backoff if rate_limited else backoff

    def waits_too_long(self, retry_after: float | None) -> bool:
        """Whether the server asked for a longer wait than this policy will sleep."""
        return retry_after is not None and retry_after > self.max_retry_after

    def past_deadline(self, spent: float, wait: float) -> bool:
        """Whether waiting ``wait`` more seconds, after ``spent``, ends past ``max_elapsed``."""
        return spent + wait > self.max_elapsed


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
    when = parse_http_date(raw)
    return None if when is None else max(when.timestamp() - now, 0.0)


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None
