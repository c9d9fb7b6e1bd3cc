"""What the service shows: every policy's status, taken in the background every
``refresh`` seconds (and right after a run or an ack), so a page load or a scrape reads
memory instead of the stores, and a busy page cannot throttle them.

A policy whose status cannot be read shows the error instead; the others are unaffected.
Nothing here holds a key: statuses carry short keys and fingerprints only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bridge.config import BridgeConfig, Policy, TargetConfig
from bridge.engine.observe import observe_policy
from bridge.engine.status import PolicyStatus, policy_status
from bridge.errors import BridgeError
from bridge.logs import event
from bridge.provider import Provider
from bridge.secrets import redact
from bridge.state import StateStore
from bridge.state.model import Event

log = logging.getLogger("bridge.serve")
EVENTS_SHOWN = 8


@dataclass(frozen=True)
class PolicyView:
    name: str
    status: PolicyStatus | None
    events: tuple[Event, ...] = ()  # the newest first
    error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    taken_at: datetime
    seconds: float  # how long taking it took
    policies: tuple[PolicyView, ...]

    @property
    def ok(self) -> bool:
        return all(view.error is None for view in self.policies)


class Watcher:
    """Takes snapshots: on demand (``take``) and in a background thread (``start``)."""

    def __init__(
        self,
        config: BridgeConfig,
        store: StateStore,
        open_target: Callable[[TargetConfig, str], Provider],
        clock: Callable[[], datetime],
        refresh: float,
    ) -> None:
        self.config = config
        self.store = store
        self._open_target = open_target
        self._clock = clock
        self._refresh = refresh
        self._latest: Snapshot | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def latest(self) -> Snapshot | None:
        with self._lock:
            return self._latest

    def take(self) -> Snapshot:
        started = time.monotonic()
        now = self._clock()
        views = tuple(self._view(policy, now) for policy in self.config.policy)
        snapshot = Snapshot(now, time.monotonic() - started, views)
        with self._lock:
            self._latest = snapshot
        return snapshot

    def poke(self) -> None:
        """Take the next snapshot now (after a run or an ack changed something)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="snapshot", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.take()
            except Exception:  # never let the page die with the thread; say why once
                log.exception("taking the status snapshot failed")
            self._wake.wait(self._refresh)
            self._wake.clear()

    def _view(self, policy: Policy, now: datetime) -> PolicyView:
        try:
            record = self.store.load(policy.name)
            providers = {t.target_id: self._open_target(t, policy.name) for t in policy.target}
            acks = self.store.acks(policy.name, policy.consumers)
            instance = self.config.langsmith.instance or "-"
            obs = observe_policy(
                self.config,
                policy,
                record,
                providers,
                acks,
                None,
                now=now,
                instance=instance,
                prove_acks=True,
            )
            status = policy_status(policy, record, obs)
        except BridgeError as exc:
            event(log, "status_failed", level=logging.WARNING, policy=policy.name, error=exc)
            return PolicyView(policy.name, None, error=redact(str(exc)))
        events = tuple(reversed(record.history[-EVENTS_SHOWN:]))
        return PolicyView(policy.name, status, events)


__all__ = ["PolicyView", "Snapshot", "Watcher"]
