"""SIGKILL a real ``langsmith-bridge run`` at random instants, many times, then check the
invariants of DESIGN.md after one clean run: Secret Manager targets on an in-process gRPC
fake of Secret Manager, and the GCS state on the session's fake-gcs-server (a fresh
bucket), plus one file target, so a policy spans two kinds of store.

The loop, the watcher and the common checks are in ``harness``. Here:

* The bridge reaches both GCP services through the configuration's ``endpoint`` alone
  (``insecure = true`` for the fake): no Google credentials in its environment.
* Watchers read each secret's ``versions/current`` with the official
  ``SecretManagerServiceClient`` over an insecure channel, as a consumer does. Once a
  secret has had a current version it must keep one that parses and holds a key LangSmith
  accepts.
* Kills are aimed, besides the engine's log events and keys appearing in LangSmith, right
  after a write the test sees in-process or by reading the bucket: the N-th save of a
  policy's record, a secret's new version, a retired version disabled.
* A killed runner's leases would block its policies for ``lease_ttl``; once it is dead the
  test expires them in the bucket, as time would, with the fields the backend writes
  (``gcs_layout.lease_document``) and ``if_generation_match`` on the generation read. A
  run that finishes must release its own.
* After each run: every revoked generation's versions are no longer enabled (``retire``
  runs before the generation is marked revoked). After the clean run, in addition: the
  state records the version ``current`` points at; every superseded version is enabled
  and holds its key; no enabled version that an alias or the state names holds a key
  LangSmith deleted (versions a kill left unaliased and unrecorded are only counted: no
  ``retire`` reaches them, a known gap); every secret still
  carries the bridge's labels; and no object of the state bucket holds anything
  key-shaped.

Set ``BRIDGE_CRASH_SEED`` to replay a seed (a failure prints it).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
    SecretManagerServiceGrpcTransport,
)
from google.cloud.secretmanager_v1.types import resources

from bridge.config import load_config
from bridge.config.gcp import GcpTarget, GcsStateSettings
from bridge.emulator import Emulator
from bridge.payload import API_KEY, decode
from bridge.secrets import fingerprint
from bridge.state import Phase, PolicyRecord
from providers.gcp import gcs_layout as layout
from providers.gcp.fake import FakeSecretManager
from providers.gcp.gcs_state import GcsStateStore
from providers.gcp.sm_calls import MANAGED_LABEL, POLICY_LABEL
from tests.crash.harness import (
    CHURN,
    ENGINE_EVENTS,
    HELD,
    Absent,
    CountTrigger,
    FileTrigger,
    LogTrigger,
    RunLog,
    Scenario,
    Target,
    Trigger,
    counts,
    crash_seed,
    file_targets,
    key_of,
    run_and_report,
    secrets_in,
    subprocess_env,
)
from tests.support.gcs import GcsServer

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PROJECT = "crash-project"
PREFIX = "langsmith-bridge/state"
SETTLE_S = 0.05  # a killed run's last request, already sent, lands within this
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
State = resources.SecretVersion.State


def _config_text(url: str, workspaces: list[str], sm: str, bucket: str, gcs: str) -> str:
    ws0, ws1 = workspaces[:2]

    def secret(name: str) -> str:
        return (
            f'{{ provider = "gcp", project = "{PROJECT}", secret = "{name}", '
            f'endpoint = "{sm}", insecure = true }}'
        )

    return f"""
[langsmith]
endpoint = "{url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"

[state]
backend = "gcs"
bucket = "{bucket}"
prefix = "{PREFIX}"
endpoint = "{gcs}"

[run]
verify_attempts = 1
every = "1m"

# Rotates and revokes on every run, so kills land in every step; two secrets.
[[policy]]
name = "{CHURN}"
workspaces = ["{ws0}"]
ack = "grace"
rotate_every = "1s"
key_ttl = "1h"
min_overlap = "0s"
target = [
  {secret("crash-churn-a")},
  {secret("crash-churn-b")},
]

# Its consumer never acknowledges: no superseded key may ever be deleted. A secret and a file.
[[policy]]
name = "{HELD}"
workspaces = ["{ws0}", "{ws1}"]
ack = "explicit"
consumers = ["api"]
rotate_every = "1s"
key_ttl = "2h"
target = [
  {secret("crash-held")},
  {{ provider = "file", path = "out/held.env", format = "dotenv" }},
]

