"""The proof, from the consumer's side: real applications tracing through rotations never
see a rejected key, even while the bridge is SIGKILLed at random and loses its state.

Five replicas of two consumers (``api`` x3, ``worker`` x2), each a separate process
(``tests/consumers/app.py``), trace continuously with the official ``langsmith`` SDK,
configured only from what ``bridge.consumer.load_settings`` exports, re-read their targets
every 0.5 s (acknowledging with a proof: the heartbeat) and switch SDK clients when the key
changes. Meanwhile the real ``langsmith-bridge run`` CLI runs every ``run.every`` against
the emulator, with LangSmith's auth cache (a new key is refused for its first 2 s, a
deleted one still works 2 s) and a coarse ``last_used_at`` switched on; it rotates both
policies every few seconds (``tracing``: explicit acks from both consumers; ``batch``:
org-wide, usage gate), is SIGKILLed at seeded random and aimed instants, and loses its
state once. ``api`` replicas are stalled (SIGSTOP) for a few seconds now and then: a
replica that has not moved on yet, but is alive, must keep its old key.

It runs twice, once per kind of store (``tests/consumers/stores.py``): ``file`` (file
targets, the SQLite state in the test's folder, lost by deleting its folder) and ``gcp``
(Google Secret Manager secrets on the in-process gRPC fake, which outlives every kill and
which bridge and consumers alike reach over loopback; the state in a fresh bucket of the
session's fake-gcs-server, lost by deleting every object under its prefix).

It passes only if no consumer ever got a 401/403 (or any other failed response), every
traced run arrived, no key outlived its policy's bound, no target hands out a key
LangSmith no longer accepts (for Secret Manager: neither ``current`` nor any other ENABLED
version), several rotations, revocations and kills actually happened, and no full key
appears in any output, report or stored state.
Set ``BRIDGE_CONSUMERS_SEED`` to replay a seed (a failure prints it); ``-s`` shows the
summary line.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge.emulator import Emulator
from bridge.secrets import redact
from tests.consumers.fleet import (
    CONSUMER_INTERVAL_S,
    CONSUMERS,
    MAX_KILLS_IN_A_ROW,
    PAUSE_S,
    PAUSED_CONSUMERS,
    POLICIES,
    Bridge,
    Fleet,
    KeyLife,
    Pauser,
    Replica,
    RunLog,
    bridge_keys,
    config_text,
    dead_keys_served,
    rel,
    runs_by_project,
    secrets_in,
    served_key_ids,
)
from tests.consumers.stores import Stores

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DEFAULT_SEED = 20250307
RANDOM_KILL_CHANCE = 0.2  # per run: SIGKILL at a random instant ...
AIMED_KILL_CHANCE = 0.3  # ... or right after one of these engine events
AIM_AT = ("minted", "published", "current", "revoked")
PAUSES = 3  # api replicas stalled for PAUSE_S, one at a time, spread over the loop
MIN_KILLS = 4
MIN_ROTATIONS = 4  # per policy
MIN_REVOKED = 3  # per policy: keys the bridge deleted
MIN_KEYS_PER_REPLICA = 3  # per policy a replica traces with
MIN_RUNS_PER_FEED = 40  # runs a replica traced per policy


@dataclass(frozen=True)
class Cadence:
    """How the loop runs the bridge, for a kind of stores (``Stores.every_s`` apart)."""

    iterations: int  # runs in the loop
    state_loss_before: int  # the state is deleted before this run of the loop
    kill_window_s: tuple[float, float]  # random kills land this far into a run

    @staticmethod
    def of(stores: Stores) -> Cadence:
        return CADENCES[stores.kind]


# kind of stores -> the loop's cadence: about 55 s of runs either way
CADENCES = {
    "file": Cadence(18, 8, (0.05, 2.6)),  # a rotating run takes ~2.4 s
    "gcp": Cadence(14, 6, (0.05, 3.6)),  # ... ~3.5 s, the Google clients' import included
}


@dataclass
class Loop:
    """What the loop did, for the checks and the summary."""

    kills: int = 0
    planned_kills: int = 0
    lost_at: float | None = None
    served_at_loss: dict[str, str] = field(default_factory=dict)
    recovered_at: float | None = None  # end of the first clean run after the loss
    lost_state_secrets: dict[str, int] = field(default_factory=dict)
    failed_runs: list[RunLog] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)  # kills that landed, by kind


def seed() -> int:
    return int(os.environ.get("BRIDGE_CONSUMERS_SEED", DEFAULT_SEED))


def loop_seconds(stores: Stores) -> float:
    return Cadence.of(stores).iterations * stores.every_s


def pause_schedule(
    rng: random.Random, fleet: Fleet, loop_s: float
) -> list[tuple[float, Replica, float]]:
    """``PAUSES`` stalls of paused-kind replicas, one per equal share of the loop."""
    share = loop_s / PAUSES
    candidates = [r for r in fleet.replicas if r.consumer in PAUSED_CONSUMERS]
    return [
        (k * share + rng.uniform(2, share - PAUSE_S - 2), rng.choice(candidates), PAUSE_S)
        for k in range(PAUSES)
    ]


def failure(run: RunLog) -> str:
    return f"run {run.index} exited {run.returncode}:\n{redact(run.text())[-3000:]}"


def drive(bridge: Bridge, emu: Emulator, stores: Stores, rng: random.Random) -> Loop:
    """The cadence's runs ``stores.every_s`` apart, some SIGKILLed, the state lost once."""
    cadence, every = Cadence.of(stores), stores.every_s
    loop = Loop()
    in_a_row = 0
    for i in range(cadence.iterations):
        slot = time.monotonic()
        # Drawn every iteration, whatever happens, so a seed replays the same schedule.
        draw, delay = rng.random(), rng.uniform(*cadence.kill_window_s)
        event, after = rng.choice(AIM_AT), rng.uniform(0.0, 0.03)
        kill = draw < RANDOM_KILL_CHANCE + AIMED_KILL_CHANCE and in_a_row < MAX_KILLS_IN_A_ROW
        aimed = kill and draw >= RANDOM_KILL_CHANCE
        in_a_row = in_a_row + 1 if kill else 0
        if i == cadence.state_loss_before:
            loop.served_at_loss = served_key_ids(emu, stores, POLICIES)
            loop.lost_at = time.time()
            loop.lost_state_secrets = stores.lose_state()
        if aimed:
            run = bridge.run(kill_after=after, kill_on=event)
        else:
            run = bridge.run(kill_after=delay if kill else None)
        loop.planned_kills += kill
        loop.kills += run.killed
        if run.killed:
            loop.kinds[f"after {event}" if aimed else "random"] += 1
        if not run.killed and run.returncode != 0:
            loop.failed_runs.append(run)
        if loop.lost_at and not loop.recovered_at and not run.killed and run.returncode == 0:
            loop.recovered_at = run.ended
        time.sleep(max(0.0, slot + every - time.monotonic()))
    return loop


