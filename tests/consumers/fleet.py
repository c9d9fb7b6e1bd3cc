"""The machinery of the consumers' test: the bridge's configuration, its runs (some
SIGKILLed), the consumer replicas, and what the emulator, the stores (``stores``) and
the logs show afterwards.

Nothing here decides whether the test passes; ``test_consumers_eye`` does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bridge.emulator import Emulator
from tests.consumers.stores import Stores, secrets_in, secrets_in_tree
from tests.crash.harness import subprocess_env

REPO = Path(__file__).resolve().parents[2]
BRIDGE_BIN = Path(sys.executable).with_name("langsmith-bridge")

AUTH_CACHE_DELAY_S = 2.0  # emulator: a new key is refused, and a deleted one still works, this long
LAST_USED_GRANULARITY_S = 2.0  # emulator: last_used_at moves at most this often
EVERY_S = 3  # run.every (file stores; see Stores.every_s): a run this often, or when one ends
VERIFY_DELAY_S = 1  # run.verify_delay (whole seconds: the config's durations are integers)
VERIFY_ATTEMPTS = 15
USAGE_QUIET_S = 5  # > a consumer's longest gap (~1 s) + auth cache (2 s) + last_used step (2 s)
MAX_KILLS_IN_A_ROW = 2
CONSUMER_INTERVAL_S = 0.5
PAUSE_S = 5  # a replica stalled (SIGSTOP) this long, well within replica_ttl, holds its gate
REPLICA_TTL_S = 10
AIM_TIMEOUT_S = 6.0  # an aimed kill waits this long for its event, then lets the run finish


@dataclass(frozen=True)
class PolicySpec:
    """One policy of the test's bridge, and how long its keys may live."""

    name: str
    gate: str
    rotate_every_s: int
    min_overlap_s: int
    key_ttl_s: int
    target: str  # the file variant's target, relative to the bridge's folder
    format: str  # dotenv | json (the file variant; Secret Manager versions are JSON)
    consumers: tuple[str, ...] = ()
    gate_wait_s: int = 0  # what the gate waits beyond min_overlap (usage: two quiet spells)

    def bound_s(self, every_s: int = EVERY_S) -> float:
        """How long after its creation a key must be gone, the bridge running every
        ``every_s``: ``rotate_every + run.every + min_overlap`` plus slack, itself the sum
        of: the run after the gate opened comes up to ``run.every`` later; the successor's
        verification waits out the auth cache; kills cost up to ``MAX_KILLS_IN_A_ROW`` runs;
        2 s of scheduling; and what the gate itself waits for (``gate_wait_s``)."""
        slack = (
            every_s
            + AUTH_CACHE_DELAY_S
            + VERIFY_DELAY_S
            + MAX_KILLS_IN_A_ROW * every_s
            + 2
            + self.gate_wait_s
        )
        return self.rotate_every_s + every_s + self.min_overlap_s + slack


# ``tracing`` waits for every replica of both consumers (explicit acks with proofs), a
# stalled one included; ``batch`` is org-wide (LANGSMITH_WORKSPACE_ID published) and waits
# for its old key to fall idle on LangSmith's clock, read through the coarse last_used_at.
TRACING = PolicySpec(
    "tracing",
    "explicit",
    4,
    2,
    40,
    "out/tracing.env",
    "dotenv",
    consumers=("api", "worker"),
    gate_wait_s=PAUSE_S + 1,
)
BATCH = PolicySpec(
    "batch",
    "usage",
    2,  # due at every run: each run rotates at least this policy
    1,
    60,
    "out/batch.json",
    "json",
    gate_wait_s=2 * USAGE_QUIET_S + int(LAST_USED_GRANULARITY_S + AUTH_CACHE_DELAY_S),
)
POLICIES = (TRACING, BATCH)

# consumer -> (replicas, the policies each replica traces with; ":noack" = not acknowledged)
CONSUMERS: dict[str, tuple[int, tuple[str, ...]]] = {
    "api": (3, ("tracing",)),
    "worker": (2, ("tracing", "batch:noack")),
}
# Only replicas of these are paused: a stall longer than usage_quiet allows for is outside
# what the usage gate promises (README, "usage_quiet"), and worker traces under batch.
PAUSED_CONSUMERS = ("api",)


