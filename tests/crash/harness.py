"""The crash suite's machinery, shared by every scenario: SIGKILL a real ``langsmith-bridge
run`` at random and at aimed instants, many times, while consumers watch every target; then
check the invariants of DESIGN.md after one clean run.

A scenario (``Scenario``) supplies the configuration, its targets as consumers see them, how
to read the state, the instants worth aiming at, and its store-specific checks; the loop,
the watcher and the common checks live here:

* half the kills come after a random delay spread over a clean run's duration, the other
  half right after an observable step of the run (``Trigger``: the scenario's ``priority``
  ones first, then drawn at random); every ``finish_every``-th run is left to finish;
* while the loop runs, ``Watcher`` threads play the consumers of every target (no outage;
  a target that has held a payload never loses it or holds a half-written one);
* after the loop and one clean run: no leaked bridge key, every target on the current key
  and LangSmith accepting it, nothing left minting or publishing, one current generation
  per policy, no key of the never-acknowledging policy ``held`` ever deleted, and no secret
  in any run's output, in the state or in the test's own output;
* guards against passing vacuously: enough kills, some left a generation unfinished,
  revocations happened, the watchers actually watched.

Deterministic apart from timing: the delays come from a seeded ``random.Random``; set
``BRIDGE_CRASH_SEED`` to replay a seed (a failure prints it).
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from bridge.config import BridgeConfig, FileTarget
from bridge.emulator import Emulator
from bridge.payload import API_KEY, WORKSPACE_ID, Format, decode
from bridge.secrets import KEY_PATTERN, fingerprint, redact
from bridge.state import Phase, PolicyRecord

DEFAULT_SEED = 20240611
POLL_S = 0.0002  # how often an aimed kill looks for its instant
TRIGGER_TIMEOUT_S = 30.0
HELD = "held"  # the policy whose consumer never acknowledges
CHURN = "churn"  # the policy that rotates and revokes on every run
BRIDGE_BIN = Path(sys.executable).with_name("langsmith-bridge")
ENGINE_EVENTS = ("minted", "published", "current", "revoked", "abandoned", "orphan_deleted")


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment without LangSmith, proxy or AWS settings, plus ``extra``;
    loopback is never proxied."""
    dropped = ("LANGSMITH", "HTTP", "HTTPS", "ALL_PROXY", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(dropped)}
    return env | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"} | extra


# -- a consumer's view of a target --------------------------------------------------------


class Absent(LookupError):
    """The target holds no payload (the file or secret value does not exist)."""


class Target(Protocol):
    """One target as its consumers see it."""

    @property
    def name(self) -> str: ...

    @property
    def policy(self) -> str: ...

    @property
    def verify_workspace(self) -> str | None:
        """Mirrors ``Policy.verify_workspace``: where a consumer's first call lands."""
        ...

    @property
    def read_interval(self) -> float:
        """How often the fast watcher re-reads the target."""
        ...

    @property
    def check_interval(self) -> float:
        """How often the HTTP watcher re-reads the target and makes a consumer's call."""
        ...

    @property
    def min_reads(self) -> int:
        """Fewer fast reads than this over the loop makes the test vacuous."""
        ...

    def read_key(self) -> tuple[str, str | None]:
        """The published key and the workspace a consumer would send it to.

        Raises:
            Absent: there is no payload.
            ValueError: the payload does not parse, or holds no key.
        """
        ...


def key_of(env: dict[str, str], verify_workspace: str | None) -> tuple[str, str | None]:
    """A payload's key and the workspace a consumer sends it to; ``ValueError`` if no key."""
    key = env.get(API_KEY, "").strip()
    if not key:
        raise ValueError(f"no {API_KEY}")
    return key, env.get(WORKSPACE_ID) or verify_workspace


@dataclass(frozen=True)
class FilePayload:
    """A file target, re-read from disk (cheap: read every few milliseconds)."""

    policy: str
    path: Path
    format: Format
    verify_workspace: str | None
    read_interval: float = 0.003
    check_interval: float = 0.025
    min_reads: int = 200

    @property
    def name(self) -> str:
        return f"{self.policy}:{self.path.name}"

    def read_key(self) -> tuple[str, str | None]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise Absent("file missing") from None
        return key_of(decode(text, self.format), self.verify_workspace)


