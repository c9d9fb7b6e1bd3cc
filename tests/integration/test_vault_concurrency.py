"""One rotation at a time per policy, however many runners, with the Vault state: runners
started together on the same due policies, against a real OpenBao server and an emulator
that answers slowly enough for them to overlap, mint exactly one key per due policy.

Each runner is the production engine (``build_engine``) with its own Vault connection, as
separate processes would have; they share only the process's host name and pid in their
lease owner string, which the per-acquisition token keeps apart. The engines' clock is the
emulator's, so the test makes every policy due again by moving it, while the leases run on
real time. A runner that finds a policy's lease held skips it; nothing else may go wrong.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bridge.config import BridgeConfig, load_config
from bridge.emulator import Emulator
from bridge.engine import RunReport
from bridge.engine.plan import Revoke, Rotate
from bridge.langsmith.client import SERVICE_KEYS
from bridge.state import Phase
from bridge.wiring import build_engine, connections_for, open_state
from tests.support.concurrency import failures, minted, run_together, steps
from tests.support.config import with_default_workspace
from tests.support.vault import BaoServer

pytestmark = pytest.mark.integration

POLICIES = [f"p{i}" for i in range(6)]
RUNNERS = 6
LATENCY_MS = 20
FOLDER = "langsmith-bridge/state"


def _config_text(emu: Emulator, targets: str, state: str) -> str:
    policies = "".join(
        f'[[policy]]\nname = "{name}"\nack = "grace"\nmin_overlap = "0s"\n'
        'rotate_every = "1d"\nkey_ttl = "30d"\n'
        f'[[policy.target]]\nprovider = "vault"\nmount = "{targets}"\npath = "apps/{name}"\n'
        for name in POLICIES
    )
    return f"""
[langsmith]
endpoint = "{emu.url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"

[state]
backend = "vault"
mount = "{state}"
path = "{FOLDER}"

[run]
verify_attempts = 1

{with_default_workspace(policies, emu.bootstrap["workspace_ids"][0])}
"""


@pytest.fixture
def config(
    bao: BaoServer, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BridgeConfig]:
    targets, state = bao.fresh_mount(), bao.fresh_mount(cas_required=True)
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])
    monkeypatch.setenv("VAULT_ADDR", bao.address)
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    path = tmp_path / "bridge.toml"
    path.write_text(_config_text(emulator, targets, state), encoding="utf-8")
    emulator.set_faults(latency_ms=LATENCY_MS)
    yield load_config(path)
    for mount in (targets, state):
        bao.root().sys.disable_secrets_engine(mount)


def test_runners_started_together_mint_exactly_once_per_due_policy(
    config: BridgeConfig, emulator: Emulator
) -> None:
    # Round 1: nothing exists yet; every policy is due.
    reports = run_together(config, emulator, RUNNERS)
    assert failures(reports) == []
    assert minted(emulator) == dict.fromkeys(POLICIES, 1)
    assert steps(reports, Rotate) == dict.fromkeys(POLICIES, 1)
    skipped = sum(1 for r in reports for o in r.outcomes if o.skipped)

    # Round 2: a day later every policy is due again: one rotation each, whoever wins.
    emulator.clock.advance(timedelta(days=1, minutes=1))
    reports = run_together(config, emulator, RUNNERS)
    assert failures(reports) == []
    assert minted(emulator) == dict.fromkeys(POLICIES, 2)
    assert steps(reports, Rotate) == dict.fromkeys(POLICIES, 1)
    skipped += sum(1 for r in reports for o in r.outcomes if o.skipped)
    revoked = set(steps(reports, Revoke))  # by a runner that took the lease after the rotation

    # Round 3: nothing to mint; every superseded key (its grace gate open) revoked, if a
    # late runner of round 2 did not already. (A runner whose listing predates another's
    # revoke revokes it again, a 404: see the next test.)
    reports = run_together(config, emulator, RUNNERS)
    assert failures(reports) == []
    assert minted(emulator) == dict.fromkeys(POLICIES, 2)
    assert revoked | set(steps(reports, Revoke)) == set(POLICIES)
    skipped += sum(1 for r in reports for o in r.outcomes if o.skipped)

    with connections_for(config) as connections:
        store = open_state(config.state, connections)
        for name in POLICIES:
            record = store.load(name)
            assert [g.phase for g in record.live()] == [Phase.CURRENT], name
            assert [g.phase for g in record.generations].count(Phase.REVOKED) == 1, name
    deleted = [k for k in emulator.state.inspect_keys() if k["deleted"]]
    assert len(deleted) == len(POLICIES)
    # Not vacuous: the runners did overlap on the policies.
    assert skipped > 0, "no runner ever found a lease held: the runs did not overlap"


class PausedAfterListing(httpx.BaseTransport):
    """The LangSmith transport of a runner that stalls right after its key listing (a slow
    start, a long queue of policies) until ``resume`` is set."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.listed = threading.Event()
        self.resume = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        listing = request.method == "GET" and request.url.path.endswith(SERVICE_KEYS)
        if listing and not self.listed.is_set():
            response.read()
            self.listed.set()
            assert self.resume.wait(timeout=30), "never resumed"
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_listing_taken_before_another_runner_revoked_a_key_does_not_bring_it_back(
    config: BridgeConfig, emulator: Emulator
) -> None:
    """Runner B lists LangSmith's keys, then runner A revokes a superseded key and releases
    the lease, then B takes the lease: B's listing is older than the revocation it reads in
    the record, so it proves nothing about the key; B must leave the generation revoked
    (not supersede it again, nor revoke it a second time)."""
    policy = POLICIES[0]
    for advance in (timedelta(days=1, minutes=1), timedelta(0)):
        with build_engine(config, clock=emulator.clock.now) as engine:
            assert engine.run(engine.select([policy])).ok
        emulator.clock.advance(advance)  # a current key, then (a day later) a superseded one

    paused = PausedAfterListing()
    late: list[RunReport] = []

    def runner_b() -> None:
        with build_engine(config, clock=emulator.clock.now, transport=paused) as engine:
            late.append(engine.run(engine.select([policy])))

    thread = threading.Thread(target=runner_b, name="runner-b")
    thread.start()
    try:
        assert paused.listed.wait(timeout=30)
        with build_engine(config, clock=emulator.clock.now) as engine:  # runner A
            first = engine.run(engine.select([policy]))
    finally:
        paused.resume.set()
        thread.join(timeout=60)
    assert failures([first, *late]) == []
    assert steps([first], Revoke) == {policy: 1}

    (outcome,) = late[0].outcomes
    assert [step.describe() for step in outcome.done] == []
    with connections_for(config) as connections:
        record = open_state(config.state, connections).load(policy)
    revoked = [h for h in record.history if h.action == "revoked"]
    assert len(revoked) == 1, [h.reason for h in record.history]
