"""Counts of the LangSmith API calls this process made, by operation and answer, for the
service's ``/metrics`` and the Lambda's metrics. In memory only; nothing here is secret
(operations are names such as ``list_service_keys``; answers are HTTP statuses, or ``-``
when no response came)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class CallCount:
    operation: str
    status: str
    calls: int
    seconds: float


class CallStats:
    """Thread-safe totals since the process started (or the last ``reset``)."""

    def __init__(self) -> None:
        self._calls: Counter[tuple[str, str]] = Counter()
        self._seconds: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def record(self, operation: str, status: str, seconds: float) -> None:
        with self._lock:
            self._calls[operation, status] += 1
            key = (operation, status)
            self._seconds[key] = self._seconds.get(key, 0.0) + seconds

    def counts(self) -> list[CallCount]:
        with self._lock:
            return [
                CallCount(op, status, calls, self._seconds[op, status])
                for (op, status), calls in sorted(self._calls.items())
            ]

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._seconds.clear()


CALLS = CallStats()

__all__ = ["CALLS", "CallCount", "CallStats"]
