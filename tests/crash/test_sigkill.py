"""SIGKILL a real ``langsmith-bridge run`` at random instants, many times, then check the
invariants of DESIGN.md after one clean run: file targets, file state.

The loop, the watcher and the common checks are in ``harness``. Aimed kills here land right
after the N-th commit to the state database, a target's file replaced, or an engine event
logged, because the windows between two local writes are too short for random delays to
hit. Watchers re-read each file every few milliseconds (it is never missing or half-written
once it exists). On top of the common checks: no secret in the state folder (temporary
files and locks included), and the state database is intact whenever it is read.

Set ``BRIDGE_CRASH_SEED`` to replay a seed (a failure prints it).
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.config import FileStateSettings, load_config
from bridge.emulator import Emulator
from bridge.state import PolicyRecord
from tests.crash.harness import (
    CHURN,
    ENGINE_EVENTS,
    HELD,
    FilePayload,
    FileTrigger,
    LogTrigger,
    Scenario,
    Target,
    Trigger,
    crash_seed,
    file_targets,
    run_and_report,
    secrets_in,
    subprocess_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _config_text(url: str, workspaces: list[str]) -> str:
    ws0, ws1 = workspaces[:2]
    return f"""
[langsmith]
endpoint = "{url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"

[state]
backend = "file"
path = "state/bridge-state.json"

[run]
verify_attempts = 1
every = "1m"

# Rotates and revokes on every run, so kills land in every step.
[[policy]]
name = "{CHURN}"
workspaces = ["{ws0}"]
ack = "grace"
rotate_every = "1s"
key_ttl = "1h"
min_overlap = "0s"
target = [
  {{ provider = "file", path = "out/churn.env", format = "dotenv" }},
  {{ provider = "file", path = "out/churn.json", format = "json" }},
]

# Its consumer never acknowledges: no superseded key may ever be deleted.
[[policy]]
name = "{HELD}"
workspaces = ["{ws0}", "{ws1}"]
ack = "explicit"
consumers = ["api"]
rotate_every = "1s"
key_ttl = "2h"
target = [
  {{ provider = "file", path = "out/held.env", format = "dotenv" }},
  {{ provider = "file", path = "out/held.json", format = "json" }},
]

# Org-wide key (no workspaces): verified by listing workspaces.
[[policy]]
name = "org"
default_workspace = "{ws0}"
ack = "grace"
rotate_every = "1s"
key_ttl = "2h"
target = [{{ provider = "file", path = "out/org.env", format = "dotenv" }}]
"""


class FileScenario(Scenario):
    """Every target a file, the state one SQLite database."""

    iterations = 50

    def __init__(self, root: Path, emu: Emulator, processes: list[subprocess.Popen[bytes]]) -> None:
        config_path = root / "bridge.toml"
        config_path.write_text(
            _config_text(emu.url, emu.bootstrap["workspace_ids"]), encoding="utf-8"
        )
        config = load_config(config_path)
        assert isinstance(config.state, FileStateSettings)
        self.state_path = config.state.path
        self.files: list[FilePayload] = file_targets(config)
        targets: list[Target] = list(self.files)
        env = subprocess_env(LANGSMITH_ADMIN_KEY=emu.bootstrap["admin_key"])
        super().__init__(root, emu, config, config_path, targets, env, processes)

    def records(self) -> dict[str, PolicyRecord]:
        """Every policy's record, read by SQLite itself; the database must be intact and
        every record parse whenever it is read (atomic commits)."""
        uri = f"file:{self.state_path}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
                if conn.execute("PRAGMA integrity_check").fetchone() != ("ok",):
                    pytest.fail(f"state database {self.state_path.name} is damaged")
                rows = conn.execute("SELECT name, record FROM policies").fetchall()
            return {n: PolicyRecord.model_validate_json(raw) for n, raw in rows}
        except (sqlite3.Error, ValueError) as exc:  # pydantic's ValidationError too
            pytest.fail(f"state file {self.state_path.name} is unreadable: {type(exc).__name__}")

    def triggers(self) -> list[Trigger]:
        # Every commit appends to the write-ahead log; the database file itself changes
        # only at checkpoints, so the log is what marks "the N-th write of the state".
        wal = self.state_path.with_name(self.state_path.name + "-wal")
        return [
            *(FileTrigger("state", str(n), wal, count=n) for n in range(1, 7)),
            *(FileTrigger("target", t.name, t.path) for t in self.files),
            *(LogTrigger(event) for event in ENGINE_EVENTS[:4]),
        ]

    def state_secrets(self) -> list[str]:
        """No secret in the state folder, temporary files and locks included."""
        problems = []
        for path in sorted(p for p in self.state_path.parent.rglob("*") if p.is_file()):
            found = secrets_in(path.read_text(encoding="utf-8", errors="replace"))
            if found:
                problems.append(f"SECRET in state file {path.name}: {found} key-shaped string(s)")
        return problems


@pytest.mark.timeout(180)
def test_sigkill_at_random_instants_keeps_invariants(
    tmp_path: Path,
    emulator: Emulator,
    processes: list[subprocess.Popen[bytes]],
    stoppers: list[Callable[[], None]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    seed = crash_seed()
    scenario = FileScenario(tmp_path, emulator, processes)
    run_and_report(seed, lambda: scenario.run(seed, stoppers), capfd)
