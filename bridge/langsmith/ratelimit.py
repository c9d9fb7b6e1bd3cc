"""Client-side pacing under LangSmith's per-key rate limit.

LangSmith counts requests per API key (1000 per 10 s by default) and answers 429 past it.
A run over many policies would hit that wall and then back off; pacing below it keeps a
large run smooth instead. Each key has its own window, as on the server: the admin key's
calls and a new key's verification calls are counted apart.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """A sliding-window limiter: at most ``requests`` per ``window`` seconds per key.

    Args:
        requests: Requests allowed per window, per key.
        window: The window in seconds.
        clock: Monotonic seconds (injectable for tests).
        sleep: Called with the seconds to wait (injectable for tests).
    """

    def __init__(
        self,
        requests: int,
        window: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests < 1 or window <= 0:
            raise ValueError("requests must be >= 1 and window > 0")
        self.requests = requests
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}

    def acquire(self, key: str) -> float:
        """Wait until one more request for ``key`` fits the window; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                sent = self._sent.setdefault(key, deque())
                while sent and sent[0] <= now - self.window:
                    sent.popleft()
                if len(sent) < self.requests:
                    sent.append(now)
                    return waited
                pause = sent[0] + self.window - now
            self._sleep(pause)
            waited += pause