def config_text(url: str, workspaces: list[str], stores: Stores) -> str:
    """The bridge's configuration: ``stores``' targets and state, runs every
    ``stores.every_s``."""
    ws0, ws1 = workspaces[:2]
    return f"""
[langsmith]
endpoint = "{url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"
instance = "consumers-eye"   # kept when the state is lost, so its keys stay its own
timeout = "5s"
max_attempts = 3             # worst call 5s x 3 + 10s x 2 = 35s; lease_ttl >= 3 x that

{stores.state_toml()}
[run]
every = "{stores.every_s}s"
lease_ttl = "2m"
verify_attempts = {VERIFY_ATTEMPTS}
verify_delay = "{VERIFY_DELAY_S}s"

[[policy]]
name = "{TRACING.name}"
workspaces = ["{ws0}"]
consumers = {json.dumps(list(TRACING.consumers))}
ack = "{TRACING.gate}"
replica_ttl = "{REPLICA_TTL_S}s"
rotate_every = "{TRACING.rotate_every_s}s"
min_overlap = "{TRACING.min_overlap_s}s"
key_ttl = "{TRACING.key_ttl_s}s"
target = [{stores.target_toml(TRACING)}]

[[policy]]
name = "{BATCH.name}"
default_workspace = "{ws1}"
ack = "{BATCH.gate}"
usage_quiet = "{USAGE_QUIET_S}s"
rotate_every = "{BATCH.rotate_every_s}s"
min_overlap = "{BATCH.min_overlap_s}s"
key_ttl = "{BATCH.key_ttl_s}s"
target = [{stores.target_toml(BATCH)}]
"""


__all__ = ["secrets_in", "secrets_in_tree"]  # re-exported for the test


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


# -- the bridge's runs ----------------------------------------------------------------


@dataclass
class RunLog:
    index: int
    out: Path
    err: Path
    started: float  # wall clock
    ended: float = 0.0
    returncode: int | None = None
    killed: bool = False
    kill_after: float | None = None
    kill_on: str | None = None  # the engine event an aimed kill waited for
    pid: int = 0
    leases_expired: int = 0  # killed: the leases it left, expired by the test
    leases_left: int = 0  # finished: the leases it did not release

    def text(self) -> str:
        return read_text(self.out) + read_text(self.err)

    def events(self) -> Iterator[dict[str, Any]]:
        """The engine events this run logged (JSON lines)."""
        for line in read_text(self.err).splitlines():
            if line.startswith("{"):
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # a line cut short by SIGKILL


