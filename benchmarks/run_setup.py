"""Settings, configurations and the critical path of the run benchmark (``bench_run.py``).

Shared by the parent (which writes a ``Spec`` per sample) and the child (which reads it), so
this module imports nothing beyond the standard library.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REGION = "us-east-1"
STORES = ("file", "aws", "aws-inprocess")
TABLE = "bench-state"
# High enough that the production limiter is in the path but never waits: LangSmith's real
# limit (1000 requests per 10 s per key) would bound minting at ~100 keys/s, two calls each.
REQUESTS_PER_10S = 100_000
EMULATOR_RATE_LIMIT = 1_000_000
ADMIN_KEY_ENV = "BENCH_LANGSMITH_ADMIN_KEY"
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@dataclass(frozen=True, order=True)
class Setting:
    """One measured point: how many policies, reconciled how many at once."""

    policies: int
    concurrency: int

    def __str__(self) -> str:
        return f"N={self.policies} C={self.concurrency}"


def critical_path(setting: Setting, latency_s: float) -> float:
    """The least wall time of a first run: one listing, then ceil(N/C) waves of
    create + verify, each request costing the injected latency."""
    waves = math.ceil(setting.policies / setting.concurrency)
    return latency_s + waves * 2 * latency_s


@dataclass(frozen=True)
class Spec:
    """What a child process needs to run the bridge against one sample's servers."""

    store: str
    config: dict[str, Any]
    bootstrap_file: str

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Spec:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def policy_name(index: int) -> str:
    return f"p{index:05d}"


def bench_config(
    setting: Setting, store: str, root: Path, endpoint: str, aws_url: str | None, workspace: str
) -> dict[str, Any]:
    """The bridge configuration of one sample, as parsed TOML would hold it: org-wide keys
    with ``workspace`` as the one consumers name."""
    names = [policy_name(i) for i in range(setting.policies)]
    return {
        "langsmith": {
            "endpoint": endpoint,
            "admin_key_env": ADMIN_KEY_ENV,
            "requests_per_10s": REQUESTS_PER_10S,
        },
        "state": _state(store, root, aws_url),
        "run": {"concurrency": setting.concurrency, "verify_attempts": 1},
        "policy": [
            {
                "name": name,
                "ack": "grace",
                "default_workspace": workspace,
                "target": [_target(store, root, name, aws_url)],
            }
            for name in names
        ],
    }


def bootstrap_workspace(bootstrap_file: Path) -> str:
    """The first workspace of the emulator's bootstrap file."""
    workspaces: list[str] = json.loads(bootstrap_file.read_text(encoding="utf-8"))["workspace_ids"]
    return workspaces[0]


def _state(store: str, root: Path, aws_url: str | None) -> dict[str, str]:
    if store == "file":
        return {"backend": "file", "path": str(root / "state.db")}
    state = {"backend": "dynamodb", "table": TABLE, "region": REGION}
    return state | ({"endpoint_url": aws_url} if aws_url else {})


def _target(store: str, root: Path, name: str, aws_url: str | None) -> dict[str, str]:
    if store == "file":
        return {"provider": "file", "path": str(root / "out" / f"{name}.env")}
    target = {"provider": "aws", "secret_id": f"bench/{name}", "region": REGION}
    return target | ({"endpoint_url": aws_url} if aws_url else {})


def to_toml(config: dict[str, Any]) -> str:
    """``config`` (tables, arrays of tables, strings, numbers, booleans) as TOML text."""
    lines: list[str] = []
    _emit_table(lines, "", config)
    return "\n".join(lines) + "\n"


def _emit_table(lines: list[str], prefix: str, table: dict[str, Any]) -> None:
    for key, value in table.items():
        if not isinstance(value, dict | list):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines.append(f"[{name}]")
            _emit_table(lines, f"{name}.", value)
        elif isinstance(value, list):
            for item in value:
                lines.append(f"[[{name}]]")
                _emit_table(lines, f"{name}.", item)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    raise TypeError(f"no TOML form for {type(value).__name__}")
