"""The reconcile loop of ``serve --every``: one run, then a wait, until stopped; each run
counted in the service's metrics. A failing run is logged and counted, never fatal: the
next one tries again (as the next CronJob would)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bridge.engine import Engine
from bridge.logs import event
from bridge.serve.metrics import RunMetrics

log = logging.getLogger("bridge.serve")


class Loop:
    def __init__(
        self, engine: Engine, every: float, metrics: RunMetrics, after: Callable[[], None]
    ) -> None:
        self._engine = engine
        self._every = every
        self._metrics = metrics
        self._after = after  # e.g. take a fresh snapshot
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def run_once(self) -> None:
        started = time.monotonic()
        engine = self._engine
        try:
            report = engine.run(engine.select())
        except Exception:  # a bug: log it, count it, keep serving
            log.exception("the reconcile run failed unexpectedly")
            self._metrics.runs.labels("error").inc()
            return
        finally:
            self._metrics.duration.observe(time.monotonic() - started)
        for outcome in report.outcomes:
            if not outcome.ok:
                self._metrics.policy_failures.labels(outcome.policy).inc()
        self._metrics.runs.labels("ok" if report.ok else "failed").inc()
        event(
            log,
            "run_finished",
            level=logging.INFO if report.ok else logging.WARNING,
            policies=len(report.outcomes),
            failed=sum(1 for o in report.outcomes if not o.ok),
        )
        self._after()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self._every)


__all__ = ["Loop"]
