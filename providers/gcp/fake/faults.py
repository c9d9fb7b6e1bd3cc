"""Switches that make the fake Secret Manager fail or slow down, set from a test.

Methods are named as in the API (``"AccessSecretVersion"``); ``None`` means every method.
Codes are gRPC status code names (``"PERMISSION_DENIED"``, ``"RESOURCE_EXHAUSTED"``,
``"UNAVAILABLE"``...).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """What one failing call answers."""

    code: str
    message: str


@dataclass
class _Queued:
    fault: Fault
    remaining: int


class Faults:
    """Queued failures, standing IAM denials and latency, consulted before every call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[str | None, list[_Queued]] = {}
        self._denied: list[tuple[str | None, str]] = []
        self._latency: dict[str | None, float] = {}
        self.calls: Counter[str] = Counter()

    def fail_next(self, method: str | None, code: str, times: int = 1, message: str = "") -> None:
        """Make the next ``times`` calls of ``method`` fail with ``code``."""
        fault = Fault(code, message or f"Injected {code}.")
        with self._lock:
            self._queued.setdefault(method, []).append(_Queued(fault, times))

    def deny(self, method: str | None = None, resource_prefix: str = "") -> None:
        """Answer PERMISSION_DENIED to ``method`` on resources under ``resource_prefix``
        until ``reset``, as a missing IAM binding would."""
        with self._lock:
            self._denied.append((method, resource_prefix))

    def set_latency(self, seconds: float, method: str | None = None) -> None:
        """Delay every call of ``method`` (or of every method) by ``seconds``."""
        with self._lock:
            self._latency[method] = seconds

    def reset(self) -> None:
        """Forget every switch (the call counts stay)."""
        with self._lock:
            self._queued.clear()
            self._denied.clear()
            self._latency.clear()

    def before(self, method: str, resource: str) -> tuple[float, Fault | None]:
        """Count the call; return its delay and the fault it must answer, if any."""
        with self._lock:
            self.calls[method] += 1
            delay = self._latency.get(method, self._latency.get(None, 0.0))
            for scope, prefix in self._denied:
                if scope in (None, method) and resource.startswith(prefix):
                    return delay, Fault(
                        "PERMISSION_DENIED",
                        f"Permission denied on resource {resource!r} (or it may not exist).",
                    )
            for scope in (method, None):
                queue = self._queued.get(scope, [])
                if queue:
                    head = queue[0]
                    head.remaining -= 1
                    if head.remaining <= 0:
                        queue.pop(0)
                    return delay, head.fault
        return delay, None