class Bridge:
    """``langsmith-bridge run`` as a subprocess, in ``root``, on ``stores``."""

    def __init__(
        self,
        root: Path,
        admin_key: str,
        processes: list[subprocess.Popen[bytes]],
        stores: Stores,
    ) -> None:
        self.root = root
        self.stores = stores
        self.config = root / "bridge.toml"
        self.env = subprocess_env(LANGSMITH_ADMIN_KEY=admin_key)
        self.processes = processes
        self.runs: list[RunLog] = []
        (root / "logs").mkdir(exist_ok=True)

    def run(self, kill_after: float | None = None, kill_on: str | None = None) -> RunLog:
        """One run; SIGKILLed, if still running, ``kill_after`` seconds in or, with
        ``kill_on``, that many seconds after it logged that engine event (random delays
        mostly land while a run waits on LangSmith; aimed ones land between its writes)."""
        index = len(self.runs)
        logs = self.root / "logs"
        run = RunLog(index, logs / f"run-{index:03d}.out", logs / f"run-{index:03d}.err", 0.0)
        command = [str(BRIDGE_BIN), "--log-level", "info", "--log-format", "json"]
        with run.out.open("wb") as out, run.err.open("wb") as err:
            run.started = time.time()
            proc = subprocess.Popen(
                [*command, "-c", str(self.config), "run"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env,
                cwd=self.root,
            )
        self.processes.append(proc)
        self.runs.append(run)
        run.kill_after, run.kill_on, run.pid = kill_after, kill_on, proc.pid
        if kill_on is not None and not self._logged(run, proc, kill_on):
            kill_after = None  # the run never got there: let it finish
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.kill()
                run.killed = True
        run.returncode = proc.wait(timeout=90)
        run.ended = time.time()
        if run.killed:
            run.leases_expired = self.stores.settle(proc.pid)
        else:
            run.leases_left = self.stores.leases_held(proc.pid)
        return run

    @staticmethod
    def _logged(run: RunLog, proc: subprocess.Popen[bytes], event: str) -> bool:
        """Wait until ``run`` logs ``event`` (True) or ends or times out (False)."""
        needle = f'"event": "{event}"'
        limit = time.monotonic() + AIM_TIMEOUT_S
        while time.monotonic() < limit and proc.poll() is None:
            if needle in read_text(run.err):
                return True
            time.sleep(0.002)
        return False

    def events(self) -> Iterator[tuple[RunLog, dict[str, Any]]]:
        for run in self.runs:
            for item in run.events():
                yield run, item


# -- the consumers -----------------------------------------------------------------------


@dataclass
class Replica:
    consumer: str
    name: str
    policies: tuple[str, ...]
    report: Path
    out: Path
    err: Path
    proc: subprocess.Popen[bytes] | None = None

    def read_report(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.report.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return data

    def output(self) -> str:
        return read_text(self.out) + read_text(self.err)


@dataclass
class Fleet:
    """Every consumer replica: one ``python -m tests.consumers.app`` process each."""

    root: Path
    processes: list[subprocess.Popen[bytes]]
    replicas: list[Replica] = field(default_factory=list)

    @property
    def stop_file(self) -> Path:
        return self.root / "consumers" / "STOP"

    def start(self, config: Path, deadline: float) -> None:
        folder = self.root / "consumers"
        folder.mkdir(exist_ok=True)
        # The consumers never see the admin key; the SDK reads no profile of the host's.
        env = subprocess_env(
            PYTHONPATH=str(REPO), LANGSMITH_CONFIG_FILE=str(folder / "no-profile.json")
        )
        for consumer, (count, policies) in CONSUMERS.items():
            for i in range(count):
                name = f"{consumer}-{i}"
                replica = Replica(
                    consumer,
                    name,
                    policies,
                    folder / f"{name}.json",
                    folder / f"{name}.out",
                    folder / f"{name}.err",
                )
                command = [
                    sys.executable,
                    "-m",
                    "tests.consumers.app",
                    "--config",
                    str(config),
                    "--consumer",
                    consumer,
                    "--replica",
                    name,
                    *(arg for p in policies for arg in ("--policy", p)),
                    "--report",
                    str(replica.report),
                    "--deadline",
                    str(deadline),
                    "--stop-file",
                    str(self.stop_file),
                    "--interval",
                    str(CONSUMER_INTERVAL_S),
                ]
                with replica.out.open("wb") as out, replica.err.open("wb") as err:
                    replica.proc = subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        env=env,
                        cwd=folder,
                    )
                self.processes.append(replica.proc)
                self.replicas.append(replica)

    def wait_ready(self, timeout: float) -> list[str]:
        """Wait until every replica has finished a loop; the names of those that did not."""
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            late = [r.name for r in self.replicas if (r.read_report() or {}).get("loops", 0) < 1]
            dead = [r.name for r in self.replicas if r.proc and r.proc.poll() is not None]
            if not late or dead:
                return late
            time.sleep(0.1)
        return [r.name for r in self.replicas if (r.read_report() or {}).get("loops", 0) < 1]

    def stop(self, timeout: float) -> list[str]:
        """Ask every replica to stop, wait; the names of those that had to be killed."""
        self.stop_file.touch()
        killed = []
        limit = time.monotonic() + timeout
        for replica in self.replicas:
            assert replica.proc is not None
            try:
                replica.proc.wait(timeout=max(0.1, limit - time.monotonic()))
            except subprocess.TimeoutExpired:
                replica.proc.kill()
                replica.proc.wait(timeout=10)
                killed.append(replica.name)
        return killed


class Pauser:
    """Stalls replicas (SIGSTOP, then SIGCONT) on a schedule, from a thread of its own.

    Args:
        schedule: ``(seconds after start, replica, seconds stalled)``, in order.
    """

    def __init__(self, schedule: list[tuple[float, Replica, float]]) -> None:
        self.schedule = schedule
        self.done: list[tuple[str, float, float]] = []  # replica, stopped at, resumed at
        self._stop = threading.Event()
        self._paused: Replica | None = None
        self._thread = threading.Thread(target=self._pause_all, name="pauser", daemon=True)
        self._start = 0.0

    def start(self) -> Pauser:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=PAUSE_S + 5)
        self._resume()

    def _signal(self, replica: Replica, sig: signal.Signals) -> None:
        assert replica.proc is not None
        if replica.proc.poll() is None:
            os.kill(replica.proc.pid, sig)

    def _resume(self) -> None:
        replica, self._paused = self._paused, None
        if replica is not None:
            self._signal(replica, signal.SIGCONT)

    def _pause_all(self) -> None:
        try:
            for offset, replica, seconds in self.schedule:
                if self._stop.wait(max(0.0, self._start + offset - time.monotonic())):
                    return
                self._paused = replica
                stopped = time.time()
                self._signal(replica, signal.SIGSTOP)
                self._stop.wait(seconds)
                self._resume()
                self.done.append((replica.name, stopped, time.time()))
        finally:
            self._resume()


