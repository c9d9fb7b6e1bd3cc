"""SIGKILL a real ``langsmith-bridge run`` at random instants, many times, then check the
invariants of DESIGN.md after one clean run.

Half the kills come after a random delay spread over a clean run's duration; the other half
are aimed: right after an observable step of the run (the N-th state write, a target's file
replaced, an engine event logged), because the windows between two local writes are too
short for random delays to hit. Every eighth run is left to finish.

While the loop runs, watcher threads play the consumers of every target: they re-read the
file, extract ``LANGSMITH_API_KEY`` and ask the emulator whether the key works (no outage;
the file is never missing or half-written once it exists). After the loop and one clean run:
no leaked bridge key, every target on the current key, no unfinished generation, no key of
the never-acknowledging policy ``held`` ever deleted, and no secret in the state, in any
run's output or in this test's own output.

Deterministic apart from timing: the delays come from a seeded ``random.Random``; set
``BRIDGE_CRASH_SEED`` to replay a seed (a failure prints it).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.config import BridgeConfig, FileStateSettings, FileTarget, load_config
from bridge.emulator import Emulator
from bridge.payload import API_KEY, WORKSPACE_ID, Format, decode
from bridge.secrets import KEY_PATTERN, fingerprint, redact
from bridge.state import Phase, PolicyRecord

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DEFAULT_SEED = 20240611
ITERATIONS = 50
FINISH_EVERY = 8  # every 8th iteration is left to finish on its own
LATENCIES_MS = (0, 30, 120)  # emulator latency per iteration; kills land mid-request
KILL_SPREAD = 1.2  # delays are drawn from 0 .. KILL_SPREAD x a clean run's duration
POLL_S = 0.0002  # how often a triggered kill looks for its event
TRIGGER_TIMEOUT_S = 30.0
FAST_INTERVAL_S = 0.003  # file read + in-process key lookup
HTTP_INTERVAL_S = 0.025  # a consumer's real call
HELD = "held"
BRIDGE_BIN = Path(sys.executable).with_name("langsmith-bridge")
ENGINE_EVENTS = ("minted", "published", "current", "revoked", "abandoned", "orphan_deleted")


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

# Rotates and revokes on every run, so kills land in every step.
[[policy]]
name = "churn"
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
ack = "grace"
rotate_every = "1s"
key_ttl = "2h"
target = [{{ provider = "file", path = "out/org.env", format = "dotenv" }}]
"""


# -- a consumer's view of a target --------------------------------------------------------


@dataclass(frozen=True)
class Target:
    policy: str
    path: Path
    format: Format
    verify_workspace: str | None  # mirrors Policy.verify_workspace

    @property
    def name(self) -> str:
        return f"{self.policy}:{self.path.name}"

    def read_key(self) -> tuple[str, str | None]:
        """The published key and the workspace a consumer would send it to.

        Raises:
            FileNotFoundError: the file is absent.
            ValueError: the file does not parse, or holds no key.
        """
        env = decode(self.path.read_text(encoding="utf-8"), self.format)
        key = env.get(API_KEY, "").strip()
        if not key:
            raise ValueError(f"no {API_KEY}")
        return key, env.get(WORKSPACE_ID) or self.verify_workspace