def file_targets(config: BridgeConfig) -> list[FilePayload]:
    return [
        FilePayload(policy.name, target.path, target.format, policy.verify_workspace)
        for policy in config.policy
        for target in policy.target
        if isinstance(target, FileTarget)
    ]


def consumer_status(client: httpx.Client, key: str, workspace: str | None) -> int:
    """What LangSmith answers a consumer's first call with this key."""
    if workspace:
        response = client.get(
            "/api/v1/sessions",
            params={"limit": "1"},
            headers={"X-API-Key": key, "X-Tenant-Id": workspace},
        )
    else:
        response = client.get("/api/v1/workspaces", headers={"X-API-Key": key})
    return response.status_code


class Watcher:
    """Plays the consumers of every target while the bridge is killed again and again.

    Per target, two threads: a fast one re-reads the target every ``read_interval`` (once
    it has held a payload it must keep holding one that parses) and looks the key up in the
    emulator's state in-process (no request, so it can run often); a slower one re-reads it
    every ``check_interval`` and makes the consumer's real first call over HTTP. A rejected
    key is an outage only if the target still holds it when read again: a consumer
    re-reading it would already have the new key.
    """

    def __init__(self, emu: Emulator, targets: list[Target]) -> None:
        self.emu = emu
        self.targets = targets
        self.violations: list[str] = []
        self.checks: Counter[str] = Counter()  # HTTP checks per target
        self.reads: Counter[str] = Counter()  # fast checks per target
        self.seen_key_ids: dict[str, set[str]] = {}  # policy -> ids of keys seen in its targets
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._existed: set[str] = set()
        self._threads = [
            threading.Thread(
                target=self._guard, args=(loop, t), name=f"watch-{t.name}", daemon=True
            )
            for t in targets
            for loop in (self._fast, self._http)
        ]

    def start(self) -> Watcher:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)

    def _violation(self, message: str) -> None:
        with self._lock:
            self.violations.append(message)

    def _guard(self, loop: Callable[[Target], None], target: Target) -> None:
        try:
            loop(target)
        except Exception as exc:  # a dead watcher would make the test vacuous
            self._violation(f"watcher of {target.name} died: {type(exc).__name__}: {exc}")

    def _read(self, target: Target) -> tuple[str, str | None] | None:
        """The key and workspace, or ``None`` (recorded as a violation when it matters)."""
        try:
            found = target.read_key()
        except Absent as exc:
            if target.name in self._existed:
                self._violation(f"{target.name}: {exc} after it had held a payload")
            return None
        except ValueError as exc:
            self._violation(f"{target.name}: unparsable ({exc})")
            return None
        self._existed.add(target.name)
        return found

    def _rejected(self, target: Target, key: str, why: str) -> None:
        """``key`` was refused; an outage if the target still publishes it."""
        again = self._read(target)
        if again is not None and again[0] == key:
            record = self.emu.state.find_key(key)
            short = record.short_key if record else "?"
            self._violation(
                f"OUTAGE {target.name}: key {short} ({fingerprint(key)}) {why} "
                "while the target still published it"
            )

    def _fast(self, target: Target) -> None:
        while not self._stop.wait(target.read_interval):
            found = self._read(target)
            if found is None:
                continue
            key = found[0]
            record = self.emu.state.find_key(key)  # in-process; last_used_at is not touched
            with self._lock:
                self.reads[target.name] += 1
                if record is not None:
                    self.seen_key_ids.setdefault(target.policy, set()).add(record.id)
            if record is None:
                self._rejected(target, key, "is unknown to LangSmith")
            elif not record.usable_at(self.emu.clock.now()):
                self._rejected(target, key, "is deleted or expired")

    def _http(self, target: Target) -> None:
        with httpx.Client(base_url=self.emu.url, timeout=10.0, trust_env=False) as client:
            while not self._stop.wait(target.check_interval):
                found = self._read(target)
                if found is None:
                    continue
                key, workspace = found
                status = consumer_status(client, key, workspace)
                with self._lock:
                    self.checks[target.name] += 1
                if status != 200:
                    self._rejected(target, key, f"answered {status}")


# -- runs of the CLI --------------------------------------------------------------------


