"""Several runners started together on one state backend, and what their reports say: the
shared half of the concurrency tests of every backend (``test_*_concurrency.py``)."""

from __future__ import annotations

import threading
from collections import Counter

from bridge.config import BridgeConfig
from bridge.emulator import Emulator
from bridge.engine import RunReport
from bridge.wiring import build_engine


def run_together(config: BridgeConfig, emulator: Emulator, runners: int) -> list[RunReport]:
    """``runners`` engines, each built apart, released at once on every policy."""
    barrier = threading.Barrier(runners)
    reports: list[RunReport] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def runner() -> None:
        try:
            with build_engine(config, clock=emulator.clock.now) as engine:
                policies = engine.select()
                barrier.wait(timeout=30)
                report = engine.run(policies)
            with lock:
                reports.append(report)
        except BaseException as exc:  # reported below, with the others
            with lock:
                errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=runner, name=f"runner-{i}") for i in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a runner did not finish"
    assert not errors, errors
    return reports


def failures(reports: list[RunReport]) -> list[str]:
    """Everything that went wrong but a policy skipped because another runner held it."""
    found = [f"listing: {r.listing_error}" for r in reports if r.listing_error]
    for report in reports:
        for outcome in report.outcomes:
            if outcome.error:
                found.append(f"{outcome.policy}: {outcome.error}")
            if outcome.skipped and "is being reconciled by" not in outcome.skipped:
                found.append(f"{outcome.policy}: skipped for another reason: {outcome.skipped}")
    return found


def steps(reports: list[RunReport], kind: type) -> Counter[str]:
    """Policy -> how many runners carried out a step of ``kind``."""
    return Counter(
        o.policy for r in reports for o in r.outcomes for step in o.done if isinstance(step, kind)
    )


def minted(emulator: Emulator) -> Counter[str]:
    """Policy -> bridge keys LangSmith holds for it, deleted ones included."""
    return Counter(
        k["description"].split(" policy=", 1)[1].split()[0]
        for k in emulator.state.inspect_keys()
        if k["description"].startswith("langsmith-bridge:")
    )


def skips(reports: list[RunReport]) -> int:
    return sum(1 for r in reports for o in r.outcomes if o.skipped)
