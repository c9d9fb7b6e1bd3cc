"""Text output for people: plans, run reports and the status table. Never a secret: the
inputs hold only ids, short keys and fingerprints."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bridge.engine import Plan, RunReport
from bridge.engine.status import PolicyStatus, SupersededKey, TargetStatus
from bridge.state import PolicyRecord


def plan_text(plans: list[Plan]) -> str:
    lines = []
    for plan in plans:
        if plan.blocked:
            lines.append(f"{plan.policy}: BLOCKED: {plan.blocked}")
        elif not plan.steps:
            lines.append(f"{plan.policy}: nothing to do")
        else:
            lines.append(f"{plan.policy}:")
            lines += [f"  - {step.describe()}" for step in plan.steps]
        lines += [f"  note: {note}" for note in plan.notes]
    return "\n".join(lines)


def report_text(report: RunReport) -> str:
    if report.dry_run:
        return plan_text([o.plan for o in report.outcomes if o.plan])
    lines = []
    for outcome in report.outcomes:
        if outcome.skipped:
            lines.append(f"{outcome.policy}: skipped: {outcome.skipped}")
            continue
        status = "FAILED" if outcome.error else ("done" if outcome.done else "nothing to do")
        lines.append(f"{outcome.policy}: {status}")
        lines += [f"  + {step.describe()}" for step in outcome.done]
        if outcome.error:
            lines.append(f"  ! {outcome.error}")
        if outcome.plan:
            lines += [f"  note: {note}" for note in outcome.plan.notes]
    return "\n".join(lines)


def status_json(status: PolicyStatus) -> dict[str, Any]:
    """The ``status --json`` entry of one policy: the model, instants as ISO 8601 (``Z``)."""
    data: dict[str, Any] = _jsonable(dataclasses.asdict(status))
    return data


def status_table(policies: Sequence[PolicyStatus], now: datetime) -> str:
    header = ("POLICY", "CURRENT", "AGE", "NEXT ROTATION", "SUPERSEDED", "TARGETS")
    rows = [header]
    details = []
    for entry in policies:
        current = entry.current
        rows.append(
            (
                entry.name,
                (current.short_key or "-") if current else "-",
                _age(current.created_at, now) if current else "-",
                f"{entry.next_rotation_at:%Y-%m-%d %H:%M}" if entry.next_rotation_at else "-",
                ", ".join(_superseded(s) for s in entry.superseded) or "-",
                " ".join(_target(t) for t in entry.targets),
            )
        )
        details += [
            f"{entry.name}: pending rotation {p.rotation_id} ({p.phase})" for p in entry.pending
        ]
        details += [
            f"{entry.name}: key {short} EXPIRES before the next run" for short in entry.expiring
        ]
        if entry.last_error:
            details.append(f"{entry.name}: last error: {entry.last_error}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines + details)


def history_text(record: PolicyRecord) -> str:
    """``history POLICY``: what was done, when, why and by whom, oldest first."""
    lines = [
        f"{record.policy}: last run {_instant(record.last_run_at)}, last success "
        f"{_instant(record.last_success_at)}"
    ]
    if record.last_error:
        lines.append(f"  last error: {record.last_error}")
    if not record.history:
        lines.append("  no history yet")
    for item in record.history:
        key = f" {item.short_key}" if item.short_key else ""
        lines.append(
            f"  {_instant(item.at)}  {item.action}{key} (rotation {item.rotation_id or '-'}) "
            f"by {item.actor}: {item.reason}"
        )
    return "\n".join(lines)


def _instant(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}Z" if value else "never"


def _superseded(entry: SupersededKey) -> str:
    waiting = "+".join(entry.waiting_for)
    state: str = entry.gate
    if entry.gate == "closed" and waiting:
        state = f"waiting for {waiting}"
    elif entry.gate == "overdue":
        state = f"OVERDUE, waiting for {waiting}" if waiting else "OVERDUE"
    return f"{entry.short_key} ({state})"


def _target(entry: TargetStatus) -> str:
    mark = "ok" if entry.in_sync else ("ERROR" if entry.error else "stale")
    return f"{entry.provider}:{mark}"


def _age(created_at: datetime | None, now: datetime) -> str:
    if not created_at:
        return "-"
    seconds = int((now - created_at).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value
