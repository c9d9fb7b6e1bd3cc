"""SIGKILL a real ``langsmith-bridge run`` at random instants, many times, then check the
invariants of DESIGN.md after one clean run: Secrets Manager targets and DynamoDB state, on
a moto server in this process (plus one file target, so a policy spans two kinds of store).

The loop, the watcher and the common checks are in ``harness``. Here:

* moto is made atomic per request, as AWS is: moto mutates a secret's labels in several
  steps (AWSCURRENT is briefly on no version while it moves) and evaluates DynamoDB
  conditions apart from the write, so without a lock a consumer could see states AWS never
  shows. The same hooks count what the server did, to aim kills: right after the N-th
  policy-record write, a secret's AWSPENDING staged, its AWSCURRENT moved, its AWSPREVIOUS
  retired, a key created in LangSmith (read from the emulator), or an engine event logged.
  The first aimed kills go to the windows this scenario exists for (``priority``).
* Watchers read each secret's ``AWSCURRENT`` over HTTP, as consumers do (with an explicit
  ``VersionStage``: without one moto returns the version last *written*). Once a secret has
  had an ``AWSCURRENT`` it must keep one that parses. (The bridge creates a secret without
  a value, so that even the first payload goes through AWSPENDING; until that first write,
  a consumer finds no value, just as if there were no secret yet.)
* A killed runner's DynamoDB leases would block its policies for ``lease_ttl``; once it is
  dead (and its requests have landed) the test expires them, as time would, so the next run
  takes them over through the expiry condition. A run that finishes must release its own.
* After each run: every payload went through AWSPENDING (none was put straight into
  AWSCURRENT); AWSCURRENT on exactly one version; AWSPENDING on at most one, and after a
  kill only on a version of a generation still publishing or just abandoned; after a run
  that finished, on none; AWSPREVIOUS never on a revoked key's version. After the clean
  run, in addition: the state records, for each secret, the version AWSCURRENT is on;
  every secret still carries the bridge's ownership tags; no DynamoDB item holds a secret.

Set ``BRIDGE_CRASH_SEED`` to replay a seed (a failure prints it).
"""

from __future__ import annotations

import functools
import inspect
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
from moto.secretsmanager.models import SecretsManagerBackend
from moto.secretsmanager.responses import SecretsManagerResponse

from bridge.config import AwsTarget, DynamoDBStateSettings, load_config
from bridge.emulator import Emulator
from bridge.payload import decode
from bridge.state import Generation, Phase, PolicyRecord
from providers.aws.dynamodb import DynamoDBStateStore, table_definition
from providers.aws.dynamodb_schema import LEASE_PREFIX, POLICY_PREFIX, TTL_ATTRIBUTE
from providers.aws.secret_view import CURRENT, MANAGED_TAG, PENDING, POLICY_TAG, PREVIOUS
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
from tests.support.aws import REGION

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TABLE = "crash-bridge-state"
SETTLE_S = 0.05  # a killed run's last request, already sent, lands within this
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _config_text(url: str, workspaces: list[str], aws: str) -> str:
    ws0, ws1 = workspaces[:2]
    where = f'region = "{REGION}", endpoint_url = "{aws}"'
    return f"""
[langsmith]
endpoint = "{url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"

[state]
backend = "dynamodb"
table = "{TABLE}"
region = "{REGION}"
endpoint_url = "{aws}"

[run]
verify_attempts = 1
every = "1m"
lease_ttl = "10m"

# Rotates and revokes on every run, so kills land in every step; two secrets.
[[policy]]
name = "{CHURN}"
workspaces = ["{ws0}"]
ack = "grace"
rotate_every = "1s"
key_ttl = "1h"
min_overlap = "0s"
target = [
  {{ provider = "aws", secret_id = "crash/churn-a", {where} }},
  {{ provider = "aws", secret_id = "crash/churn-b", {where} }},
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
  {{ provider = "aws", secret_id = "crash/held", {where} }},
  {{ provider = "file", path = "out/held.env", format = "dotenv" }},
]

# Org-wide key (no workspaces): verified by listing workspaces.
[[policy]]
name = "org"
default_workspace = "{ws0}"
ack = "grace"
rotate_every = "1s"
key_ttl = "2h"
target = [{{ provider = "aws", secret_id = "crash/org", {where} }}]
"""


# -- the moto server, made atomic and observable ------------------------------------------