# -- the checks -------------------------------------------------------------------------------


class Checks:
    """Every check of the test, each adding readable problems (never a full key)."""

    def __init__(
        self, t0: float, keys: list[KeyLife], loop: Loop, now: float, every_s: int
    ) -> None:
        self.t0 = t0
        self.every_s = every_s
        self.keys = keys
        self.loop = loop
        self.now = now
        self.problems: list[str] = []
        self._by_short = {k.short_key: k for k in keys}

    def key_story(self, short: str | None) -> str:
        """Where a key came from and where it went, for a failure message."""
        life = self._by_short.get(short or "")
        if life is None:
            return f"key {short} (unknown to the emulator's bridge keys)"
        end = life.ended(self.now)
        how = f"{end[1]} {rel(self.t0, end[0])}" if end else "still working"
        return f"key {short} of {life.policy} (created {rel(self.t0, life.created)}, {how})"

    def in_state_loss_window(self, at: float) -> bool:
        lost, back = self.loop.lost_at, self.loop.recovered_at
        return lost is not None and lost <= at <= (back or self.now) + 2 * CONSUMER_INTERVAL_S

    def consumer(self, name: str, report: dict[str, Any] | None) -> None:
        """What one replica saw: nothing refused, nothing failed, enough done."""
        if report is None:
            self.problems.append(f"{name}: wrote no report")
            return
        if report.get("crashed"):
            self.problems.append(f"{name}: crashed:\n{report['crashed']}")
        if not report.get("finished"):
            self.problems.append(f"{name}: did not finish cleanly (stopped by the test)")
        for item in report["http_failures"]:
            self.problems.append(
                f"{name}: HTTP {item['status']} on {item['method']} {item['path']} at "
                f"{rel(self.t0, item['at'])} with {self.key_story(item['key'])}: {item['body']}"
            )
        for policy, stats in report["policies"].items():
            where = f"{name}/{policy}"
            for kind in ("trace_errors", "read_errors"):
                for item in stats[kind]:
                    self.problems.append(
                        f"{where}: {kind[:-7]} failed (HTTP {item['status']}) at "
                        f"{rel(self.t0, item['at'])} with {self.key_story(item['key'])}: "
                        f"{item['error']}"
                    )
            for item in stats["load_errors"]:
                # An ack racing the deletion of the state folder may find it gone mid-call.
                if not (item["ack"] and self.in_state_loss_window(item["at"])):
                    self.problems.append(
                        f"{where}: load_settings(ack={item['ack']}) failed at "
                        f"{rel(self.t0, item['at'])}: {item['error']}"
                    )
            for item in stats["ack_refused"]:
                if not self.in_state_loss_window(item["at"]):
                    self.problems.append(
                        f"{where}: ack of {self.key_story(item['key'])} refused at "
                        f"{rel(self.t0, item['at'])}, outside the state-loss window: "
                        f"{item['error']}"
                    )
            if len(stats["keys"]) < MIN_KEYS_PER_REPLICA:
                self.problems.append(f"vacuous: {where} used only {len(stats['keys'])} keys")
            if stats["sent"] < MIN_RUNS_PER_FEED:
                self.problems.append(f"vacuous: {where} traced only {stats['sent']} runs")

    def traces(self, name: str, report: dict[str, Any] | None, counted: dict[str, int]) -> None:
        """Every run a replica traced arrived, under its own project."""
        for policy, stats in (report or {}).get("policies", {}).items():
            got = counted.get(stats["project"], 0)
            if got != stats["sent"]:
                self.problems.append(
                    f"{name}/{policy}: traced {stats['sent']} runs, LangSmith counted {got} "
                    f"in project {stats['project']}"
                )

    def key_lives(self, served_now: dict[str, str]) -> tuple[dict[str, float], int]:
        """No key outlived its policy's bound; the longest life per policy, and how many
        keys the state loss stranded."""
        specs = {p.name: p for p in POLICIES}
        longest: dict[str, float] = {}
        stranded_keys = 0
        current = set(served_now.values())
        lost_at = self.loop.lost_at
        served_at_loss = set(self.loop.served_at_loss.values())
        for key in self.keys:
            spec = specs[key.policy]
            end = key.ended(self.now)
            life = (end[0] if end else self.now) - key.created
            if key.id in current:
                if life > spec.bound_s(self.every_s):
                    self.problems.append(
                        f"{key.policy}: current key {key.short_key} is {life:.1f}s old, beyond "
                        f"the {spec.bound_s(self.every_s):.0f}s bound: rotation stalled"
                    )
                continue
            # The state lost, a superseded (or half-minted) key that no target served is an
            # orphan the bridge leaves to its expires_at (README, "heal"): its bound is key_ttl.
            alive_at_loss = (
                lost_at is not None and key.created < lost_at and (end is None or end[0] > lost_at)
            )
            stranded = alive_at_loss and key.id not in served_at_loss
            stranded_keys += stranded
            bound = spec.key_ttl_s + 1 if stranded else spec.bound_s(self.every_s)
            if not stranded:
                longest[key.policy] = max(longest.get(key.policy, 0.0), life)
            if life > bound:
                how = f"{end[1]} {rel(self.t0, end[0])}" if end else "still working"
                self.problems.append(
                    f"{key.policy}: key {key.short_key} lived {life:.1f}s (created "
                    f"{rel(self.t0, key.created)}, {how}), beyond its {bound:.0f}s bound"
                )
            elif end and end[1] == "expired" and not stranded:
                self.problems.append(
                    f"{key.policy}: key {key.short_key} was never revoked, it expired "
                    f"{rel(self.t0, end[0])}"
                )
        return longest, stranded_keys


