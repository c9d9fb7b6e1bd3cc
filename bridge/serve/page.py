"""The status page: one HTML document, rendered by Jinja2 with autoescaping from the latest
snapshot, refreshing itself. Every value on it is an id, a short key, a fingerprint, a
time or a message the engine already redacted; no key reaches it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from bridge import __version__
from bridge.serve.snapshot import PolicyView, Snapshot

REFRESH_S = 15
SEVERITY = ("blocked", "failed", "overdue", "expiring", "stale", "waiting", "ok")


@dataclass(frozen=True)
class Badge:
    """A policy's state at a glance: the worst of what it shows."""

    kind: str  # ok, waiting, expiring, stale, overdue, blocked, failed
    text: str


def badge(view: PolicyView) -> Badge:
    status = view.status
    if status is None:
        return Badge("blocked", "status unreadable")
    if any(t.error for t in status.targets):
        return Badge("blocked", "target blocked")
    if status.last_error:
        return Badge("failed", "last run failed")
    if any(s.gate == "overdue" for s in status.superseded):
        return Badge("overdue", "gate overdue")
    if status.expiring:
        return Badge("expiring", "key expiring")
    if any(not t.in_sync for t in status.targets):
        return Badge("stale", "target stale")
    if status.superseded:
        return Badge("waiting", "waiting for consumers")
    if status.current is None:
        return Badge("stale", "no key yet")
    return Badge("ok", "healthy")


def ago(moment: datetime | None, now: datetime) -> str:
    """``3m ago`` / ``in 2h`` (whole units), or an em dash for nothing."""
    if moment is None:
        return "—"
    delta = now - moment
    future = delta < timedelta(0)
    seconds = int(abs(delta.total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds >= size or unit == "s":
            text = f"{seconds // size}{unit}"
            break
    return f"in {text}" if future else f"{text} ago"


def instant(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "—"


@cache
def _template() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("bridge.serve", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(ago=ago, instant=instant, badge=badge)
    return environment.get_template("status.html")


def render(snapshot: Snapshot | None, now: datetime) -> str:
    """The page for ``snapshot`` (``None``: the first one is still being taken)."""
    kinds = [badge(view).kind for view in snapshot.policies] if snapshot else []
    summary = [(kind, kinds.count(kind)) for kind in SEVERITY if kind in kinds]
    text: str = _template().render(
        snapshot=snapshot, now=now, refresh=REFRESH_S, version=__version__, summary=summary
    )
    return text


__all__ = ["Badge", "ago", "badge", "render"]
