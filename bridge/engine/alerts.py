"""Announcing problems after a run: overdue gates, failed runs, blocked targets, keys
expiring before the next run, no key at all.

Each problem has a stable id and a digest of what it is; the policy's record remembers
which were announced (``PolicyRecord.alerts``). A run announces a problem when it is new
or its digest changed, announces once that one is resolved, and stays quiet while nothing
changes (unless ``repeat_every`` has passed): one problem is one message, from however many
runs, runners or Lambda invocations. The memory is written with the record's compare-and-
swap; a failed delivery leaves it as it was, so the next run sends the notice again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from bridge.engine.status import PolicyStatus
from bridge.errors import BridgeError, StateConflict
from bridge.logs import event
from bridge.notify import Notice, Notifier, Problem
from bridge.state import StateStore
from bridge.state.model import Alerted

log = logging.getLogger("bridge.alerts")
_VARYING = re.compile(r"\d+")  # counts and instants change while a problem stays the same


def problems(status: PolicyStatus | None, name: str, error: str | None) -> list[Problem]:
    """What is wrong with policy ``name`` after a run (``error``: the run's failure)."""
    found: list[Problem] = []
    if status is not None:
        if status.current is None and not status.pending:
            found.append(_problem("no_key", "no_key", f"{name} has no current key"))
        for key in status.superseded:
            if key.gate == "overdue":
                text = f"key {key.short_key} overdue: {key.gate_reason}"
                found.append(_problem(f"overdue:{key.rotation_id}", "overdue", text))
        for target in status.targets:
            if target.error:
                text = f"target {target.reference}: {target.error}"
                found.append(_problem(f"blocked:{target.reference}", "blocked", text))
        for short in status.expiring:
            text = f"key {short} expires before the next run"
            found.append(_problem(f"expiring:{short}", "expiring", text))
    if error and not any(p.kind == "blocked" for p in found):
        found.append(_problem("failed", "failed", f"the last run failed: {error}"))
    return found


def _problem(id_: str, kind: str, text: str) -> Problem:
    digest = hashlib.sha256(f"{kind}\n{_VARYING.sub('#', text)}".encode()).hexdigest()[:16]
    return Problem(id_, kind, text, digest)


class Announcer:
    """Sends the notices a run calls for, and remembers them in the policy's record."""

    def __init__(
        self,
        store: StateStore,
        notifiers: Sequence[Notifier],
        clock: Callable[[], datetime],
        repeat_every: timedelta | None = None,
    ) -> None:
        self._store = store
        self._notifiers = notifiers
        self._clock = clock
        self._repeat = repeat_every

    def announce(self, policy: str, found: Sequence[Problem]) -> Notice | None:
        """Send what changed for ``policy``; the notice sent, or ``None`` (nothing to say,
        or a delivery failed: logged, and tried again at the next run)."""
        for attempt in (1, 2):
            try:
                return self._announce(policy, found)
            except StateConflict:  # a runner saved the record meanwhile: judge afresh
                if attempt == 2:
                    event(log, "alerts_not_saved", level=logging.WARNING, policy=policy)
            except BridgeError as exc:
                event(log, "alerts_failed", level=logging.ERROR, policy=policy, error=exc)
                return None
        return None

    def _announce(self, policy: str, found: Sequence[Problem]) -> Notice | None:
        record = self._store.load(policy)
        now = self._clock()
        memory = record.alerts
        current = {p.id: p for p in found}
        opened = tuple(p for p in found if p.id not in memory or memory[p.id].digest != p.digest)
        repeated = tuple(
            p
            for p in found
            if p not in opened and self._repeat and now - memory[p.id].at >= self._repeat
        )
        resolved = tuple(id_ for id_ in memory if id_ not in current)
        if not (opened or repeated or resolved):
            return None
        notice = Notice(policy, opened, resolved, repeated)
        for notifier in self._notifiers:
            notifier.send(notice)  # NotifyError: nothing remembered, all sent again
        sent = {p.id: Alerted(digest=p.digest, at=now) for p in (*opened, *repeated)}
        kept = {id_: memory[id_] for id_ in current if id_ in memory and id_ not in sent}
        self._store.save(record.model_copy(update={"alerts": {**kept, **sent}}))
        event(
            log,
            "alerts_sent",
            policy=policy,
            opened=[p.kind for p in opened],
            resolved=len(resolved),
            repeated=len(repeated),
        )
        return notice


__all__ = ["Announcer", "problems"]