@dataclass
class RunLog:
    index: int
    out: Path
    err: Path
    pid: int = 0
    returncode: int | None = None
    killed: bool = False
    delay: float | None = None
    latency_ms: float = 0

    def text(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace") + self.err.read_text(
            encoding="utf-8", errors="replace"
        )

    def last_events(self) -> dict[str, str]:
        """Policy -> the last engine event this run logged for it."""
        last: dict[str, str] = {}
        for line in self.err.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()[1:]  # after the timestamp: level, event, fields
            if len(parts) >= 3 and parts[1] in ENGINE_EVENTS and parts[2].startswith("policy="):
                last[parts[2].removeprefix("policy=")] = parts[1]
        return last


@dataclass
class Bridge:
    root: Path
    config_path: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]]
    runs: list[RunLog] = field(default_factory=list)

    def start(self) -> tuple[subprocess.Popen[bytes], RunLog]:
        index = len(self.runs)
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        run = RunLog(index, logs / f"run-{index:03d}.out", logs / f"run-{index:03d}.err")
        with run.out.open("wb") as out, run.err.open("wb") as err:
            proc = subprocess.Popen(
                [str(BRIDGE_BIN), "--log-level", "info", "-c", str(self.config_path), "run"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env,
                cwd=self.root,
            )
        self.processes.append(proc)
        self.runs.append(run)
        run.pid = proc.pid
        return proc, run

    def clean_run(self, *, check: bool = True) -> tuple[RunLog, float]:
        """Start a run and let it finish; with ``check``, it must succeed."""
        started = time.monotonic()
        proc, run = self.start()
        run.returncode = proc.wait(timeout=60)
        elapsed = time.monotonic() - started
        assert not check or run.returncode == 0, failure(run)
        return run, elapsed


def failure(run: RunLog) -> str:
    return f"run {run.index} exited {run.returncode}:\n{redact(run.text())[-3000:]}"


# -- aimed kills --------------------------------------------------------------------------


class Trigger(Protocol):
    """An observable instant inside a run, to kill it right after.

    Random delays mostly land between requests; the windows between two writes (one target
    written, the next not yet; a key deleted, its generation not yet marked) are short and
    need aiming.
    """

    @property
    def label(self) -> str: ...

    def armed(self, run: RunLog) -> Callable[[], bool]:
        """A predicate that turns true once the instant has passed in ``run``."""
        ...


@dataclass(frozen=True)
class LogTrigger:
    """The run logged this engine event, for any policy."""

    event: str

    @property
    def label(self) -> str:
        return f"log {self.event}"

    def armed(self, run: RunLog) -> Callable[[], bool]:
        needle = f"{self.event} policy="
        return lambda: needle in run.err.read_text(encoding="utf-8", errors="replace")


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass(frozen=True)
class FileTrigger:
    """The ``count``-th replacement of ``path`` in this run."""

    kind: str  # what the file is: "state N", "target NAME"
    arg: str
    path: Path
    count: int = 1

    @property
    def label(self) -> str:
        return f"{self.kind} {self.arg}"

    def armed(self, run: RunLog) -> Callable[[], bool]:
        path, wanted = self.path, self.count
        last, seen = _signature(path), 0

        def fired() -> bool:
            nonlocal last, seen
            now = _signature(path)
            if now != last:
                last, seen = now, seen + 1
            return seen >= wanted

        return fired


@dataclass(frozen=True)
class CountTrigger:
    """A counter of server-side events (read in-process) grew by ``count`` in this run."""

    kind: str
    arg: str
    counter: Callable[[], int]
    count: int = 1

    @property
    def label(self) -> str:
        return f"{self.kind} {self.arg}"

    def armed(self, run: RunLog) -> Callable[[], bool]:
        base, counter, wanted = self.counter(), self.counter, self.count
        return lambda: counter() - base >= wanted


def kill_when(proc: subprocess.Popen[bytes], fired: Callable[[], bool]) -> bool:
    """SIGKILL ``proc`` as soon as ``fired()``; ``False`` if the run ended first."""
    deadline = time.monotonic() + TRIGGER_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        if fired():
            proc.kill()
            return True
        time.sleep(POLL_S)
    return False


# -- reading what a kill left -------------------------------------------------------------


def target_fingerprints(targets: Iterable[Target]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for target in targets:
        try:
            found[target.name] = fingerprint(target.read_key()[0])
        except (Absent, ValueError):
            found[target.name] = None
    return found


def phase_after_kill(
    policy: str, record: PolicyRecord | None, targets: list[Target], fps: dict[str, str | None]
) -> str | None:
    """Where a kill left ``policy`` unfinished, as the state and its targets show it."""
    if record is None:
        return None
    if record.by_phase(Phase.MINTING):
        return "minting (intent saved, no key id)"
    for generation in record.by_phase(Phase.PUBLISHING):
        mine = [t for t in targets if t.policy == policy]
        holding = sum(1 for t in mine if fps[t.name] == generation.fingerprint)
        return f"publishing ({holding}/{len(mine)} targets written)"
    return None


def bridge_keys(emu: Emulator) -> list[dict[str, Any]]:
    """Every key the bridge marked, from the emulator's control endpoint (no secrets)."""
    response = httpx.get(f"{emu.url}/_emulator/keys", timeout=10.0, trust_env=False)
    response.raise_for_status()
    return [k for k in response.json() if k["description"].startswith("langsmith-bridge:")]


def policy_of(description: str) -> str:
    return description.split(" policy=", 1)[1].split(" ", 1)[0]


def secrets_in(text: str) -> int:
    return len(KEY_PATTERN.findall(text))


def tally(items: Iterable[str], limit: int = 20, prefix: str = "") -> list[str]:
    """``items`` counted, one line per distinct item, at most ``limit`` lines."""
    counted = Counter(items)
    lines = [f"{prefix}{item} (x{n})" for item, n in list(counted.items())[:limit]]
    if len(counted) > limit:
        lines.append(f"{prefix}... and {len(counted) - limit} more kinds of violation")
    return lines


def counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} x{n}" for k, n in sorted(counter.items())) or "none"


# -- the scenario -------------------------------------------------------------------------


class Scenario:
    """One crash scenario: a configured bridge, its targets and its state; ``run`` kills it.

    Subclasses set the class attributes and implement ``records`` (the state as it is now,
    failing the test if it cannot be read), ``triggers`` and ``state_secrets``; they may
    override ``settle``, ``check_after_run``, ``final_checks`` and ``summary_lines``.
    """

    iterations = 50
    finish_every = 8  # every finish_every-th run is left to finish on its own
    latencies_ms: tuple[int, ...] = (0, 30, 120)  # emulator latency; kills land mid-request
    kill_spread = 1.2  # delays are drawn from 0 .. kill_spread x a clean run's duration
    min_kill_share = 3  # at least iterations // min_kill_share kills must land
    min_churn_revoked = 10
    min_held_published = 5
    min_http_checks = 20
    priority: tuple[str, ...] = ()  # labels of triggers the first aimed kills use, in order

    def __init__(
        self,
        root: Path,
        emu: Emulator,
        config: BridgeConfig,
        config_path: Path,
        targets: list[Target],
        env: dict[str, str],
        processes: list[subprocess.Popen[bytes]],
    ) -> None:
        self.root = root
        self.emu = emu
        self.config = config
        self.targets = targets
        self.bridge = Bridge(root, config_path, env, processes)

    # -- what a scenario provides ------------------------------------------------------

    def records(self) -> dict[str, PolicyRecord]:
        raise NotImplementedError

    def triggers(self) -> list[Trigger]:
        raise NotImplementedError

    def state_secrets(self) -> list[str]:
        """Problems: key-shaped strings anywhere in the state storage."""
        raise NotImplementedError

    def settle(self, run: RunLog) -> None:
        """After a run ended (killed or not), before its leftovers are read."""

    def check_after_run(
        self, run: RunLog, records: dict[str, PolicyRecord], *, final: bool = False
    ) -> list[str]:
        """Violations visible right after a run (bootstrap or loop), or (``final``) after
        the clean run."""
        return []

    def final_checks(self, records: dict[str, PolicyRecord]) -> list[str]:
        """Store-specific problems after the clean run."""
        return []

    def summary_lines(self) -> list[str]:
        return []

    # -- the loop and the checks -------------------------------------------------------

    def run(self, seed: int, stoppers: list[Callable[[], None]]) -> str:
        """Bootstrap, kill ``iterations`` runs, make one clean run, check; the summary."""
        rng = random.Random(seed)
        emu, bridge = self.emu, self.bridge
        watcher = Watcher(emu, self.targets).start()
        stoppers.append(watcher.stop)

        # Bootstrap, then measure a clean run (every policy due) at each latency. Runs left
        # to finish in the loop add to the measurements, so the spread follows the load.
        seen_after_runs: list[str] = []  # violations visible right after a run
        durations: dict[float, list[float]] = {}
        try:
            run, _ = bridge.clean_run()
            seen_after_runs += self.after_run(run)[1]
            for latency in self.latencies_ms:
                emu.set_faults(latency_ms=latency)
                time.sleep(1.05)  # let rotate_every pass for every policy
                run, elapsed = bridge.clean_run()
                seen_after_runs += self.after_run(run)[1]
                durations[latency] = [elapsed]
        except AssertionError as exc:  # a bootstrap run failed: say what consumers saw
            exc.add_note("\n".join(["watcher so far:", *tally(watcher.violations)]))
            raise

        held_published: set[str] = set()  # ids of held keys ever current or superseded
        unfinished: Counter[str] = Counter()  # "policy: phase" left behind by a kill
        last_event: Counter[str] = Counter()  # "policy: event" last logged before a kill
        aimed: Counter[str] = Counter()  # "trigger: outcome" of the aimed kills
        triggers = self.triggers()
        first = [t for label in self.priority for t in triggers if t.label == label]
        assert len(first) == len(self.priority), "a priority trigger is not in triggers()"
        kills = finished = 0
        failed_runs: list[str] = []
        started = time.monotonic()
        for i in range(self.iterations):
            latency = rng.choice(self.latencies_ms)
            emu.set_faults(latency_ms=latency)
            delay = rng.uniform(0, self.kill_spread * statistics.median(durations[latency]))
            trigger = rng.choice(triggers)
            let_finish = i % self.finish_every == self.finish_every - 1
            began = time.monotonic()
            proc, run = bridge.start()
            run.latency_ms = latency
            if let_finish:
                run.returncode = proc.wait(timeout=60)
                durations[latency].append(time.monotonic() - began)
            elif i % 2:  # aimed: right after an observable step
                trigger = first.pop(0) if first else trigger
                run.killed = kill_when(proc, trigger.armed(run))
                run.returncode = proc.wait(timeout=10)
                aimed[f"{trigger.label}: {'killed' if run.killed else 'finished first'}"] += 1
            else:  # at a random instant
                run.delay = delay
                time.sleep(delay)
                if proc.poll() is None:
                    proc.kill()
                    run.killed = True
                run.returncode = proc.wait(timeout=10)
            if run.killed:
                kills += 1
            else:
                finished += 1
                if run.returncode != 0:
                    failed_runs.append(failure(run))

            # What the run left behind.
            records, seen = self.after_run(run)
            seen_after_runs += seen
            fps = target_fingerprints(self.targets)
            held_published |= published_ids(records.get(HELD))
            if run.killed:
                events = run.last_events()
                for policy in self.config.policy:
                    phase = phase_after_kill(
                        policy.name, records.get(policy.name), self.targets, fps
                    )
                    if phase:
                        unfinished[f"{policy.name}: {phase}"] += 1
                    last_event[f"{policy.name}: {events.get(policy.name, '(none yet)')}"] += 1
        loop_seconds = time.monotonic() - started

        # Requests a killed run left in flight may still land; let them, then one clean run.
        emu.set_faults(latency_ms=0)
        time.sleep(max(self.latencies_ms) / 1000 + 0.3)
        final, _ = bridge.clean_run(check=False)
        self.settle(final)
        time.sleep(0.2)  # a last round of watcher checks on the final payloads
        watcher.stop()

        problems = tally(watcher.violations, prefix="watcher: ")
        problems += tally(seen_after_runs, prefix="after a run: ")
        # Runs' outputs are long: they go last, after the summary.
        if final.returncode != 0:
            failed_runs.insert(0, f"the clean run failed: {failure(final)}")
            problems.append("the clean run failed (output below)")
        if failed_runs:
            problems.append(f"{len(failed_runs)} run(s) that were not killed failed (output below)")

        records, seen = self.after_run(final, final=True)
        keys = bridge_keys(emu)
        held_published |= published_ids(records.get(HELD))
        held_published |= watcher.seen_key_ids.get(HELD, set())
        problems += self._common_checks(records, keys, held_published)
        problems += [f"after the clean run: {problem}" for problem in seen]
        problems += self.final_checks(records)
        problems += self.state_secrets()
        for run in bridge.runs:
            found = secrets_in(run.text())
            if found:
                problems.append(
                    f"SECRET in output of run {run.index}: {found} key-shaped string(s)"
                )

        # The test must not be vacuous.
        for target in self.targets:
            checks, reads = watcher.checks[target.name], watcher.reads[target.name]
            if checks < self.min_http_checks or reads < target.min_reads:
                problems.append(
                    f"vacuous: {target.name} checked only {checks} times over HTTP "
                    f"and {reads} times in-process"
                )
        if kills < self.iterations // self.min_kill_share:
            problems.append(f"vacuous: only {kills} kills landed")
        if not unfinished:
            problems.append("vacuous: no kill left a generation minting or publishing")
        churn_revoked = sum(
            1 for k in keys if k["deleted"] and policy_of(k["description"]) == CHURN
        )
        if churn_revoked < self.min_churn_revoked:
            problems.append(f"vacuous: only {churn_revoked} {CHURN} keys were ever deleted")
        if len(held_published) < self.min_held_published:
            problems.append(f"vacuous: only {len(held_published)} {HELD} keys were ever published")

        logged = Counter(
            line.split()[2]  # timestamp, level, event
            for run in bridge.runs
            for line in run.err.read_text(encoding="utf-8", errors="replace").splitlines()
            if len(line.split()) > 3 and line.split()[2] in ENGINE_EVENTS
        )
        run_times = ", ".join(
            f"{statistics.median(d):.2f}s@{lat}ms" for lat, d in durations.items()
        )
        checks = ", ".join(
            f"{t.name} {watcher.checks[t.name]}/{watcher.reads[t.name]}" for t in self.targets
        )
        out = self.root / "out"
        leftovers = [p for p in out.iterdir() if p.name.endswith(".tmp")] if out.is_dir() else []
        summary = "\n".join(
            [
                f"crash test ({type(self).__name__}): seed={seed} iterations={self.iterations} "
                f"kills={kills} finished={finished} loop={loop_seconds:.1f}s "
                f"clean run (median): {run_times}",
                f"  left unfinished by a kill: {counts(unfinished)}",
                f"  aimed kills: {counts(aimed)}",
                f"  last event before a kill: {counts(last_event)}",
                "  events logged by all runs: " + ", ".join(f"{k} x{n}" for k, n in logged.items()),
                f"  watcher checks (HTTP / fast): {checks}",
                f"  keys: {len(keys)} bridge keys minted, {sum(k['deleted'] for k in keys)} "
                f"deleted ({churn_revoked} of {CHURN}); {len(held_published)} {HELD} keys "
                "published, none may be deleted",
                f"  temporary files left in targets' folder by kills: {len(leftovers)}",
                *(f"  {line}" for line in self.summary_lines()),
            ]
        )
        outputs = "\n".join(failed_runs[:3])
        assert not problems, f"seed={seed}: {len(problems)} problem(s):\n" + redact(
            "\n".join(problems) + "\n" + summary + "\n" + outputs
        )
        return summary

    def after_run(
        self, run: RunLog, *, final: bool = False
    ) -> tuple[dict[str, PolicyRecord], list[str]]:
        """The state a run left, and the violations visible in it right away."""
        self.settle(run)
        records = self.records()
        problems = self.check_after_run(run, records, final=final)
        problems += self.unrecorded_versions(records)
        problems += untraceable_keys(records, bridge_keys(self.emu))
        return records, problems

    def unrecorded_versions(self, records: dict[str, PolicyRecord]) -> list[str]:
        """A generation that reached consumers records its version in every target (what
        ``retire`` later cleans up), whichever run wrote it."""
        problems = []
        for policy in self.config.policy:
            record = records.get(policy.name)
            for g in record.by_phase(Phase.CURRENT, Phase.SUPERSEDED) if record else ():
                missing = [t.target_id for t in policy.target if t.target_id not in g.targets]
                if missing:
                    where = ", ".join(missing).replace(f"{self.root}/", "")
                    problems.append(
                        f"{policy.name}: {g.phase.value} generation records no version for {where}"
                    )
        return problems

    def _common_checks(
        self, records: dict[str, PolicyRecord], keys: list[dict[str, Any]], held_published: set[str]
    ) -> list[str]:
        problems: list[str] = []
        by_id = {k["id"]: k for k in keys}
        live_ids = {
            g.key_id for r in records.values() for g in r.generations if g.phase.live and g.key_id
        }

        # (1) No leak: every undeleted bridge key belongs to a live generation ...
        for listed in keys:
            if not listed["deleted"] and listed["id"] not in live_ids:
                problems.append(
                    f"LEAK: key {listed['short_key']} ({listed['description']}) in no live "
                    "generation"
                )
        # ... and every live generation's key still exists.
        for name, policy_record in records.items():
            for g in policy_record.live():
                if g.key_id and (g.key_id not in by_id or by_id[g.key_id]["deleted"]):
                    problems.append(
                        f"{name}: live generation {g.rotation_id} ({g.phase}) has a deleted key"
                    )

        # (2) Every target holds its policy's current key, and LangSmith accepts it.
        with httpx.Client(base_url=self.emu.url, timeout=10.0, trust_env=False) as client:
            for target in self.targets:
                policy_rec = records.get(target.policy)
                current = policy_rec.current() if policy_rec else None
                try:
                    key, workspace = target.read_key()
                except (Absent, ValueError) as exc:
                    problems.append(f"{target.name}: unreadable after the clean run ({exc})")
                    continue
                if current is None or fingerprint(key) != current.fingerprint:
                    problems.append(f"{target.name}: does not hold the current generation's key")
                status = consumer_status(client, key, workspace)
                if status != 200:
                    problems.append(f"{target.name}: published key answered {status}")

        # (3) Nothing unfinished; exactly one current generation per policy.
        for policy in self.config.policy:
            record = records.get(policy.name)
            if record is None:
                problems.append(f"{policy.name}: no record in the state")
                continue
            stuck = record.by_phase(Phase.MINTING, Phase.PUBLISHING)
            if stuck:
                left = [(g.rotation_id, g.phase.value) for g in stuck]
                problems.append(f"{policy.name}: left unfinished: {left}")
            currents = record.by_phase(Phase.CURRENT)
            if len(currents) != 1:
                problems.append(f"{policy.name}: {len(currents)} current generations")

        # (4) No premature revocation: a held key that ever reached consumers is never deleted.
        for key_id in sorted(held_published):
            listed_key = by_id.get(key_id)
            if listed_key is None or listed_key["deleted"]:
                short = listed_key["short_key"] if listed_key else key_id
                problems.append(
                    f"PREMATURE REVOCATION: {HELD} key {short} was published and is deleted"
                )
        return problems


def untraceable_keys(records: dict[str, PolicyRecord], keys: list[dict[str, Any]]) -> list[str]:
    """Every bridge key that exists has a record carrying its rotation id (the intent is
    saved before minting: a crash leaves a findable record), whatever its phase."""
    problems = []
    for listed in keys:
        if listed["deleted"]:
            continue
        policy = policy_of(listed["description"])
        rotation = listed["description"].rpartition("rotation=")[2]
        record = records.get(policy)
        if record is None or all(g.rotation_id != rotation for g in record.generations):
            problems.append(
                f"UNTRACEABLE: key {listed['short_key']} of {policy} (rotation {rotation}) "
                "exists with no generation in the state"
            )
    return problems


def published_ids(record: PolicyRecord | None) -> set[str]:
    """Ids of the keys of ``record``'s generations that reached consumers."""
    if record is None:
        return set()
    return {
        g.key_id
        for g in record.generations
        if g.phase in (Phase.CURRENT, Phase.SUPERSEDED) and g.key_id
    }


def run_and_report(
    seed: int, scenario: Callable[[], str], capfd: pytest.CaptureFixture[str]
) -> None:
    """Run ``scenario`` (noting the seed on failure), print its summary, and fail if
    anything key-shaped reached this test's own output."""
    try:
        summary = scenario()
    except BaseException as exc:
        exc.add_note(f"crash test seed={seed} (replay: BRIDGE_CRASH_SEED={seed})")
        raise
    print(summary)
    out, err = capfd.readouterr()
    leaked = secrets_in(out) + secrets_in(err)
    sys.stdout.write(out)
    sys.stderr.write(err)
    assert leaked == 0, f"seed={seed}: {leaked} key-shaped string(s) in the test's own output"


def crash_seed() -> int:
    return int(os.environ.get("BRIDGE_CRASH_SEED", DEFAULT_SEED))