def engine_counts(bridge: Bridge) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Per policy: rotations (a key made current over a previous one), revocations, adoptions."""
    rotations: Counter[str] = Counter()
    revoked: Counter[str] = Counter()
    adopted: Counter[str] = Counter()
    for _, item in bridge.events():
        policy = item.get("policy", "?")
        if item.get("event") == "current" and item.get("superseded"):
            rotations[policy] += 1
        elif item.get("event") == "revoked":
            revoked[policy] += 1
        elif item.get("event") == "adopted":
            adopted[policy] += 1
    return rotations, revoked, adopted


@dataclass
class Outcome:
    """Everything a scenario left behind, for the checks."""

    t0: float
    root: Path
    stores: Stores
    bridge: Bridge
    fleet: Fleet
    loop: Loop
    pauses: list[tuple[str, float, float]]
    final: RunLog
    loop_s: float
    stopped_by_force: list[str]


def play(
    root: Path, emu: Emulator, stores: Stores, processes: list[subprocess.Popen[bytes]]
) -> Outcome:
    """Bootstrap, start the replicas, drive the loop (pauses beside it), one final run,
    stop the replicas."""
    t0 = time.time()
    (root / "bridge.toml").write_text(
        config_text(emu.url, emu.bootstrap["workspace_ids"], stores), encoding="utf-8"
    )
    bridge = Bridge(root, emu.bootstrap["admin_key"], processes, stores)
    fleet = Fleet(root, processes)
    pauser: Pauser | None = None
    try:
        first = bridge.run()
        assert first.returncode == 0, failure(first)
        fleet.start(bridge.config, deadline=time.time() + loop_seconds(stores) + 60)
        late = fleet.wait_ready(timeout=40)
        assert not late, f"replicas not tracing after 40 s: {late}\n" + "\n".join(
            redact(r.output())[-1500:] for r in fleet.replicas if r.name in late
        )
        started = time.time()
        schedule = pause_schedule(random.Random(seed() + 1), fleet, loop_seconds(stores))
        pauser = Pauser(schedule).start()
        loop = drive(bridge, emu, stores, random.Random(seed()))
        pauser.stop()
        final = bridge.run()
        loop_s = time.time() - started
        time.sleep(3 * CONSUMER_INTERVAL_S)  # the replicas pick up the last key, then stop
        stopped_by_force = fleet.stop(timeout=30)
    finally:
        if pauser is not None:
            pauser.stop()
        fleet.stop_file.parent.mkdir(exist_ok=True)
        fleet.stop_file.touch()  # the processes fixture kills whatever is still running
    return Outcome(
        t0, root, stores, bridge, fleet, loop, pauser.done, final, loop_s, stopped_by_force
    )


def check_bridge(outcome: Outcome, checks: Checks, served: dict[str, str]) -> dict[str, Any]:
    """The runs succeeded unless killed, and enough happened for the test to mean anything;
    the engine's counts."""
    problems, loop = checks.problems, outcome.loop
    if outcome.final.returncode != 0:
        problems.append(f"the final run failed: {failure(outcome.final)}")
    problems += [f"a run that was not killed failed: {failure(r)}" for r in loop.failed_runs]
    problems += [
        f"run {r.index} finished and left {r.leases_left} lease(s) behind"
        for r in outcome.bridge.runs
        if r.leases_left
    ]
    if outcome.stopped_by_force:
        problems.append(f"replicas that did not stop by themselves: {outcome.stopped_by_force}")
    rotations, revoked, adopted = engine_counts(outcome.bridge)
    for policy in POLICIES:
        if policy.name not in served:
            problems.append(f"{policy.name}: its target holds no key LangSmith knows")
        if rotations[policy.name] < MIN_ROTATIONS:
            problems.append(f"vacuous: {policy.name} rotated only {rotations[policy.name]} times")
        if revoked[policy.name] < MIN_REVOKED:
            problems.append(f"vacuous: {policy.name} revoked only {revoked[policy.name]} keys")
    if loop.kills < MIN_KILLS:
        problems.append(f"vacuous: only {loop.kills} of {loop.planned_kills} kills landed")
    if len(outcome.pauses) < PAUSES:
        problems.append(f"vacuous: only {len(outcome.pauses)} of {PAUSES} pauses happened")
    if loop.lost_at is None or loop.recovered_at is None:
        problems.append("vacuous: the state was never lost, or no clean run followed")
    return {"rotations": dict(rotations), "revoked": dict(revoked), "adopted": dict(adopted)}


