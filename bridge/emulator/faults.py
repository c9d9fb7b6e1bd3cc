"""Test switches: added latency, injected 5xx/429 answers, and the per-key rate limit.

Faults are drawn from one seeded ``random.Random``, one draw per request, so the same
seed and the same sequence of requests give the same sequence of failures.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from bridge.emulator.clock import EmulatorClock

Outcome = Literal["fault", "throttle"]


@dataclass(frozen=True)
class FaultSwitches:
    """What the emulator does to a request before it reaches a route.

    Attributes:
        latency_ms: Milliseconds slept before answering each request.
        answer_delay_ms: Milliseconds slept after a request was carried out, before its
            answer goes out: the window in which a client that dies has lost the answer to
            work done (a minted key, say).
        fault_rate: Fraction of requests answered with ``fault_status``.
        fault_status: The 5xx status of an injected fault.
        throttle_rate: Fraction of requests answered with 429 and ``Retry-After``.
        retry_after_s: The ``Retry-After`` seconds sent with an injected 429.
    """

    latency_ms: float = 0
    fault_rate: float = 0.0
    fault_status: int = 503
    throttle_rate: float = 0.0
    retry_after_s: int = 1
    answer_delay_ms: float = 0

    def __post_init__(self) -> None:
        if self.latency_ms < 0 or self.answer_delay_ms < 0:
            raise ValueError("latency_ms and answer_delay_ms must be >= 0")
        for name in ("fault_rate", "throttle_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.fault_rate + self.throttle_rate > 1.0:
            raise ValueError("fault_rate + throttle_rate must not exceed 1")
        if not 500 <= self.fault_status <= 599:
            raise ValueError("fault_status must be a 5xx status")
        if self.retry_after_s < 0:
            raise ValueError("retry_after_s must be >= 0")

    def as_dict(self) -> dict[str, Any]:
        """The switches as JSON-ready data."""
        return asdict(self)


class FaultInjector:
    """Holds the switches and decides, per request, whether to inject a failure.

    Args:
        switches: The initial switches.
        seed: Seed of the random draws; ``None`` seeds from the OS.
    """

    def __init__(self, switches: FaultSwitches, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._initial = switches
        self._initial_seed = seed
        self._switches = switches
        self._rng = random.Random(seed)  # noqa: S311 - test fault injection, not security

    @property
    def switches(self) -> FaultSwitches:
        """The switches in force now."""
        with self._lock:
            return self._switches

    def configure(self, seed: int | None = None, **changes: Any) -> FaultSwitches:
        """Change some switches (validated together) and optionally reseed the draws.

        Raises:
            ValueError: A value is out of range; nothing is changed then.
            TypeError: An unknown switch name.
        """
        with self._lock:
            self._switches = replace(self._switches, **changes)
            if seed is not None:
                self._rng.seed(seed)
            return self._switches

    def reset(self) -> None:
        """Back to the constructor's switches and seed."""
        with self._lock:
            self._switches = self._initial
            self._rng = random.Random(self._initial_seed)  # noqa: S311

    def draw(self) -> Outcome | None:
        """One draw: ``"fault"``, ``"throttle"`` or ``None`` (serve normally)."""
        with self._lock:
            switches = self._switches
            if switches.fault_rate == 0 and switches.throttle_rate == 0:
                return None
            roll = self._rng.random()
        if roll < switches.fault_rate:
            return "fault"
        if roll < switches.fault_rate + switches.throttle_rate:
            return "throttle"
        return None


class RateLimiter:
    """A fixed-window request counter per identity (hashed API key, or client IP).

    The window follows the emulator clock, so advancing the clock opens a new window.

    Args:
        limit: Requests allowed per window; 0 or less disables the limit.
        window_s: Window length in seconds.
        clock: The emulator clock.
    """

    def __init__(self, limit: int, window_s: float, clock: EmulatorClock) -> None:
        if window_s <= 0:
            raise ValueError("rate_window_s must be > 0")
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, identity: str) -> int | None:
        """Count one request; returns ``Retry-After`` seconds if it is over the limit."""
        if self._limit <= 0:
            return None
        now = self._clock.now().timestamp()
        with self._lock:
            start, count = self._windows.get(identity, (now, 0))
            if not start <= now < start + self._window_s:
                start, count = now, 0
            if count >= self._limit:
                return max(1, math.ceil(start + self._window_s - now))
            self._windows[identity] = (start, count + 1)
            return None

    def reset(self) -> None:
        """Forget every window."""
        with self._lock:
            self._windows.clear()