# Org-wide key (no workspaces): verified by listing workspaces.
[[policy]]
name = "org"
default_workspace = "{ws0}"
ack = "grace"
rotate_every = "1s"
key_ttl = "2h"
target = [{secret("crash-org")}]
"""


# -- Secret Manager, as a consumer and the test see it ------------------------------------


@dataclass(frozen=True)
class GcpPayload:
    """A secret's ``versions/current``, read with the official client as a consumer does."""

    policy: str
    secret: str  # projects/P/secrets/S
    target_id: str
    verify_workspace: str | None
    client: SecretManagerServiceClient = field(compare=False, repr=False)
    read_interval: float = 0.01
    check_interval: float = 0.05
    min_reads: int = 300

    @property
    def name(self) -> str:
        return f"{self.policy}:{self.secret.rpartition('/')[2]}"

    def read_key(self) -> tuple[str, str | None]:
        try:
            response = self.client.access_secret_version(
                name=f"{self.secret}/versions/current", timeout=10.0
            )
        except gexc.NotFound:
            raise Absent("no secret, or no current version") from None
        except gexc.FailedPrecondition as exc:  # a disabled or destroyed version
            raise ValueError(f"current version not accessible: {exc.message}") from None
        text = response.payload.data.decode("utf-8")
        return key_of(decode(text, "json"), self.verify_workspace)


class FakeView:
    """In-process counters of the fake's store, cheap enough for aimed kills."""

    def __init__(self, fake: FakeSecretManager) -> None:
        self.store = fake.store

    def _secret(self, name: str) -> Any:
        return self.store._secrets.get(name)

    def versions(self, name: str) -> int:
        with self.store._lock:
            found = self._secret(name)
            return len(found.versions) if found else 0

    def not_enabled(self, name: str) -> int:
        with self.store._lock:
            found = self._secret(name)
            if found is None:
                return 0
            return sum(1 for v in found.versions.values() if v.message.state != State.ENABLED)

    def snapshot(self, name: str) -> tuple[dict[str, str], dict[str, int], dict[int, Any]]:
        """Labels, aliases, and number -> (state, data) of a secret."""
        with self.store._lock:
            found = self._secret(name)
            if found is None:
                return {}, {}, {}
            labels = dict(found.message.labels)
            aliases = {k: int(v) for k, v in found.message.version_aliases.items()}
            versions = {n: (v.message.state, bytes(v.data)) for n, v in found.versions.items()}
            return labels, aliases, versions


# -- the scenario -------------------------------------------------------------------------