# -- what the emulator shows ----------------------------------------------------------------


@dataclass(frozen=True)
class KeyLife:
    """One bridge key, from the emulator's records (no secret)."""

    id: str
    short_key: str
    policy: str
    created: float
    deleted: float | None
    expires: float | None

    def ended(self, now: float) -> tuple[float, str] | None:
        """When and how the key stopped working by ``now``, or ``None`` if it still works."""
        ends = []
        if self.deleted is not None:
            ends.append((self.deleted, "deleted"))
        if self.expires is not None and self.expires <= now:
            ends.append((self.expires, "expired"))
        return min(ends) if ends else None


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def bridge_keys(emu: Emulator) -> list[KeyLife]:
    """Every key the bridge marked: listed by ``GET /_emulator/keys``; its deletion instant,
    which that hook does not show, from the emulator's record of it."""
    response = httpx.get(f"{emu.url}/_emulator/keys", timeout=10.0, trust_env=False)
    response.raise_for_status()
    keys = []
    for listed in response.json():
        if not listed["description"].startswith("langsmith-bridge:"):
            continue
        record = emu.state.get_key(listed["id"])
        assert record is not None, listed["short_key"]
        policy = listed["description"].split(" policy=", 1)[1].split(" ", 1)[0]
        keys.append(
            KeyLife(
                id=record.id,
                short_key=record.short_key,
                policy=policy,
                created=record.created_at.timestamp(),
                deleted=_epoch(record.deleted_at),
                expires=_epoch(record.expires_at),
            )
        )
    return keys


def runs_by_project(emu: Emulator) -> dict[str, int]:
    """Runs the emulator received, by project name (``GET /_emulator/runs``)."""
    response = httpx.get(f"{emu.url}/_emulator/runs", timeout=10.0, trust_env=False)
    response.raise_for_status()
    counts: dict[str, int] = {}
    for entry in response.json()["sessions"]:
        name = entry["session_name"] or entry["session_id"]
        counts[name] = counts.get(name, 0) + entry["runs"]
    return counts


def served_key_ids(emu: Emulator, stores: Stores, policies: Iterable[PolicySpec]) -> dict[str, str]:
    """Policy -> id of the key its target holds now (looked up in-process: the key itself
    never leaves this function)."""
    found = {}
    for policy in policies:
        current = [s for s in stores.served(policy) if s.current]
        record = emu.state.find_key(current[0].key) if current else None
        if record is not None:
            found[policy.name] = record.id
    return found


@dataclass(frozen=True)
class DeadServed:
    """A key a target hands out that LangSmith no longer accepts (no secret)."""

    policy: str
    where: str
    current: bool
    short_key: str | None  # None: a key LangSmith never issued
    key_id: str | None
    how: str  # deleted | expired | unknown


def dead_keys_served(
    emu: Emulator, stores: Stores, policies: Iterable[PolicySpec], now: float
) -> tuple[list[DeadServed], int]:
    """Keys the targets hand out that no longer work: the current one deleted, expired
    or unknown; any other served one (an ENABLED Secret Manager version) deleted or
    unknown. An older version holding an expired key is an orphan the state loss left to
    its ``expires_at`` (README, "heal"), not a revocation that missed it. Also returns how
    many keys the targets serve in all."""
    dead, served = [], 0
    for policy in policies:
        for item in stores.served(policy):
            served += 1
            record = emu.state.find_key(item.key)
            if record is None:
                unknown = DeadServed(policy.name, item.where, item.current, None, None, "unknown")
                dead.append(unknown)
                continue
            expires = _epoch(record.expires_at)
            if record.deleted_at is not None:
                how = "deleted"
            elif item.current and expires is not None and expires <= now:
                how = "expired"
            else:
                continue
            dead.append(
                DeadServed(policy.name, item.where, item.current, record.short_key, record.id, how)
            )
    return dead, served


def rel(t0: float, instant: float | None) -> str:
    """An instant as seconds since the test started (``t+12.3s``)."""
    return "never" if instant is None else f"t+{instant - t0:.1f}s"
