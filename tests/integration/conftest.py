"""A bridge wired to a real emulator over real sockets, with file targets in ``tmp_path``.

The engine's clock is the emulator's clock, so tests move time for both at once.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.config import BridgeConfig, load_config
from bridge.emulator import Emulator
from bridge.engine import Engine, RunReport, policy_status
from bridge.engine.observe import observe_policy
from bridge.langsmith import RetryPolicy
from bridge.payload import decode
from bridge.render import status_json
from bridge.state import FileStateStore
from bridge.wiring import build_engine
from tests.support.config import with_default_workspace

FAST_RETRY = RetryPolicy(max_attempts=6, base_delay=0.001, max_delay=0.01)


def config_text(emu: Emulator, policies: str, *, run: str = "verify_attempts = 1") -> str:
    policies = with_default_workspace(policies, emu.bootstrap["workspace_ids"][0])
    return f"""
[langsmith]
endpoint = "{emu.url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"

[state]
path = "state/bridge-state.json"

[run]
{run}

{policies}
"""


def policy_toml(
    name: str, *, workspaces: list[str] | None = None, fmt: str = "dotenv", **fields: Any
) -> str:
    lines = ["[[policy]]", f'name = "{name}"']
    if workspaces is not None:
        lines.append(f"workspaces = {json.dumps(workspaces)}")
    for field, value in fields.items():
        lines.append(f"{field} = {json.dumps(value)}")
    lines += [
        "[[policy.target]]",
        'provider = "file"',
        f'path = "out/{name}.env"',
        f'format = "{fmt}"',
    ]
    return "\n".join(lines)


@dataclass
class Bridge:
    """One configured bridge: the CLI, or the engine in-process with the emulator's clock."""

    emu: Emulator
    root: Path
    config_path: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def config(self) -> BridgeConfig:
        return load_config(self.config_path)

    def engine(self, *, retry: RetryPolicy = FAST_RETRY, **overrides: Any) -> Engine:
        """The production engine (``build_engine``), on the emulator's clock, not sleeping."""
        return build_engine(
            self.config, clock=self.emu.clock.now, sleep=lambda _: None, retry=retry, **overrides
        )

    def run(self, *names: str, force: bool = False) -> RunReport:
        with self.engine() as engine:
            report = engine.run(
                engine.select(names or None), force=frozenset(names) if force else frozenset()
            )
        assert report.ok, [o.error for o in report.outcomes]
        return report

    def store(self) -> FileStateStore:
        return FileStateStore(self.config.state.path)

    def status(self, name: str) -> dict[str, Any]:
        config = self.config
        policy = config.get_policy(name)
        store = self.store()
        record = store.load(name)
        with self.engine() as engine:
            obs = observe_policy(
                config,
                policy,
                record,
                engine.providers(policy),
                store.acks(name, policy.consumers),
                None,
                now=self.emu.clock.now(),
                instance=engine.instance,
            )
        return status_json(policy_status(policy, record, obs))

    def payload(self, name: str) -> dict[str, str]:
        path = self.root / "out" / f"{name}.env"
        text = path.read_text()
        return decode(text, "json" if text.startswith("{") else "dotenv")

    def cli(self, *args: str) -> tuple[int, str, str]:
        """Run the CLI in-process; returns (exit code, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["-c", str(self.config_path), *args])
        logging.getLogger("bridge").handlers.clear()
        return code, out.getvalue(), err.getvalue()

    def emulator_key(self, key_id: str) -> dict[str, Any]:
        return next(k for k in self.emu.state.inspect_keys() if k["id"] == key_id)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator().start() as emu:
        yield emu


@pytest.fixture
def make_bridge(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])

    def make(*policies: str, run: str = "verify_attempts = 1") -> Bridge:
        path = tmp_path / "bridge.toml"
        path.write_text(config_text(emulator, "\n\n".join(policies), run=run))
        return Bridge(emulator, tmp_path, path, monkeypatch)

    return make
