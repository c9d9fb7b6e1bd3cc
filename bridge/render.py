"""Text output for people: plans, run reports and the status table. Never a secret: the
inputs hold only ids, short keys and fingerprints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.engine import Plan, RunReport


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
        lines += [f"  + {line}" for line in outcome.done]
        if outcome.error:
            lines.append(f"  ! {outcome.error}")
        if outcome.plan:
            lines += [f"  note: {note}" for note in outcome.plan.notes]
    return "\n".join(lines)


def status_table(policies: list[dict[str, Any]], now: datetime) -> str:
    header = ("POLICY", "CURRENT", "AGE", "NEXT ROTATION", "SUPERSEDED", "TARGETS")
    rows = [header]
    details = []
    for entry in policies:
        current = entry["current"]
        rows.append(
            (
                entry["name"],
                current["short_key"] if current else "-",
                _age(current["created_at"], now) if current else "-",
                (entry["next_rotation_at"] or "-")[:16].replace("T", " "),
                ", ".join(_superseded(s) for s in entry["superseded"]) or "-",
                " ".join(_target(t) for t in entry["targets"]),
            )
        )
        details += [
            f"{entry['name']}: pending rotation {p['rotation_id']} ({p['phase']})"
            for p in entry["pending"]
        ]
        if entry["last_error"]:
            details.append(f"{entry['name']}: last error: {entry['last_error']}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines + details)


def _superseded(entry: dict[str, Any]) -> str:
    waiting = entry["waiting_for"]
    state = (
        f"waiting for {'+'.join(waiting)}" if waiting and entry["gate"] != "open" else entry["gate"]
    )
    return f"{entry['short_key']} ({state})"


def _target(entry: dict[str, Any]) -> str:
    mark = "ok" if entry["in_sync"] else ("ERROR" if entry["error"] else "stale")
    return f"{entry['provider']}:{mark}"


def _age(created_at: str | None, now: datetime) -> str:
    if not created_at:
        return "-"
    seconds = int((now - datetime.fromisoformat(created_at)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"
