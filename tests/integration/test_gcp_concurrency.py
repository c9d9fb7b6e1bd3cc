"""One rotation at a time per policy, however many runners, with the GCS state: runners
started together on the same due policies, against the session's fake-gcs-server (a fresh
bucket), Secret Manager targets on an in-process fake, and an emulator that answers slowly
enough for them to overlap, mint exactly one key per due policy.

Each runner is the production engine (``build_engine``) with its own storage and Secret
Manager clients, as separate processes would have; they share only the process's host name
and pid in their lease owner string, which the per-acquisition token keeps apart. The
engines' clock is the emulator's, so the test makes every policy due again by moving it,
while the leases run on real time. A runner that finds a policy's lease held skips it;
nothing else may go wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.config import BridgeConfig, load_config
from bridge.emulator import Emulator
from bridge.engine.plan import Revoke, Rotate
from bridge.state import Phase
from bridge.wiring import connections_for, open_state
from providers.gcp.fake import FakeSecretManager
from tests.support.concurrency import failures, minted, run_together, skips, steps
from tests.support.config import with_default_workspace
from tests.support.gcs import GcsServer

pytestmark = pytest.mark.integration

POLICIES = [f"p{i}" for i in range(6)]
RUNNERS = 5
LATENCY_MS = 20
PROJECT = "demo-project"
PREFIX = "langsmith-bridge/state"


def _config_text(emu: Emulator, sm: FakeSecretManager, gcs: GcsServer, bucket: str) -> str:
    policies = "".join(
        f'[[policy]]\nname = "{name}"\nack = "grace"\nmin_overlap = "0s"\n'
        'rotate_every = "1d"\nkey_ttl = "30d"\n'
        f'[[policy.target]]\nprovider = "gcp"\nproject = "{PROJECT}"\n'
        f'secret = "langsmith-{name}"\nendpoint = "{sm.target}"\ninsecure = true\n'
        for name in POLICIES
    )
    return f"""
[langsmith]
endpoint = "{emu.url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"

[state]
backend = "gcs"
bucket = "{bucket}"
prefix = "{PREFIX}"
endpoint = "{gcs.endpoint}"

[run]
verify_attempts = 1

{with_default_workspace(policies, emu.bootstrap["workspace_ids"][0])}
"""


@pytest.fixture
def fake_sm() -> Iterator[FakeSecretManager]:
    with FakeSecretManager(max_workers=16) as fake:
        fake.faults.set_latency(0.005)  # a little latency on every call, too
        yield fake


@pytest.fixture
def config(
    gcs: GcsServer,
    fake_sm: FakeSecretManager,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> BridgeConfig:
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])
    path = tmp_path / "bridge.toml"
    path.write_text(_config_text(emulator, fake_sm, gcs, gcs.fresh_bucket()), encoding="utf-8")
    emulator.set_faults(latency_ms=LATENCY_MS)
    return load_config(path)


def test_runners_started_together_on_gcs_state_mint_exactly_once_per_due_policy(
    config: BridgeConfig, emulator: Emulator, fake_sm: FakeSecretManager
) -> None:
    # Round 1: nothing exists yet; every policy is due.
    reports = run_together(config, emulator, RUNNERS)
    assert failures(reports) == []
    assert minted(emulator) == dict.fromkeys(POLICIES, 1)
    assert steps(reports, Rotate) == dict.fromkeys(POLICIES, 1)
    skipped = skips(reports)

    # Round 2: a day later every policy is due again: one rotation each, whoever wins.
    emulator.clock.advance(timedelta(days=1, minutes=1))
    reports = run_together(config, emulator, RUNNERS)
    assert failures(reports) == []
    assert minted(emulator) == dict.fromkeys(POLICIES, 2)
    assert steps(reports, Rotate) == dict.fromkeys(POLICIES, 1)
    skipped += skips(reports)
    revoked = set(steps(reports, Revoke))

    # Round 3: nothing to mint; every superseded key revoked, if round 2 did not already.
    reports = run_together(config, emulator, RUNNERS)
    assert failures(reports) == []
    assert minted(emulator) == dict.fromkeys(POLICIES, 2)
    assert revoked | set(steps(reports, Revoke)) == set(POLICIES)
    skipped += skips(reports)

    with connections_for(config) as connections:
        store = open_state(config.state, connections)
        for name in POLICIES:
            record = store.load(name)
            assert [g.phase for g in record.live()] == [Phase.CURRENT], name
            assert [g.phase for g in record.generations].count(Phase.REVOKED) == 1, name
    deleted = [k for k in emulator.state.inspect_keys() if k["deleted"]]
    assert len(deleted) == len(POLICIES)
    # Every secret got exactly one version per generation: no runner published twice.
    for name in POLICIES:
        secret = f"projects/{PROJECT}/secrets/langsmith-{name}"
        versions = fake_sm.store._secrets[secret].versions
        assert len(versions) == 2, (name, sorted(versions))
    # Not vacuous: the runners did overlap on the policies.
    assert skipped > 0, "no runner ever found a lease held: the runs did not overlap"
