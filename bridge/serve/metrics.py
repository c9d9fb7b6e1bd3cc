"""``/metrics``: the snapshot and the service's own counters in Prometheus' text format.

Gauges come from the latest snapshot at scrape time (a custom collector: no stale series
once a policy or a key is gone); counters (runs, their failures, LangSmith calls) are the
process's totals. Labels are policy names, store names, operations and HTTP statuses,
never a key. Names follow Prometheus' conventions: ``_seconds``, ``_total``, a
``langsmith_bridge_`` prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.langsmith.stats import CALLS
from bridge.serve.snapshot import Snapshot

PREFIX = "langsmith_bridge"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
THROTTLED = "429"


class RunMetrics:
    """What the reconcile loop counts: runs by outcome, their duration, failures."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            f"{PREFIX}_runs", "Reconcile runs, by outcome.", ["outcome"], registry=registry
        )
        self.duration = Histogram(
            f"{PREFIX}_run_duration_seconds",
            "How long a reconcile run took.",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            registry=registry,
        )
        self.policy_failures = Counter(
            f"{PREFIX}_policy_failures",
            "Policy runs that failed, by policy.",
            ["policy"],
            registry=registry,
        )


class SnapshotCollector(Collector):
    """Gauges of the latest snapshot, read when Prometheus scrapes."""

    def __init__(self, latest: Callable[[], Snapshot | None], clock: Callable[[], datetime]):
        self._latest = latest
        self._clock = clock

    def collect(self) -> Iterator[Any]:
        snapshot = self._latest()
        now = self._clock()
        g = _Gauges()
        if snapshot is not None:
            g.snapshot_age.add_metric([], (now - snapshot.taken_at).total_seconds())
            for view in snapshot.policies:
                g.readable.add_metric([view.name], 0 if view.error else 1)
                if view.status is not None:
                    g.add(view.name, view.status, now)
        yield from g.families()
        calls = CounterMetricFamily(
            f"{PREFIX}_langsmith_calls",
            "LangSmith API calls, by operation and answer.",
            labels=["operation", "status"],
        )
        throttled = CounterMetricFamily(
            f"{PREFIX}_langsmith_throttled",
            "LangSmith API calls answered 429, by operation.",
            labels=["operation"],
        )
        for count in CALLS.counts():
            calls.add_metric([count.operation, count.status], count.calls)
            if count.status == THROTTLED:
                throttled.add_metric([count.operation], count.calls)
        yield calls
        yield throttled


class _Gauges:
    def __init__(self) -> None:
        def gauge(name: str, text: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=list(labels))

        self.snapshot_age = gauge("snapshot_age_seconds", "Age of the status snapshot.")
        self.readable = gauge(
            "policy_readable", "1 if the policy's status could be read.", "policy"
        )
        self.key_age = gauge("key_age_seconds", "Age of the current key.", "policy")
        self.expiry = gauge(
            "key_expiry_seconds", "Seconds until the current key expires.", "policy"
        )
        self.superseded = gauge("superseded_keys", "Superseded keys still alive.", "policy")
        self.waiting = gauge(
            "superseded_wait_seconds", "How long the oldest superseded key has waited.", "policy"
        )
        self.overdue = gauge("gates_overdue", "Superseded keys whose gate is overdue.", "policy")
        self.blocked = gauge(
            "targets_blocked", "Targets that cannot be read or written.", "policy", "store"
        )
        self.stale = gauge("targets_stale", "Targets not serving the current key.", "policy")
        self.expiring = gauge("keys_expiring", "Keys expiring before the next run.", "policy")
        self.failed = gauge("last_run_failed", "1 if the policy's last run failed.", "policy")
        self.success = gauge(
            "last_success_timestamp_seconds", "When the policy's last run succeeded.", "policy"
        )
        self.next_rotation = gauge(
            "next_rotation_seconds", "Seconds until the next scheduled rotation.", "policy"
        )

    def add(self, name: str, status: Any, now: datetime) -> None:
        current = status.current
        if current is not None and current.created_at is not None:
            self.key_age.add_metric([name], (now - current.created_at).total_seconds())
        if current is not None and current.expires_at is not None:
            self.expiry.add_metric([name], (current.expires_at - now).total_seconds())
        self.superseded.add_metric([name], len(status.superseded))
        waits = [
            (now - s.superseded_at).total_seconds() for s in status.superseded if s.superseded_at
        ]
        self.waiting.add_metric([name], max(waits, default=0.0))
        self.overdue.add_metric([name], sum(1 for s in status.superseded if s.gate == "overdue"))
        stores = sorted({t.provider for t in status.targets})
        for store in stores:
            blocked = sum(1 for t in status.targets if t.provider == store and t.error)
            self.blocked.add_metric([name, store], blocked)
        self.stale.add_metric([name], sum(1 for t in status.targets if not t.in_sync))
        self.expiring.add_metric([name], len(status.expiring))
        self.failed.add_metric([name], 1 if status.last_error else 0)
        if status.last_success_at is not None:
            self.success.add_metric([name], status.last_success_at.timestamp())
        if status.next_rotation_at is not None:
            self.next_rotation.add_metric([name], (status.next_rotation_at - now).total_seconds())

    def families(self) -> list[GaugeMetricFamily]:
        return [value for value in vars(self).values() if isinstance(value, GaugeMetricFamily)]


def registry_for(
    latest: Callable[[], Snapshot | None], clock: Callable[[], datetime]
) -> tuple[CollectorRegistry, RunMetrics]:
    """A registry of its own (not the global one: tests build several apps)."""
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(latest, clock))
    return registry, RunMetrics(registry)


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


__all__ = ["CONTENT_TYPE", "RunMetrics", "exposition", "registry_for"]
