"""One sample of the run benchmark: fresh servers, then the bridge in fresh child processes.

For ``file`` and ``aws`` every phase runs in its own child (``bench_run.py --child``), so each
child's peak RSS is that phase's alone and the no-op run is cold: a new interpreter that
imports, parses the configuration, builds the engine and runs. Then the no-op run again
through the CLI, ``langsmith-bridge run -c config.toml --json``, as deployed. For
``aws-inprocess`` moto lives in the bridge's process, so its state dies with it: one child
runs every phase, and its no-op run is warm.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run_servers import BIN, SampleServers, sample_servers
from run_setup import ADMIN_KEY_ENV, Setting, Spec, bench_config, bootstrap_workspace, to_toml

BENCH = Path(__file__).resolve().parent / "bench_run.py"
CHILD_TIMEOUT_S = 1800.0


@dataclass
class Phase:
    """One phase's result: the child's own report plus what the parent saw around it."""

    report: dict[str, Any]
    process_s: float | None = None  # spawn to exit, when the phase had a child to itself
    server_cpu_s: dict[str, float] = field(default_factory=dict)
    aws: Counter[str] = field(default_factory=Counter)

    @property
    def wall_s(self) -> float:
        return float(self.report["wall_s"])

    @property
    def maxrss_kib(self) -> int:
        return int(self.report["maxrss_kib"])

    @property
    def langsmith(self) -> Counter[str]:
        return Counter(self.report["langsmith"])


@dataclass
class Sample:
    """Everything measured in one sample of one setting."""

    setting: Setting
    store: str
    phases: dict[str, Phase]
    cli_noop_s: float | None
    server_peak_kib: dict[str, int]


_ROOT: list[Path] = []


def _samples_root() -> Path:
    """One folder for every sample of this benchmark, deleted only when it exits.

    Deleting a sample's thousands of files before the next sample is measured would make
    the next first run pay for it: on ext4 without a journal (as here), creating a file soon
    after mass deletions costs up to 30 times more CPU, as the inode allocator skips the
    recently deleted inodes. That is the benchmark's own doing, not the bridge's.
    """
    if not _ROOT:
        _ROOT.append(Path(tempfile.mkdtemp(prefix="bench-run-")))
        atexit.register(shutil.rmtree, _ROOT[0], True)
    return _ROOT[0]


def run_sample(setting: Setting, store: str, latency_ms: float, *, rotate: bool) -> Sample:
    """Measure ``setting`` once on fresh servers; with ``rotate`` also a rotation cycle."""
    phases = ["first", "noop"] + (["rotate", "settle"] if rotate else [])
    root = Path(tempfile.mkdtemp(prefix="sample-", dir=_samples_root()))
    with sample_servers(store, root, latency_ms) as servers:
        aws_url = servers.moto.url if servers.moto else None
        workspace = bootstrap_workspace(servers.bootstrap_file)
        config = bench_config(setting, store, root, servers.emulator.url, aws_url, workspace)
        spec_path = root / "spec.json"
        Spec(store, config, str(servers.bootstrap_file)).dump(spec_path)
        if store == "aws-inprocess":
            results = dict(zip(phases, _child(phases, spec_path, servers), strict=True))
            cli_s = None
        else:
            results = {"first": _child(["first"], spec_path, servers)[0]}
            results["noop"] = _child(["noop"], spec_path, servers)[0]
            cli_s = _cli_noop(config, root, servers)
            for phase in phases[2:]:
                results[phase] = _child([phase], spec_path, servers)[0]
        return Sample(setting, store, results, cli_s, servers.peak_rss_kib())


def _child(phases: list[str], spec_path: Path, servers: SampleServers) -> list[Phase]:
    command = [sys.executable, str(BENCH), "--child", ",".join(phases), "--spec", str(spec_path)]
    cpu_before, aws_before = servers.cpu_s(), servers.aws_counts()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    process_s = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"child {phases} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for report in reports:
        if not report["ok"]:
            raise RuntimeError(f"phase {report['phase']} failed: {report['errors']}")
    cpu_after, aws_after = servers.cpu_s(), servers.aws_counts()
    if len(reports) != 1:  # one child for several phases: only its own counts apply
        return [Phase(r, aws=Counter(r["aws"] or {})) for r in reports]
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    aws = Counter(reports[0]["aws"] or {}) or (aws_after - aws_before)
    return [Phase(reports[0], process_s, cpu, aws)]


def _cli_noop(config: dict[str, Any], root: Path, servers: SampleServers) -> float:
    """Wall time of ``langsmith-bridge run -c config.toml --json`` with nothing to do."""
    path = root / "bridge.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    bootstrap = json.loads(servers.bootstrap_file.read_text(encoding="utf-8"))
    env = os.environ | {ADMIN_KEY_ENV: bootstrap["admin_key"]}
    command = [str(BIN / "langsmith-bridge"), "run", "-c", str(path), "--json"]
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT_S, cwd=root
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"CLI run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    busy = [p["policy"] for p in json.loads(done.stdout)["policies"] if p["done"]]
    if busy:
        raise RuntimeError(f"the CLI's no-op run did something for {busy[:3]}")
    return wall