class MotoEvents:
    """Makes every moto request atomic (one lock around each action), and counts the writes
    a kill can be aimed right after, by label: ``state`` (a policy record written),
    ``pending|current|retired|cleared SECRET`` (a label staged, moved or removed)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.RLock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> MotoEvents:
        for handler in (SecretsManagerResponse, DynamoHandler):
            monkeypatch.setattr(handler, "call_action", self._atomic(handler.call_action))
        watched: list[tuple[type, str, Callable[[dict[str, Any]], str | None]]] = [
            (DynamoDBBackend, "put_item", _state_written),
            (SecretsManagerBackend, "put_secret_value", _value_put),
            (SecretsManagerBackend, "update_secret_version_stage", _label_moved),
        ]
        for backend, name, label in watched:
            monkeypatch.setattr(backend, name, self._counted(getattr(backend, name), label))
        return self

    def counter(self, label: str) -> Callable[[], int]:
        return lambda: self.counts[label]

    def _atomic(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def atomic(handler: Any) -> Any:
            with self._lock:
                return original(handler)

        return atomic

    def _counted(
        self, original: Callable[..., Any], label: Callable[[dict[str, Any]], str | None]
    ) -> Callable[..., Any]:
        signature = inspect.signature(original)

        @functools.wraps(original)
        def counted(*args: Any, **kwargs: Any) -> Any:
            name = label(signature.bind(*args, **kwargs).arguments)  # before moto edits them
            result = original(*args, **kwargs)  # count only what succeeded
            if name:
                self.counts[name] += 1
            return result

        return counted


def _state_written(arguments: dict[str, Any]) -> str | None:
    pk = arguments["item_attrs"].get("pk", {}).get("S", "")
    return "state" if pk.startswith(POLICY_PREFIX) else None


def _value_put(arguments: dict[str, Any]) -> str:
    """A new version staged as AWSPENDING, or ``direct``: put straight into AWSCURRENT."""
    stages = arguments.get("version_stages") or [CURRENT]  # AWS's default
    return f"{'direct' if CURRENT in stages else 'pending'} {arguments['secret_id']}"


def _label_moved(arguments: dict[str, Any]) -> str | None:
    stage, secret = arguments["version_stage"], arguments["secret_id"]
    if stage == CURRENT:
        return f"current {secret}"
    if stage == PREVIOUS and not arguments.get("move_to_version_id"):
        return f"retired {secret}"
    if stage == PENDING and not arguments.get("move_to_version_id"):
        return f"cleared {secret}"
    return None


# -- a consumer's view of a secret ---------------------------------------------------------


@dataclass(frozen=True)
class SecretPayload:
    """A secret's ``AWSCURRENT``, read over HTTP as a consumer reads it."""

    policy: str
    secret_id: str
    verify_workspace: str | None
    client: Any = field(compare=False, repr=False)
    # Each read is a request to moto, served in this process: reading more often than this
    # slows the bridge's own requests down by half.
    read_interval: float = 0.04
    check_interval: float = 0.1
    min_reads: int = 300

    @property
    def name(self) -> str:
        return f"{self.policy}:{self.secret_id}"

    def read_key(self) -> tuple[str, str | None]:
        try:
            value = self.client.get_secret_value(SecretId=self.secret_id, VersionStage=CURRENT)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise Absent(f"no {CURRENT}") from None
            raise
        text = value.get("SecretString")
        if not isinstance(text, str):
            raise ValueError("no SecretString")
        return key_of(decode(text, "json"), self.verify_workspace)


def generation_of(record: PolicyRecord | None, version: str) -> Generation | None:
    """The generation a secret version was written for (its token is the rotation id, or
    the rotation id and a settings suffix)."""
    for generation in record.generations if record else ():
        if version == generation.rotation_id or version.startswith(generation.rotation_id + "-"):
            return generation
    return None


# -- the scenario -------------------------------------------------------------------------


