"""Where a first run spends its time: ``bench_run.py --profile N``.

Two profiles of one first run each, in fresh children on fresh servers (so neither distorts
the other):

* ``wall``: a sampler thread reads every policy thread's stack (``sys._current_frames``)
  every few milliseconds; a function's share is the fraction of policy-thread samples with it
  on the stack (inclusive) or on top (self). Waiting (on a socket, a lock, an fsync) counts,
  which is what separates a run from its critical path. Each sample also reads the thread's
  scheduler state (``/proc/self/task/TID/stat``): ``R`` samples are on a CPU (or ready for
  one), so the same counts over ``R`` samples only attribute the CPU the threads burn
  (a thread waiting for the GIL sleeps on a condition variable, so it is not ``R``).
* ``cpu``: ``cProfile`` in every thread (installed with ``threading.setprofile``) timed by
  ``time.thread_time``, so waits cost nothing and each function's own time is CPU it burnt;
  merged over threads, top functions by own CPU time.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from run_setup import Setting

ROOT = Path(__file__).resolve().parent.parent
INTERVAL_S = 0.002
THREAD_PREFIX = "policy"  # the engine's ThreadPoolExecutor names its threads so
TOP = 25
OURS = ("bridge/", "providers/")


def where(code_file: str, function: str) -> str:
    """``path:function`` with the repository or site-packages prefix dropped."""
    path = code_file
    for marker in (f"{ROOT}/", "site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{function}"


class Profiler:
    """Profiles the ``with`` blocks it is entered for; ``dump`` writes the result."""

    def __init__(self, mode: str = "wall") -> None:
        self.mode = mode
        self.wall, self.cpu = Samples(), Samples()
        self.wall_s = 0.0
        self._profiles: list[cProfile.Profile] = []
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._started = 0.0

    def __enter__(self) -> Profiler:
        self._started = time.perf_counter()
        if self.mode == "wall":
            self._stop.clear()
            self._sampler = threading.Thread(target=self._sample, name="sampler", daemon=True)
            self._sampler.start()
        else:
            threading.setprofile(self._start_thread)
            self._profiles.append(cProfile.Profile(time.thread_time))
            self._profiles[-1].enable()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
        else:
            threading.setprofile(None)
            self._profiles[0].disable()
        self.wall_s += time.perf_counter() - self._started

    def _start_thread(self, frame: FrameType, event: str, arg: object) -> None:
        profile = cProfile.Profile(time.thread_time)
        self._profiles.append(profile)
        profile.enable()  # replaces this hook in this thread

    def _sample(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            threads = {
                t.ident: t.native_id
                for t in threading.enumerate()
                if t.name.startswith(THREAD_PREFIX)
            }
            for ident, frame in sys._current_frames().items():
                if ident in threads:
                    self._record(frame, _running(threads[ident]))

    def _record(self, frame: FrameType, running: bool) -> None:
        stack: list[str] = []
        current: FrameType | None = frame
        while current is not None:
            stack.append(where(current.f_code.co_filename, current.f_code.co_name))
            current = current.f_back
        # The top frame, and the project's frame nearest to it (who waits, for what).
        ours = next((f for f in stack if f.startswith(OURS)), "")
        top = stack[0] if ours == stack[0] else f"{stack[0]}  <- {ours}"
        for counts in (self.wall, self.cpu) if running else (self.wall,):
            counts.samples += 1
            counts.inclusive.update(set(stack))
            counts.own[top] += 1

    def dump(self, out: Path) -> None:
        result: dict[str, Any] = {"mode": self.mode, "wall_s": self.wall_s}
        if self.mode == "wall":
            result["wall"], result["cpu"] = self.wall.shares(), self.cpu.shares()
        else:
            stats = pstats.Stats(*self._profiles)
            rows = [
                (where(file, name), tottime, cumtime, calls)
                for (file, _, name), (_, calls, tottime, cumtime, _) in stats.stats.items()  # type: ignore[attr-defined]
            ]
            result["own"] = sorted(rows, key=lambda r: -r[1])[:TOP]
            result["threads"] = len(self._profiles)
        out.write_text(json.dumps(result), encoding="utf-8")


@dataclass
class Samples:
    """Stack samples of the policy threads: how many, and per function."""

    samples: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)

    def shares(self) -> dict[str, Any]:
        total = max(self.samples, 1)
        ours = [(f, c) for f, c in self.inclusive.most_common() if f.startswith(OURS)]
        return {
            "samples": self.samples,
            "inclusive": [(f, c / total) for f, c in ours[:TOP]],
            "own": [(f, c / total) for f, c in self.own.most_common(TOP)],
        }


def _running(native_id: int | None) -> bool:
    try:
        stat = Path(f"/proc/self/task/{native_id}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "R"


def profile(policies: int, concurrency: int, store: str, latency_ms: float) -> None:
    """Profile one first run of ``policies`` at ``concurrency`` both ways; print the tops."""
    from run_setup import Setting

    setting = Setting(policies, concurrency)
    for mode in ("wall", "cpu"):
        result, phase = _profiled_first_run(setting, store, latency_ms, mode)
        print(
            f"\n{mode} profile of the first run at {setting} ({store}): run() took "
            f"{phase['wall_s']:.2f}s, bridge CPU {phase['cpu_s']:.2f}s"
        )
        print(_wall_text(result) if mode == "wall" else _cpu_text(result))


def _profiled_first_run(
    setting: Setting, store: str, latency_ms: float, mode: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    import subprocess

    from run_samples import BENCH, CHILD_TIMEOUT_S
    from run_servers import sample_servers
    from run_setup import Spec, bench_config, bootstrap_workspace

    with (
        tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp,
        sample_servers(store, Path(tmp), latency_ms) as servers,
    ):
        root = Path(tmp)
        aws_url = servers.moto.url if servers.moto else None
        workspace = bootstrap_workspace(servers.bootstrap_file)
        config = bench_config(setting, store, root, servers.emulator.url, aws_url, workspace)
        spec, out = root / "spec.json", root / "profile.json"
        Spec(store, config, str(servers.bootstrap_file)).dump(spec)
        command = [sys.executable, str(BENCH), "--child", "first", "--spec", str(spec)]
        command += ["--profile-out", str(out), "--profile-mode", mode]
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"profiled child failed:\n{done.stderr[-3000:]}")
        phase = json.loads(done.stdout.splitlines()[-1])
        return json.loads(out.read_text(encoding="utf-8")), phase


def _wall_text(result: dict[str, Any]) -> str:
    wall, cpu = result["wall"], result["cpu"]
    lines = [
        f"{wall['samples']} samples of the policy threads every {INTERVAL_S * 1000:g} ms, "
        f"{cpu['samples']} of them on a CPU (state R)"
    ]
    for name, counts in (("wall time", wall), ("CPU (R samples only)", cpu)):
        lines.append(f"share of policy-thread {name}, project functions on the stack:")
        lines += [f"  {share:6.1%}  {func}" for func, share in counts["inclusive"]]
        lines.append(f"share of policy-thread {name}, top of the stack (C calls show as")
        lines.append("their Python caller; '<-' names the project's frame nearest the top):")
        lines += [f"  {share:6.1%}  {func}" for func, share in counts["own"]]
    return "\n".join(lines)


def _cpu_text(result: dict[str, Any]) -> str:
    lines = [f"cProfile (thread CPU time) in {result['threads']} threads, top by own CPU, summed:"]
    lines.append(f"  {'own':>8}  {'cumul':>8}  {'calls':>8}  function")
    lines += [
        f"  {own:7.2f}s  {cum:7.2f}s  {calls:>8}  {name}" for name, own, cum, calls in result["own"]
    ]
    return "\n".join(lines)