class GcpScenario(Scenario):
    """Secret Manager targets (and one file) on the fake, GCS state on fake-gcs-server."""

    iterations = 25
    latencies_ms = (0, 120)
    min_churn_revoked = 6
    min_held_published = 4
    priority = (
        "minted in LangSmith",
        "written crash-churn-a",
        "retired crash-org",
        f"state {CHURN} 2",
        "written crash-churn-b",
    )

    def __init__(
        self,
        root: Path,
        emu: Emulator,
        gcs: GcsServer,
        processes: list[subprocess.Popen[bytes]],
    ) -> None:
        self.fake = FakeSecretManager(max_workers=32).start()
        self.view = FakeView(self.fake)
        self.gcs = gcs
        self.bucket_name = gcs.fresh_bucket()
        config_path = root / "bridge.toml"
        text = _config_text(
            emu.url,
            emu.bootstrap["workspace_ids"],
            self.fake.target,
            self.bucket_name,
            gcs.endpoint,
        )
        config_path.write_text(text, encoding="utf-8")
        config = load_config(config_path)
        assert isinstance(config.state, GcsStateSettings)
        self.channel = grpc.insecure_channel(self.fake.target)
        self.sm = SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=self.channel)
        )
        self.storage = gcs.client()
        self.bucket = self.storage.bucket(self.bucket_name)
        self.store = GcsStateStore(config.state)
        self.secrets = [
            GcpPayload(policy.name, target.name, target.target_id, policy.verify_workspace, self.sm)
            for policy in config.policy
            for target in policy.target
            if isinstance(target, GcpTarget)
        ]
        self.files = file_targets(config)
        self.leases_expired = 0
        self.unrecorded_seen: Counter[str] = Counter()
        env = subprocess_env(LANGSMITH_ADMIN_KEY=emu.bootstrap["admin_key"])
        env = {k: v for k, v in env.items() if not k.startswith(("GOOGLE_", "STORAGE_EMULATOR"))}
        targets: list[Target] = [*self.secrets, *self.files]
        super().__init__(root, emu, config, config_path, targets, env, processes)

    def close(self) -> None:
        self.store.close()
        with contextlib.suppress(Exception):
            self.storage.close()
        self.channel.close()
        self.fake.stop()

    # -- the state -----------------------------------------------------------------------

    def records(self) -> dict[str, PolicyRecord]:
        """Every policy's record, through the backend's own reader (malformed objects fail)."""
        return {name: self.store.load(name) for name in self.store.policies()}

    def object_name(self, path: str) -> str:
        return f"{PREFIX}/{path}"

    def record_version(self, policy: str) -> int:
        """The ``version`` field of a policy's record object; 0 while there is none."""
        try:
            data = self.bucket.blob(self.object_name(layout.policy_path(policy))).download_as_bytes(
                timeout=10
            )
            return int(json.loads(data)["version"])
        except Exception:
            return 0

    def leases_of(self, run: RunLog) -> list[tuple[str, int, layout.LeaseDocument]]:
        """The unexpired leases ``run``'s process holds: (object name, generation, lease)."""
        held = []
        for blob in self.storage.list_blobs(
            self.bucket_name, prefix=self.object_name(layout.LEASES) + "/"
        ):
            try:
                data = blob.download_as_bytes(timeout=10)
            except gexc.NotFound:
                continue
            lease = layout.read_lease(layout.decode(data))
            unexpired = lease.expires_ms > time.time() * 1000
            if lease.holder and unexpired and lease.owner.endswith(f":{run.pid}"):
                held.append((str(blob.name), int(blob.generation), lease))
        return held

    def settle(self, run: RunLog) -> None:
        """Expire the leases a killed runner left, as time would: the same holder, an expiry
        in the past, written with ``if_generation_match`` on the generation read."""
        if not run.killed:
            return
        time.sleep(SETTLE_S)
        for _ in range(3):  # a request of the dead runner may still land: read again
            left = self.leases_of(run)
            for name, generation, lease in left:
                expired = layout.encode(layout.lease_document(lease.holder, EPOCH))
                try:
                    self.bucket.blob(name).upload_from_string(
                        expired, content_type="application/json", if_generation_match=generation
                    )
                    self.leases_expired += 1
                except gexc.PreconditionFailed:
                    pass
            if not left:
                return
            time.sleep(SETTLE_S)

    def state_secrets(self) -> list[str]:
        """Every object of the state bucket, names and contents."""
        texts = []
        for blob in self.storage.list_blobs(self.bucket_name):
            texts.append(str(blob.name))
            texts.append(blob.download_as_bytes(timeout=10).decode("utf-8", errors="replace"))
        if not texts:
            return ["vacuous: the state bucket holds no object"]
        found = secrets_in("\n".join(texts))
        return [f"SECRET in the GCS state bucket: {found} key-shaped string(s)"] if found else []

    # -- aimed kills ---------------------------------------------------------------------

    def triggers(self) -> list[Trigger]:
        def versions_of(name: str) -> Callable[[], int]:
            return lambda: self.view.versions(name)

        def retired_in(name: str) -> Callable[[], int]:
            return lambda: self.view.not_enabled(name)

        def saves_of(policy: str) -> Callable[[], int]:
            return lambda: self.record_version(policy)

        short = lambda s: s.secret.rpartition("/")[2]  # noqa: E731
        return [
            *(
                CountTrigger("state", f"{p} {n}", saves_of(p), n)
                for p in (CHURN, "org")
                for n in (1, 2, 3)
            ),
            CountTrigger("state", f"{HELD} 1", saves_of(HELD)),
            *(CountTrigger("written", short(s), versions_of(s.secret)) for s in self.secrets),
            *(
                CountTrigger("retired", short(s), retired_in(s.secret))
                for s in self.secrets
                if s.policy != HELD  # its keys are never revoked
            ),
            *(FileTrigger("target", f.name, f.path) for f in self.files),
            CountTrigger("minted", "in LangSmith", lambda: len(self.emu.state.key_ids())),
            *(LogTrigger(event) for event in ENGINE_EVENTS[:4]),
        ]

    # -- GCP-specific checks -------------------------------------------------------------

    def check_after_run(
        self, run: RunLog, records: dict[str, PolicyRecord], *, final: bool = False
    ) -> list[str]:
        """A revoked generation's versions are no longer enabled; a run that finished
        released its leases. Counts the secrets a kill left on a version no generation
        records yet (the window between a write and its record)."""
        problems = []
        for secret in self.secrets:
            _, aliases, versions = self.view.snapshot(secret.secret)
            record = records.get(secret.policy)
            recorded: set[str] = set()
            for generation in record.generations if record else ():
                version = generation.targets.get(secret.target_id)
                if version is None:
                    continue
                recorded.add(version)
                info = versions.get(int(version)) if version.isdigit() else None
                if generation.phase is Phase.REVOKED and info and info[0] == State.ENABLED:
                    problems.append(
                        f"{secret.name}: version {version} of revoked generation "
                        f"{generation.rotation_id} is still enabled"
                    )
            current = aliases.get("current")
            if run.killed and current is not None and str(current) not in recorded:
                self.unrecorded_seen[secret.name] += 1
        if not run.killed and self.leases_of(run):
            problems.append(f"run {run.index} finished and left a lease behind")
        return problems

    def final_checks(self, records: dict[str, PolicyRecord]) -> list[str]:
        """Ownership labels; the state names the version ``current`` points at;
        superseded versions enabled with their key; no enabled version of a dead key."""
        problems = []
        now = self.emu.clock.now()
        for secret in self.secrets:
            labels, aliases, versions = self.view.snapshot(secret.secret)
            if labels.get(MANAGED_LABEL) is None or labels.get(POLICY_LABEL) is None:
                problems.append(f"{secret.name}: lost the bridge's labels: {sorted(labels)}")
            record = records.get(secret.policy)
            current = record.current() if record else None
            recorded = current.targets.get(secret.target_id) if current else None
            if recorded != str(aliases.get("current")):
                problems.append(
                    f"{secret.name}: the state records version {recorded} for the current "
                    f"generation, current points at {aliases.get('current')}"
                )
            for generation in record.by_phase(Phase.SUPERSEDED) if record else ():
                version = generation.targets.get(secret.target_id) or ""
                info = versions.get(int(version)) if version.isdigit() else None
                key = ""
                if info and info[0] == State.ENABLED:
                    key = str(decode(info[1].decode(), "json").get(API_KEY, ""))
                if not key or fingerprint(key) != generation.fingerprint:
                    problems.append(
                        f"{secret.name}: superseded generation {generation.rotation_id} is "
                        f"not readable at version {version}"
                    )
            named = {str(n) for n in aliases.values()} | {
                v
                for g in (record.generations if record else ())
                if (v := g.targets.get(secret.target_id))
            }
            for number, (state, data) in versions.items():
                if state != State.ENABLED:
                    continue
                if str(number) not in named:
                    # Added by a run killed before it moved ``current``: the next publish of
                    # its payload makes it current, an abandon disables it; after the final
                    # clean run none is left.
                    problems.append(
                        f"{secret.name}: enabled version {number} is named by no alias "
                        "and no generation (never retired)"
                    )
                    continue
                key = str(decode(data.decode(), "json").get(API_KEY, ""))
                found = self.emu.state.find_key(key)
                if found is None or not found.usable_at(now):
                    short = found.short_key if found else "?"
                    problems.append(
                        f"{secret.name}: enabled version {number} holds the dead key {short}"
                    )
        return problems

    def summary_lines(self) -> list[str]:
        written = {s.name: self.view.versions(s.secret) for s in self.secrets}
        retired = {s.name: self.view.not_enabled(s.secret) for s in self.secrets}
        saves = {p.name: self.record_version(p.name) for p in self.config.policy}
        return [
            f"leases of killed runners expired by the test: {self.leases_expired}",
            f"secrets a kill left on an unrecorded version: {counts(self.unrecorded_seen)}",
            "Secret Manager versions per secret: "
            + ", ".join(f"{k} {v} ({retired[k]} not enabled)" for k, v in written.items()),
            "record saves per policy: " + ", ".join(f"{k} {v}" for k, v in saves.items()),
        ]


@pytest.mark.timeout(180)
def test_sigkill_with_secret_manager_targets_and_gcs_state_keeps_invariants(
    tmp_path: Path,
    emulator: Emulator,
    gcs: GcsServer,
    processes: list[subprocess.Popen[bytes]],
    stoppers: list[Callable[[], None]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    seed = crash_seed()
    scenario = GcpScenario(tmp_path, emulator, gcs, processes)
    stoppers.append(scenario.close)
    run_and_report(seed, lambda: scenario.run(seed, stoppers), capfd)