def leaks(outcome: Outcome) -> list[str]:
    """Full keys anywhere: the runs' output, the replicas' output and reports, the state."""
    problems = []
    for run in outcome.bridge.runs:
        if found := secrets_in(run.text()):
            problems.append(f"SECRET in the output of run {run.index}: {found} key(s)")
    for replica in outcome.fleet.replicas:
        text = replica.output() + replica.report.read_text(encoding="utf-8")
        if found := secrets_in(text):
            problems.append(f"SECRET in the output or report of {replica.name}: {found} key(s)")
    in_state = [*outcome.loop.lost_state_secrets.items(), *outcome.stores.state_secrets().items()]
    problems += [f"SECRET in the state, {where}: {found} key(s)" for where, found in in_state]
    return problems


def run_seconds(bridge: Bridge) -> tuple[float, float]:
    """Median and longest wall time of the runs that were not killed."""
    spans = sorted(r.ended - r.started for r in bridge.runs if not r.killed) or [0.0]
    return spans[len(spans) // 2], spans[-1]


def judge(outcome: Outcome, emu: Emulator) -> str:
    """Every check; the summary line, or an ``AssertionError`` listing every problem."""
    every = outcome.stores.every_s
    checks = Checks(outcome.t0, bridge_keys(emu), outcome.loop, time.time(), every)
    counted = runs_by_project(emu)
    reports = {r.name: r.read_report() for r in outcome.fleet.replicas}
    for name, report in reports.items():  # (1) nothing refused or lost, by any replica
        checks.consumer(name, report)
        checks.traces(name, report, counted)
    served = served_key_ids(emu, outcome.stores, POLICIES)
    longest, stranded = checks.key_lives(served)  # (2) no key outlived its bound
    dead, serving = dead_keys_served(emu, outcome.stores, POLICIES, checks.now)
    checks.problems += [  # (3) no target hands out a key LangSmith refuses
        f"{d.policy}: {'current ' if d.current else ''}{d.where} serves "
        + (f"{checks.key_story(d.short_key)}, {d.how}" if d.short_key else "an unknown key")
        for d in dead
    ]
    engine = check_bridge(outcome, checks, served)  # (4) the runs, and not vacuous
    checks.problems += leaks(outcome)  # (5) no key anywhere

    http: Counter[str] = Counter()
    for report in reports.values():
        http.update((report or {}).get("http", {}))
    feeds = [s for r in reports.values() for s in (r or {}).get("policies", {}).values()]
    loop = outcome.loop
    summary = " ".join(
        [
            f"consumers' eye [{outcome.stores.kind}]: seed={seed()}",
            "replicas=" + ",".join(f"{c}:{n}" for c, (n, _) in CONSUMERS.items()),
            f"requests={sum(http.values())}",
            f"failed={sum(n for status, n in http.items() if int(status) >= 400)}",
            f"(401={http['401']} 403={http['403']})",
            f"traces_sent={sum(s['sent'] for s in feeds)}",
            f"counted={sum(counted.get(s['project'], 0) for s in feeds)}",
            f"runs={len(outcome.bridge.runs)} kills={loop.kills}",
            f"leases_expired={sum(r.leases_expired for r in outcome.bridge.runs)}",
            "run_s=" + "/".join(f"{x:.1f}" for x in run_seconds(outcome.bridge)),
            "(" + ", ".join(f"{k} x{n}" for k, n in sorted(loop.kinds.items())) + ")",
            f"pauses={len(outcome.pauses)}x{PAUSE_S}s",
            *(f"{name}={value}" for name, value in engine.items()),
            f"keys={len(checks.keys)} stranded_by_state_loss={stranded}",
            f"served_now={serving} dead_served={len(dead)}",
            "longest_life=" + ",".join(f"{p}:{s:.1f}s" for p, s in sorted(longest.items())),
            f"every={every}s",
            "bounds=" + ",".join(f"{p.name}:{p.bound_s(every):.0f}s" for p in POLICIES),
            f"state_lost={rel(outcome.t0, loop.lost_at)}",
            f"acks_refused={sum(len(s['ack_refused']) for s in feeds)}",
            f"acks_failed={sum(len(s['load_errors']) for s in feeds)}",
            f"loop={outcome.loop_s:.1f}s total={time.time() - outcome.t0:.1f}s",
        ]
    )
    problems = checks.problems
    assert not problems, redact(
        f"seed={seed()}: {len(problems)} problem(s):\n" + "\n".join(problems[:40]) + "\n" + summary
    )
    return summary


@pytest.mark.timeout(240)
def test_consumers_never_see_a_refused_key_while_the_bridge_rotates_dies_and_forgets(
    tmp_path: Path,
    emulator: Emulator,
    stores: Stores,
    processes: list[subprocess.Popen[bytes]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    try:
        summary = judge(play(tmp_path, emulator, stores, processes), emulator)
    except BaseException as exc:
        exc.add_note(f"replay: BRIDGE_CONSUMERS_SEED={seed()}")
        raise
    print(summary)
    out, err = capfd.readouterr()
    sys.stdout.write(out)
    sys.stderr.write(err)
    leaked = secrets_in(out) + secrets_in(err)
    assert leaked == 0, f"{leaked} key-shaped string(s) in the test's own output"
