"""What tracing leaves behind: projects created by consumers, and a count of their runs.

The emulator keeps no run content, only enough for a test to see that traces arrived
and under which key: distinct runs and updates per workspace and project (session),
and runs per key. Like LangSmith, a run naming a project that does not exist creates
it, so the project then shows in ``GET /sessions``.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.emulator.clock import EmulatorClock
from bridge.emulator.ingest import RunOp
from bridge.emulator.records import Project, Seed

DEFAULT_PROJECT = "default"  # the SDK's project when none is configured


class ProjectExists(Exception):
    """A project of that name already exists in the workspace (answered 409)."""


@dataclass
class _Tally:
    runs: int = 0
    updates: int = 0


@dataclass
class _Ledger:
    created: dict[str, list[Project]] = field(default_factory=dict)  # by workspace
    run_sessions: dict[tuple[str, str], str] = field(default_factory=dict)  # (ws, run) -> key
    tallies: dict[tuple[str, str], _Tally] = field(default_factory=dict)  # (ws, session key)
    by_key: Counter[str] = field(default_factory=Counter)  # key id -> runs


class TraceStore:
    """The thread-safe store of tracing projects and run counts.

    Args:
        seed: The bootstrap world, whose projects every workspace starts with.
        clock: The emulator clock (a created project's ``start_time``).
    """

    def __init__(self, seed: Seed, clock: EmulatorClock) -> None:
        self._seed = seed
        self._clock = clock
        self._lock = threading.Lock()
        self._ledger = _Ledger()

    def reset(self) -> None:
        """Forget created projects and every count."""
        with self._lock:
            self._ledger = _Ledger()

    # -- projects -------------------------------------------------------------------------

    def projects(self, workspace_id: str) -> list[Project]:
        """The seeded and the created projects of one workspace."""
        with self._lock:
            return self._projects(workspace_id)

    def create_project(
        self,
        workspace_id: str,
        name: str,
        *,
        project_id: str | None = None,
        description: str | None = None,
        upsert: bool = False,
    ) -> Project:
        """Create a project; with ``upsert``, an existing one of that name is returned.

        Raises:
            ProjectExists: The name is taken and ``upsert`` is false.
        """
        with self._lock:
            existing = self._named(workspace_id, name)
            if existing is not None:
                if upsert:
                    return existing
                raise ProjectExists(name)
            return self._create(workspace_id, name, project_id, description)

    # -- runs -----------------------------------------------------------------------------

    def record(self, workspace_id: str, key_id: str, ops: Iterable[RunOp]) -> None:
        """Count accepted operations; a run posted twice (a retried upload) counts once."""
        with self._lock:
            ledger = self._ledger
            for op in ops:
                run = (workspace_id, op.run_id)
                session = ledger.run_sessions.get(run) or self._session_key(workspace_id, op)
                tally = ledger.tallies.setdefault((workspace_id, session), _Tally())
                if op.operation == "patch":
                    tally.updates += 1
                elif run not in ledger.run_sessions:
                    ledger.run_sessions[run] = session
                    tally.runs += 1
                    ledger.by_key[key_id] += 1

    def run_count(
        self,
        *,
        workspace_id: str | None = None,
        session: str | None = None,
        key_id: str | None = None,
    ) -> int:
        """Distinct runs received, optionally in one workspace, one project (by name or
        id) or under one key (key counts span workspaces and projects)."""
        with self._lock:
            if key_id is not None:
                return self._ledger.by_key[key_id]
            return sum(
                entry["runs"]
                for entry in self._sessions_view()
                if workspace_id in (None, entry["workspace_id"])
                and session in (None, entry["session_name"], entry["session_id"])
            )

    def inspect(self) -> dict[str, Any]:
        """The counts as JSON-ready data (``GET /_emulator/runs``)."""
        with self._lock:
            sessions = self._sessions_view()
            return {
                "runs": sum(entry["runs"] for entry in sessions),
                "updates": sum(entry["updates"] for entry in sessions),
                "sessions": sessions,
                "by_key": dict(self._ledger.by_key),
            }

    # -- helpers (the lock is held) ------------------------------------------------------

    def _projects(self, workspace_id: str) -> list[Project]:
        seeded = [p for p in self._seed.projects if p.tenant_id == workspace_id]
        return seeded + list(self._ledger.created.get(workspace_id, []))

    def _named(self, workspace_id: str, name: str) -> Project | None:
        return next((p for p in self._projects(workspace_id) if p.name == name), None)

    def _create(
        self, workspace_id: str, name: str, project_id: str | None, description: str | None
    ) -> Project:
        project = Project(
            id=project_id or str(uuid.uuid4()),
            name=name,
            tenant_id=workspace_id,
            start_time=self._clock.now(),
            description=description,
        )
        self._ledger.created.setdefault(workspace_id, []).append(project)
        return project

    def _session_key(self, workspace_id: str, op: RunOp) -> str:
        """The project id a run belongs to; a new name creates the project, an unknown
        id is kept as given (LangSmith would reject that run later, off the request)."""
        if op.session_id is not None:
            return op.session_id
        name = op.session_name or DEFAULT_PROJECT
        project = self._named(workspace_id, name) or self._create(workspace_id, name, None, None)
        return project.id

    def _sessions_view(self) -> list[dict[str, Any]]:
        names = {
            (p.tenant_id, p.id): p.name
            for ws in {ws for ws, _ in self._ledger.tallies}
            for p in self._projects(ws)
        }
        return [
            {
                "workspace_id": ws,
                "session_id": session,
                "session_name": names.get((ws, session)),
                "runs": tally.runs,
                "updates": tally.updates,
            }
            for (ws, session), tally in self._ledger.tallies.items()
        ]