class AwsScenario(Scenario):
    """Secrets Manager targets (and one file), DynamoDB state, all on one moto server."""

    iterations = 24  # a run against moto takes about three times as long as with files
    latencies_ms = (0, 120)
    min_churn_revoked = 8
    min_held_published = 5
    # The windows this scenario exists for: a key minted but not yet recorded, a policy's
    # second secret staged, its first one moved (AWSPENDING not yet cleared), a revoked
    # key's AWSPREVIOUS retired.
    priority = (
        "minted in LangSmith",
        "pending crash/churn-b",
        "current crash/churn-a",
        "retired crash/org",
    )

    def __init__(
        self,
        root: Path,
        emu: Emulator,
        aws: str,
        events: MotoEvents,
        processes: list[subprocess.Popen[bytes]],
    ) -> None:
        config_path = root / "bridge.toml"
        text = _config_text(emu.url, emu.bootstrap["workspace_ids"], aws)
        config_path.write_text(text, encoding="utf-8")
        config = load_config(config_path)
        assert isinstance(config.state, DynamoDBStateSettings)
        self.events = events
        self.ddb = _client("dynamodb", aws)
        self.sm = _client("secretsmanager", aws)
        self.ddb.create_table(**table_definition(TABLE))
        self.store = DynamoDBStateStore(config.state)
        aws_targets = [
            (policy, target)
            for policy in config.policy
            for target in policy.target
            if isinstance(target, AwsTarget)
        ]
        self.secrets = [
            SecretPayload(policy.name, target.secret_id, policy.verify_workspace, self.sm)
            for policy, target in aws_targets
        ]
        self.secret_ids = [target.target_id for _, target in aws_targets]
        self.files = file_targets(config)
        self.leases_expired = 0
        self.pending_seen: Counter[str] = Counter()  # where AWSPENDING was found after a run
        env = subprocess_env(LANGSMITH_ADMIN_KEY=emu.bootstrap["admin_key"], **FAKE_AWS)
        targets: list[Target] = [*self.secrets, *self.files]
        super().__init__(root, emu, config, config_path, targets, env, processes)

    def close(self) -> None:
        self.store.close()
        self.sm.close()
        self.ddb.close()

    # -- the state -----------------------------------------------------------------------

    def records(self) -> dict[str, PolicyRecord]:
        """Every policy's record, through the backend's own reader (malformed items fail)."""
        return {name: self.store.load(name) for name in self.store.policies()}

    def items(self, prefix: str = "") -> list[dict[str, Any]]:
        pages = self.ddb.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True)
        return [i for page in pages for i in page["Items"] if i["pk"]["S"].startswith(prefix)]

    def leases_of(self, run: RunLog) -> list[dict[str, Any]]:
        """The lease items held by ``run``'s process (owner ``host:pid#token``)."""
        return [
            item
            for item in self.items(LEASE_PREFIX)
            if item.get("owner", {}).get("S", "").split("#", 1)[0].endswith(f":{run.pid}")
        ]

    def settle(self, run: RunLog) -> None:
        """Expire the leases a killed runner left, as time would (its ``lease_ttl`` is long)."""
        if not run.killed:
            return
        time.sleep(SETTLE_S)
        for item in self.leases_of(run):
            self.ddb.update_item(
                TableName=TABLE,
                Key={"pk": item["pk"]},
                UpdateExpression="SET #exp = :past",
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#exp": TTL_ATTRIBUTE, "#owner": "owner"},
                ExpressionAttributeValues={":past": {"N": "0"}, ":owner": item["owner"]},
            )
            self.leases_expired += 1

    def state_secrets(self) -> list[str]:
        found = secrets_in(json.dumps(self.items()))
        return [f"SECRET in DynamoDB items: {found} key-shaped string(s)"] if found else []

    # -- aimed kills ---------------------------------------------------------------------

    def triggers(self) -> list[Trigger]:
        secrets = [s.secret_id for s in self.secrets]
        return [
            *(
                CountTrigger("state", str(n), self.events.counter("state"), count=n)
                for n in range(1, 7)
            ),
            *(CountTrigger("pending", s, self.events.counter(f"pending {s}")) for s in secrets),
            *(CountTrigger("current", s, self.events.counter(f"current {s}")) for s in secrets),
            *(
                CountTrigger("retired", s, self.events.counter(f"retired {s}"))
                for s in secrets
                if not s.startswith(f"crash/{HELD}")  # its keys are never revoked
            ),
            *(FileTrigger("target", f.name, f.path) for f in self.files),
            CountTrigger("minted", "in LangSmith", lambda: len(self.emu.state.key_ids())),
            *(LogTrigger(event) for event in ENGINE_EVENTS[:4]),
        ]

    # -- AWS-specific checks -------------------------------------------------------------

    def check_after_run(
        self, run: RunLog, records: dict[str, PolicyRecord], *, final: bool = False
    ) -> list[str]:
        """Labels after a run: AWSCURRENT on exactly one version once there is a value;
        AWSPENDING on at most one, and only where a kill can leave it (a generation still
        publishing, or abandoned before the next publish cleared it); after a run that
        finished, none; AWSPREVIOUS never on a revoked key's version (``retire`` clears it
        before the generation is marked revoked). Every payload went through AWSPENDING. A
        run that finished released its leases."""
        problems = []
        after = "the clean run" if final else ("a kill" if run.killed else "a finished run")
        allowed = (Phase.PUBLISHING, Phase.ABANDONED) if run.killed else ()
        for secret in self.secrets:
            stages = self.stages(secret.secret_id)
            holders = [v for v, labels in stages.items() if CURRENT in labels]
            if stages and len(holders) != 1:
                problems.append(f"{secret.name}: {len(holders)} versions carry {CURRENT}")
            pending = [v for v, labels in stages.items() if PENDING in labels]
            if len(pending) > 1:
                problems.append(f"{secret.name}: {len(pending)} versions carry {PENDING}")
            for version, labels in stages.items():
                generation = generation_of(records.get(secret.policy), version)
                if PREVIOUS in labels and (generation is None or not generation.phase.live):
                    phase = generation.phase.value if generation else "untracked"
                    problems.append(f"{secret.name}: {PREVIOUS} labels a {phase} key's version")
            for version in pending:
                generation = generation_of(records.get(secret.policy), version)
                where = generation.phase.value if generation else "untracked"
                if CURRENT in stages[version]:
                    where += f" ({CURRENT})"
                self.pending_seen[f"{where} after {after}"] += 1
                if generation is None or generation.phase not in allowed:
                    problems.append(f"{secret.name}: {PENDING} on a {where} version after {after}")
        if not run.killed and self.leases_of(run):
            problems.append(f"run {run.index} finished and left its lease behind")
        direct = sorted(label for label in self.events.counts if label.startswith("direct "))
        if direct:
            problems.append(f"a payload skipped {PENDING}, put straight into {CURRENT}: {direct}")
        return problems

    def final_checks(self, records: dict[str, PolicyRecord]) -> list[str]:
        """Ownership tags on every secret; the state names the version AWSCURRENT is on."""
        problems = []
        if not any(seen.endswith("after a kill") for seen in self.pending_seen):
            problems.append(f"vacuous: no kill left {PENDING} staged")
        for secret, target_id in zip(self.secrets, self.secret_ids, strict=True):
            record = records.get(secret.policy)
            current = record.current() if record else None
            recorded = current.targets.get(target_id) if current else None
            holder = next(
                (v for v, s in self.stages(secret.secret_id).items() if CURRENT in s), None
            )
            if recorded != holder:
                problems.append(
                    f"{secret.name}: the state records version {recorded} for the current "
                    f"generation, {CURRENT} is on {holder}"
                )
            described = self.sm.describe_secret(SecretId=secret.secret_id)
            tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
            if tags.get(MANAGED_TAG) != "true" or tags.get(POLICY_TAG) != secret.policy:
                problems.append(f"{secret.name}: lost the bridge's ownership tags: {tags}")
        return problems

    def stages(self, secret_id: str) -> dict[str, list[str]]:
        """Version -> labels, labelled versions only; empty while the secret does not exist."""
        try:
            described = self.sm.describe_secret(SecretId=secret_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return {}
            raise
        return {v: s for v, s in described.get("VersionIdsToStages", {}).items() if s}

    def summary_lines(self) -> list[str]:
        moved: Counter[str] = Counter()
        for label, n in self.events.counts.items():
            moved[label.split()[0]] += n
        return [
            f"leases of killed runners expired by the test: {self.leases_expired}",
            f"{PENDING} found after runs: {counts(self.pending_seen)}",
            f"moto writes seen: {counts(moved)}",
        ]


def _client(service: str, endpoint: str) -> Any:
    config = Config(max_pool_connections=32, retries={"mode": "standard"})
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint, config=config)


@pytest.mark.timeout(180)
def test_sigkill_with_secrets_manager_and_dynamodb_keeps_invariants(
    tmp_path: Path,
    emulator: Emulator,
    moto_server: str,
    monkeypatch: pytest.MonkeyPatch,
    processes: list[subprocess.Popen[bytes]],
    stoppers: list[Callable[[], None]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    seed = crash_seed()
    events = MotoEvents().install(monkeypatch)
    scenario = AwsScenario(tmp_path, emulator, moto_server, events, processes)
    stoppers.append(scenario.close)
    run_and_report(seed, lambda: scenario.run(seed, stoppers), capfd)
