"""A run's figures, counted from its outcomes: what the Lambda publishes as CloudWatch
metrics (and what an operator alarms on). Names and units follow CloudWatch's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bridge.engine.runner import PolicyOutcome

COUNTS = ("GatesOverdue", "PoliciesFailed", "TargetsBlocked", "KeysExpiring", "KeysWaiting")


@dataclass(frozen=True)
class Tally:
    policy: str | None  # None: the whole run
    counts: dict[str, int]


def tally(outcome: PolicyOutcome) -> Tally:
    status = outcome.status
    counts = dict.fromkeys(COUNTS, 0)
    counts["PoliciesFailed"] = 0 if outcome.ok else 1
    if status is not None:
        counts["GatesOverdue"] = sum(1 for k in status.superseded if k.gate == "overdue")
        counts["TargetsBlocked"] = sum(1 for t in status.targets if t.error)
        counts["KeysExpiring"] = len(status.expiring)
        counts["KeysWaiting"] = len(status.superseded)
    return Tally(outcome.policy, counts)


def total(tallies: Iterable[Tally]) -> Tally:
    counts = dict.fromkeys(COUNTS, 0)
    for one in tallies:
        for name, value in one.counts.items():
            counts[name] += value
    return Tally(None, counts)


__all__ = ["COUNTS", "Tally", "tally", "total"]