def targets_of(config: BridgeConfig) -> list[Target]:
    return [
        Target(policy.name, target.path, target.format, policy.verify_workspace)
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

    Per target, two threads: a fast one re-reads the file every few milliseconds (it must
    exist and parse once it has existed) and looks the key up in the emulator's state
    in-process (no request, so it can run often); a slower one makes the consumer's real
    first call over HTTP (``Policy.verify_workspace`` decides the route and ``X-Tenant-Id``).
    A rejected key is an outage only if the file still holds it when read again: a
    consumer re-reading the file would otherwise already have the new key.
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
        except FileNotFoundError:
            if target.name in self._existed:
                self._violation(f"{target.name}: file missing after it had existed")
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
        while not self._stop.wait(FAST_INTERVAL_S):
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
            while not self._stop.wait(HTTP_INTERVAL_S):
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
            parts = line.split()
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


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass(frozen=True)
class Trigger:
    """An observable instant inside a run, to kill it right after.

    Random delays mostly land between requests; the windows between two local writes (one
    target written, the next not yet; a key deleted, its generation not yet marked) last a
    millisecond or so and need aiming. Kinds: ``state N`` (the N-th replacement of the state
    file in this run), ``target NAME`` (that target's file replaced), ``log EVENT`` (the run
    logged that engine event, for any policy).
    """

    kind: str
    arg: str
    path: Path | None = None  # the file watched by ``state`` and ``target``

    @property
    def label(self) -> str:
        return f"{self.kind} {self.arg}"

    def armed(self, run: RunLog) -> Callable[[], bool]:
        """A predicate that turns true once the instant has passed in ``run``."""
        if self.kind == "log":
            needle = f"{self.arg} policy="
            return lambda: needle in run.err.read_text(encoding="utf-8", errors="replace")
        assert self.path is not None
        path, wanted = self.path, int(self.arg) if self.kind == "state" else 1
        last, seen = _signature(path), 0

        def fired() -> bool:
            nonlocal last, seen
            now = _signature(path)
            if now != last:
                last, seen = now, seen + 1
            return seen >= wanted

        return fired


def kill_when(proc: subprocess.Popen[bytes], fired: Callable[[], bool]) -> bool:
    """SIGKILL ``proc`` as soon as ``fired()``; ``False`` if the run ended first."""
    deadline = time.monotonic() + TRIGGER_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        if fired():
            proc.kill()
            return True
        time.sleep(POLL_S)
    return False


# -- reading the state --------------------------------------------------------------------


def load_records(path: Path) -> dict[str, PolicyRecord]:
    """Every policy's record; the state file must parse whenever it is read (atomic writes)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {name: PolicyRecord.model_validate(raw) for name, raw in data["policies"].items()}
    except (OSError, ValueError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
        pytest.fail(f"state file {path.name} is unreadable: {type(exc).__name__}")


def target_fingerprints(targets: list[Target]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for target in targets:
        try:
            found[target.name] = fingerprint(target.read_key()[0])
        except (OSError, ValueError):
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


# -- the test -----------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_sigkill_at_random_instants_keeps_invariants(
    tmp_path: Path,
    emulator: Emulator,
    processes: list[subprocess.Popen[bytes]],
    stoppers: list[Callable[[], None]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    seed = int(os.environ.get("BRIDGE_CRASH_SEED", DEFAULT_SEED))
    try:
        summary = _scenario(seed, tmp_path, emulator, processes, stoppers)
    except BaseException as exc:
        exc.add_note(f"crash test seed={seed} (replay: BRIDGE_CRASH_SEED={seed})")
        raise
    print(summary)
    out, err = capfd.readouterr()
    leaked = secrets_in(out) + secrets_in(err)
    sys.stdout.write(out)
    sys.stderr.write(err)
    assert leaked == 0, f"seed={seed}: {leaked} key-shaped string(s) in the test's own output"


def _scenario(
    seed: int,
    root: Path,
    emu: Emulator,
    processes: list[subprocess.Popen[bytes]],
    stoppers: list[Callable[[], None]],
) -> str:
    rng = random.Random(seed)
    config_path = root / "bridge.toml"
    config_path.write_text(_config_text(emu.url, emu.bootstrap["workspace_ids"]), encoding="utf-8")
    config = load_config(config_path)
    assert isinstance(config.state, FileStateSettings)
    state_path = config.state.path
    targets = targets_of(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH", "HTTP", "HTTPS"))}
    env |= {
        "LANGSMITH_ADMIN_KEY": emu.bootstrap["admin_key"],
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    bridge = Bridge(root, config_path, env, processes)
    watcher = Watcher(emu, targets).start()
    stoppers.append(watcher.stop)

    # Bootstrap, then measure a clean run (every policy due) at each latency. Runs left to
    # finish in the loop add to the measurements, so the spread follows the machine's load.
    bridge.clean_run()
    durations: dict[float, list[float]] = {}
    for latency in LATENCIES_MS:
        emu.set_faults(latency_ms=latency)
        time.sleep(1.05)  # let rotate_every pass for every policy
        durations[latency] = [bridge.clean_run()[1]]

    held_published: set[str] = set()  # ids of held keys ever current or superseded
    unfinished: Counter[str] = Counter()  # "policy: phase" left behind by a kill
    last_event: Counter[str] = Counter()  # "policy: event" last logged before a kill
    aimed: Counter[str] = Counter()  # "trigger: outcome" of the aimed kills
    triggers = [
        *(Trigger("state", str(n), state_path) for n in range(1, 7)),
        *(Trigger("target", t.name, t.path) for t in targets),
        *(Trigger("log", event) for event in ENGINE_EVENTS[:4]),
    ]
    kills = finished = 0
    failed_runs: list[str] = []
    started = time.monotonic()
    for i in range(ITERATIONS):
        latency = rng.choice(LATENCIES_MS)
        emu.set_faults(latency_ms=latency)
        delay = rng.uniform(0, KILL_SPREAD * statistics.median(durations[latency]))
        trigger = rng.choice(triggers)
        let_finish = i % FINISH_EVERY == FINISH_EVERY - 1
        began = time.monotonic()
        proc, run = bridge.start()
        run.latency_ms = latency
        if let_finish:
            run.returncode = proc.wait(timeout=60)
            durations[latency].append(time.monotonic() - began)
        elif i % 2:  # aimed: right after an observable step
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

        # What the kill left behind. The state file must always parse (atomic writes).
        records = load_records(state_path)
        fps = target_fingerprints(targets)
        for generation in records[HELD].generations if HELD in records else ():
            if generation.phase in (Phase.CURRENT, Phase.SUPERSEDED) and generation.key_id:
                held_published.add(generation.key_id)
        if run.killed:
            events = run.last_events()
            for policy in config.policy:
                phase = phase_after_kill(policy.name, records.get(policy.name), targets, fps)
                if phase:
                    unfinished[f"{policy.name}: {phase}"] += 1
                last_event[f"{policy.name}: {events.get(policy.name, '(none yet)')}"] += 1
    loop_seconds = time.monotonic() - started

    # Requests a killed run left in flight may still land; let them, then one clean run.
    emu.set_faults(latency_ms=0)
    time.sleep(max(LATENCIES_MS) / 1000 + 0.3)
    final, _ = bridge.clean_run(check=False)
    time.sleep(0.2)  # a last round of watcher checks on the final payloads
    watcher.stop()

    problems: list[str] = []
    violations = Counter(watcher.violations)
    problems += [f"watcher: {v} (x{n})" for v, n in list(violations.items())[:20]]
    if len(violations) > 20:
        problems.append(f"watcher: ... and {len(violations) - 20} more kinds of violation")
    # Runs' outputs are long: they go last, after the summary.
    if final.returncode != 0:
        failed_runs.insert(0, f"the clean run failed: {failure(final)}")
        problems.append("the clean run failed (output below)")
    if failed_runs:
        problems.append(f"{len(failed_runs)} run(s) that were not killed failed (output below)")

    records = load_records(state_path)
    keys = bridge_keys(emu)
    by_id = {k["id"]: k for k in keys}
    live_ids = {
        g.key_id for r in records.values() for g in r.generations if g.phase.live and g.key_id
    }

    # (1) No leak: every undeleted bridge key belongs to a live generation ...
    for listed in keys:
        if not listed["deleted"] and listed["id"] not in live_ids:
            problems.append(
                f"LEAK: key {listed['short_key']} ({listed['description']}) in no live generation"
            )
    # ... and every live generation's key still exists.
    for name, policy_record in records.items():
        for g in policy_record.live():
            if g.key_id and (g.key_id not in by_id or by_id[g.key_id]["deleted"]):
                problems.append(
                    f"{name}: live generation {g.rotation_id} ({g.phase}) has a deleted key"
                )

    # (2) Every target holds its policy's current key, and LangSmith accepts it.
    with httpx.Client(base_url=emu.url, timeout=10.0, trust_env=False) as client:
        for target in targets:
            policy_rec = records.get(target.policy)
            current = policy_rec.current() if policy_rec else None
            try:
                key, workspace = target.read_key()
            except (OSError, ValueError) as exc:
                problems.append(f"{target.name}: unreadable after the clean run ({exc})")
                continue
            if current is None or fingerprint(key) != current.fingerprint:
                problems.append(f"{target.name}: does not hold the current generation's key")
            status = consumer_status(client, key, workspace)
            if status != 200:
                problems.append(f"{target.name}: published key answered {status}")

    # (3) Nothing unfinished; exactly one current generation per policy.
    for policy in config.policy:
        record = records.get(policy.name)
        if record is None:
            problems.append(f"{policy.name}: no record in the state")
            continue
        stuck = record.by_phase(Phase.MINTING, Phase.PUBLISHING)
        if stuck:
            problems.append(
                f"{policy.name}: left unfinished: {[(g.rotation_id, g.phase.value) for g in stuck]}"
            )
        currents = record.by_phase(Phase.CURRENT)
        if len(currents) != 1:
            problems.append(f"{policy.name}: {len(currents)} current generations")

    # (4) No premature revocation: a held key that ever reached consumers is never deleted.
    for g in records[HELD].generations if HELD in records else ():
        if g.phase in (Phase.CURRENT, Phase.SUPERSEDED) and g.key_id:
            held_published.add(g.key_id)
    held_published |= watcher.seen_key_ids.get(HELD, set())
    for key_id in sorted(held_published):
        listed_key = by_id.get(key_id)
        if listed_key is None or listed_key["deleted"]:
            short = listed_key["short_key"] if listed_key else key_id
            problems.append(
                f"PREMATURE REVOCATION: {HELD} key {short} was published and is deleted"
            )

    # (5) No secret in the state (temporary files and locks included) or in any run's output.
    for path in sorted(p for p in state_path.parent.rglob("*") if p.is_file()):
        found = secrets_in(path.read_text(encoding="utf-8", errors="replace"))
        if found:
            problems.append(f"SECRET in state file {path.name}: {found} key-shaped string(s)")
    for run in bridge.runs:
        found = secrets_in(run.text())
        if found:
            problems.append(f"SECRET in output of run {run.index}: {found} key-shaped string(s)")

    # The test must not be vacuous.
    for target in targets:
        if watcher.checks[target.name] < 20 or watcher.reads[target.name] < 200:
            problems.append(
                f"vacuous: {target.name} checked only {watcher.checks[target.name]} times "
                f"over HTTP and {watcher.reads[target.name]} times in-process"
            )
    if kills < ITERATIONS // 3:
        problems.append(f"vacuous: only {kills} kills landed")
    if not unfinished:
        problems.append("vacuous: no kill left a generation minting or publishing")
    churn_revoked = sum(1 for k in keys if k["deleted"] and policy_of(k["description"]) == "churn")
    if churn_revoked < 10:
        problems.append(f"vacuous: only {churn_revoked} churn keys were ever deleted")
    if len(held_published) < 5:
        problems.append(f"vacuous: only {len(held_published)} {HELD} keys were ever published")

    logged = Counter(
        line.split()[1]
        for run in bridge.runs
        for line in run.err.read_text(encoding="utf-8", errors="replace").splitlines()
        if len(line.split()) > 2 and line.split()[1] in ENGINE_EVENTS
    )
    run_times = ", ".join(f"{statistics.median(d):.2f}s@{lat}ms" for lat, d in durations.items())
    checks = ", ".join(
        f"{t.name} {watcher.checks[t.name]}/{watcher.reads[t.name]}" for t in targets
    )
    leftovers = sorted(p.name for p in (root / "out").iterdir() if p.name.endswith(".tmp"))
    summary = "\n".join(
        [
            f"crash test: seed={seed} iterations={ITERATIONS} kills={kills} finished={finished} "
            f"loop={loop_seconds:.1f}s clean run (median): {run_times}",
            "  left unfinished by a kill: "
            + (", ".join(f"{k} x{n}" for k, n in sorted(unfinished.items())) or "none"),
            "  aimed kills: " + ", ".join(f"{k} x{n}" for k, n in sorted(aimed.items())),
            "  last event before a kill: "
            + ", ".join(f"{k} x{n}" for k, n in sorted(last_event.items())),
            "  events logged by all runs: " + ", ".join(f"{k} x{n}" for k, n in logged.items()),
            f"  watcher checks (HTTP / in-process): {checks}",
            f"  keys: {len(keys)} bridge keys minted, {sum(k['deleted'] for k in keys)} deleted; "
            f"{len(held_published)} {HELD} keys published, none may be deleted",
            f"  temporary files left in targets' folder by kills: {len(leftovers)}",
        ]
    )
    outputs = "\n".join(failed_runs[:3])
    assert not problems, f"seed={seed}: {len(problems)} problem(s):\n" + redact(
        "\n".join(problems) + "\n" + summary + "\n" + outputs
    )
    return summary
