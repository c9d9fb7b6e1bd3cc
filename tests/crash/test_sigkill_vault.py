"""SIGKILL a real ``langsmith-bridge run`` at random instants, many times, then check the
invariants of DESIGN.md after one clean run: Vault / OpenBao KV v2 targets and the Vault
state, on the session's OpenBao dev server (plus one file target, so a policy spans two
kinds of store).

The loop, the watcher and the common checks are in ``harness``. Here:

* The targets live on one fresh KV v2 mount, the state on another (``cas_required``, as a
  careful operator sets it). The bridge gets ``VAULT_ADDR`` and ``VAULT_TOKEN`` from its
  environment and nothing else about Vault: the configuration names no ``[vault]``.
* Watchers read each secret's current version over HTTP, as a consumer (Vault Agent, the
  Secrets Operator) does. Once a secret has had a version it must keep one that parses and
  holds a key LangSmith accepts.
* Kills are aimed, besides the engine's log events and keys appearing in LangSmith, right
  after a Vault write the test sees by polling KV metadata: the N-th write of a policy's
  record, a secret's new version, a superseded version destroyed.
* A killed runner's leases would block its policies for ``lease_ttl``; once it is dead (and
  its requests have landed) the test expires them in KV, as time would, with the fields the
  backend writes, so the next run takes them over. A run that finishes must release its own.
* After each run: every revoked generation's versions are destroyed (``retire`` runs before
  the generation is marked revoked). After the clean run, in addition: the state records
  the version each secret is on; every superseded version is still readable and holds its
  key; every version still readable holds a key LangSmith has not deleted; every secret
  still carries the bridge's ``custom_metadata``; and no version of any entry in the state
  mount holds anything key-shaped.

Set ``BRIDGE_CRASH_SEED`` to replay a seed (a failure prints it).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.config import load_config
from bridge.config.vault import VaultSettings, VaultStateSettings, VaultTarget
from bridge.emulator import Emulator
from bridge.payload import API_KEY, decode
from bridge.secrets import fingerprint
from bridge.state import Phase, PolicyRecord
from providers.vault.client import VaultClients
from providers.vault.state import VaultStateStore
from providers.vault.state_entries import LEASES, POLICIES, lease_data, read_lease
from providers.vault.target import MANAGED_KEY, POLICY_KEY
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
from tests.support.vault import BaoServer

pytestmark = [pytest.mark.slow, pytest.mark.integration]

FOLDER = "langsmith-bridge/state"
SETTLE_S = 0.05  # a killed run's last request, already sent, lands within this
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _config_text(url: str, workspaces: list[str], targets: str, state: str) -> str:
    ws0, ws1 = workspaces[:2]
    return f"""
[langsmith]
endpoint = "{url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"

[state]
backend = "vault"
mount = "{state}"
path = "{FOLDER}"

[run]
verify_attempts = 1
every = "1m"

# Rotates and revokes on every run, so kills land in every step; two secrets, one of them
# with a bounded history.
[[policy]]
name = "{CHURN}"
workspaces = ["{ws0}"]
ack = "grace"
rotate_every = "1s"
key_ttl = "1h"
min_overlap = "0s"
target = [
  {{ provider = "vault", mount = "{targets}", path = "crash/churn-a" }},
  {{ provider = "vault", mount = "{targets}", path = "crash/churn-b", max_versions = 4 }},
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
  {{ provider = "vault", mount = "{targets}", path = "crash/held" }},
  {{ provider = "file", path = "out/held.env", format = "dotenv" }},
]

# Org-wide key (no workspaces): verified by listing workspaces.
[[policy]]
name = "org"
default_workspace = "{ws0}"
ack = "grace"
rotate_every = "1s"
key_ttl = "2h"
target = [{{ provider = "vault", mount = "{targets}", path = "crash/org" }}]
"""


# -- Vault over HTTP, as an operator or a consumer reaches it ------------------------------


class VaultHttp:
    """The KV v2 API of one server over plain HTTP with one token, a client per thread
    (watchers and triggers read concurrently)."""

    def __init__(self, address: str, token: str) -> None:
        self.address = address
        self._token = token
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                base_url=self.address,
                headers={"X-Vault-Token": self._token},
                timeout=10.0,
                trust_env=False,
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def _get(self, api: str) -> dict[str, Any] | None:
        """The ``data`` of a 200; ``None`` for a 404 (no such secret, or its version
        deleted or destroyed: ``bao kv get`` finds nothing either)."""
        response = self._client().get(f"/v1/{api}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data = response.json().get("data")
        return data if isinstance(data, dict) else None

    def read(self, mount: str, path: str, version: int | None = None) -> dict[str, Any] | None:
        """A version's fields (default: the current one); ``None`` if it has none."""
        query = f"?version={version}" if version is not None else ""
        found = self._get(f"{mount}/data/{path}{query}")
        data = found.get("data") if found else None
        return data if isinstance(data, dict) else None

    def read_entry(self, mount: str, path: str) -> tuple[int, dict[str, Any] | None] | None:
        """The current version's number and fields; ``None`` when the secret does not exist."""
        response = self._client().get(f"/v1/{mount}/data/{path}")
        if response.status_code == 404 and not response.json().get("data"):
            return None
        if response.status_code not in (200, 404):
            response.raise_for_status()
        body = response.json()["data"]
        return int(body["metadata"]["version"]), body.get("data")

    def metadata(self, mount: str, path: str) -> dict[str, Any] | None:
        return self._get(f"{mount}/metadata/{path}")

    def current_version(self, mount: str, path: str) -> int:
        """``current_version`` of a secret; 0 while it does not exist (or cannot be read)."""
        try:
            meta = self.metadata(mount, path)
        except httpx.HTTPError:
            return 0
        return int(meta["current_version"]) if meta else 0

    def destroyed(self, mount: str, path: str) -> int:
        """How many versions of a secret are destroyed (trimmed ones are gone, not counted)."""
        try:
            meta = self.metadata(mount, path)
        except httpx.HTTPError:
            return 0
        return sum(1 for v in (meta or {}).get("versions", {}).values() if v.get("destroyed"))

    def list(self, mount: str, folder: str) -> list[str]:
        response = self._client().request("LIST", f"/v1/{mount}/metadata/{folder}")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        keys = response.json()["data"]["keys"]
        return [str(k) for k in keys]

    def walk(self, mount: str, folder: str = "") -> list[str]:
        """Every secret under ``folder`` (recursively), by path."""
        found = []
        for name in self.list(mount, folder):
            path = f"{folder}/{name}".strip("/") if folder else name.strip("/")
            found += self.walk(mount, path) if name.endswith("/") else [path]
        return found

    def write(self, mount: str, path: str, data: dict[str, Any], *, cas: int) -> bool:
        """Write a new version if ``cas`` is still the current one; ``False`` if not."""
        response = self._client().post(
            f"/v1/{mount}/data/{path}", json={"options": {"cas": cas}, "data": data}
        )
        if response.status_code == 400 and "check-and-set" in response.text:
            return False
        response.raise_for_status()
        return True


@dataclass(frozen=True)
class VaultPayload:
    """A KV v2 secret's current version, read over HTTP as a consumer reads it."""

    policy: str
    mount: str
    path: str
    target_id: str
    verify_workspace: str | None
    vault: VaultHttp = field(compare=False, repr=False)
    # OpenBao is a process of its own: reading it often costs the bridge little.
    read_interval: float = 0.01
    check_interval: float = 0.05
    min_reads: int = 300

    @property
    def name(self) -> str:
        return f"{self.policy}:{self.path}"

    def read_key(self) -> tuple[str, str | None]:
        fields = self.vault.read(self.mount, self.path)
        if fields is None:
            raise Absent("no current version with data")
        return key_of(decode(json.dumps(fields), "json"), self.verify_workspace)


# -- the scenario -------------------------------------------------------------------------


class VaultScenario(Scenario):
    """Vault KV v2 targets (and one file), Vault state, on the session's OpenBao server."""

    iterations = 32
    latencies_ms = (0, 120)
    min_churn_revoked = 8
    min_held_published = 5
    # The windows this scenario exists for: a key minted but not yet recorded, a policy's
    # first secret written and its second not yet (or the state not yet told), a revoked
    # key's version destroyed before the generation is marked revoked, a record saved
    # mid-rotation.
    priority = (
        "minted in LangSmith",
        "written crash/churn-a",
        "retired crash/org",
        f"state {CHURN} 2",
        "written crash/churn-b",
    )

    def __init__(
        self,
        root: Path,
        emu: Emulator,
        bao: BaoServer,
        processes: list[subprocess.Popen[bytes]],
    ) -> None:
        self.bao = bao
        self.targets_mount = bao.fresh_mount()
        self.state_mount = bao.fresh_mount(cas_required=True)
        config_path = root / "bridge.toml"
        text = _config_text(
            emu.url, emu.bootstrap["workspace_ids"], self.targets_mount, self.state_mount
        )
        config_path.write_text(text, encoding="utf-8")
        config = load_config(config_path)
        assert isinstance(config.state, VaultStateSettings)
        self.vault = VaultHttp(bao.address, bao.root_token)
        self.clients = VaultClients(
            VaultSettings(address=bao.address), {"VAULT_TOKEN": bao.root_token}
        )
        self.store = VaultStateStore(config.state, self.clients)
        self.secrets = [
            VaultPayload(
                policy.name,
                target.mount,
                target.path,
                target.target_id,
                policy.verify_workspace,
                self.vault,
            )
            for policy in config.policy
            for target in policy.target
            if isinstance(target, VaultTarget)
        ]
        self.files = file_targets(config)
        self.leases_expired = 0
        self.unrecorded_seen: Counter[str] = Counter()  # secrets on a version the state lacks
        self.trimmed: Counter[str] = Counter()  # superseded versions past max_versions
        env = subprocess_env(
            LANGSMITH_ADMIN_KEY=emu.bootstrap["admin_key"],
            VAULT_ADDR=bao.address,
            VAULT_TOKEN=bao.root_token,
        )
        targets: list[Target] = [*self.secrets, *self.files]
        super().__init__(root, emu, config, config_path, targets, env, processes)

    def close(self) -> None:
        self.store.close()
        self.clients.close()
        self.vault.close()
        for mount in (self.targets_mount, self.state_mount):
            self.bao.root().sys.disable_secrets_engine(mount)

    # -- the state -----------------------------------------------------------------------

    def records(self) -> dict[str, PolicyRecord]:
        """Every policy's record, through the backend's own reader (malformed entries fail)."""
        return {name: self.store.load(name) for name in self.store.policies()}

    def state_entry(self, path: str) -> str:
        return f"{FOLDER}/{path}"

    def leases_of(self, run: RunLog) -> list[tuple[str, int, dict[str, Any]]]:
        """The unexpired lease entries ``run``'s process holds: (path, version, fields)."""
        held = []
        for name in self.vault.list(self.state_mount, self.state_entry(LEASES)):
            path = self.state_entry(f"{LEASES}/{name}")
            entry = self.vault.read_entry(self.state_mount, path)
            if entry is None or entry[1] is None:
                continue
            lease = read_lease(entry[1])
            unexpired = lease.expires_ms > time.time() * 1000
            if lease.holder and unexpired and lease.owner.endswith(f":{run.pid}"):
                held.append((path, entry[0], entry[1]))
        return held

    def settle(self, run: RunLog) -> None:
        """Expire the leases a killed runner left, as time would (its ``lease_ttl`` is long):
        the same holder, an expiry in the past, written with ``cas`` on the version read."""
        if not run.killed:
            return
        time.sleep(SETTLE_S)
        for _ in range(3):  # a request of the dead runner may still land: read again
            left = self.leases_of(run)
            for path, version, fields in left:
                expired = lease_data(str(fields["holder"]), EPOCH)
                if self.vault.write(self.state_mount, path, expired, cas=version):
                    self.leases_expired += 1
            if not left:
                return
            time.sleep(SETTLE_S)

    def state_secrets(self) -> list[str]:
        """Every version of every entry anywhere in the state mount, and their metadata."""
        texts = []
        for path in self.vault.walk(self.state_mount):
            meta = self.vault.metadata(self.state_mount, path) or {}
            texts.append(json.dumps(meta))
            for number, info in meta.get("versions", {}).items():
                if not info.get("destroyed") and not info.get("deletion_time"):
                    texts.append(json.dumps(self.vault.read(self.state_mount, path, int(number))))
        if not texts:
            return ["vacuous: the state mount holds no entry"]
        found = secrets_in("\n".join(texts))
        return [f"SECRET in the Vault state mount: {found} key-shaped string(s)"] if found else []

    # -- aimed kills ---------------------------------------------------------------------

    def triggers(self) -> list[Trigger]:
        def version_of(mount: str, path: str) -> Callable[[], int]:
            return lambda: self.vault.current_version(mount, path)

        def destroyed_in(path: str) -> Callable[[], int]:
            return lambda: self.vault.destroyed(self.targets_mount, path)

        state, entry = self.state_mount, self.state_entry
        return [
            *(
                CountTrigger("state", f"{p} {n}", version_of(state, entry(f"{POLICIES}/{p}")), n)
                for p in (CHURN, "org")
                for n in (1, 2, 3)
            ),
            CountTrigger("state", f"{HELD} 1", version_of(state, entry(f"{POLICIES}/{HELD}"))),
            CountTrigger("lease", f"{HELD} taken", version_of(state, entry(f"{LEASES}/{HELD}"))),
            *(CountTrigger("written", s.path, version_of(s.mount, s.path)) for s in self.secrets),
            *(
                CountTrigger("retired", s.path, destroyed_in(s.path))
                for s in self.secrets
                if s.policy != HELD  # its keys are never revoked
            ),
            *(FileTrigger("target", f.name, f.path) for f in self.files),
            CountTrigger("minted", "in LangSmith", lambda: len(self.emu.state.key_ids())),
            *(LogTrigger(event) for event in ENGINE_EVENTS[:4]),
        ]

    # -- Vault-specific checks -----------------------------------------------------------

    def check_after_run(
        self, run: RunLog, records: dict[str, PolicyRecord], *, final: bool = False
    ) -> list[str]:
        """A revoked generation's versions are destroyed (or trimmed by ``max_versions``);
        a run that finished released its leases. Counts the secrets a kill left on a
        version no generation records yet (the window between a write and its record)."""
        problems = []
        for secret in self.secrets:
            meta = self.vault.metadata(secret.mount, secret.path)
            versions = (meta or {}).get("versions", {})
            record = records.get(secret.policy)
            recorded: set[str] = set()
            for generation in record.generations if record else ():
                version = generation.targets.get(secret.target_id)
                if version is None:
                    continue
                recorded.add(version)
                info = versions.get(version)
                if generation.phase is Phase.REVOKED and info and not info.get("destroyed"):
                    problems.append(
                        f"{secret.name}: version {version} of revoked generation "
                        f"{generation.rotation_id} is not destroyed"
                    )
            current = str(meta["current_version"]) if meta else None
            if run.killed and current is not None and current not in recorded:
                self.unrecorded_seen[secret.name] += 1
        if not run.killed and self.leases_of(run):
            problems.append(f"run {run.index} finished and left a lease behind")
        return problems

    def final_checks(self, records: dict[str, PolicyRecord]) -> list[str]:
        """Ownership in ``custom_metadata``; the state names each secret's current version;
        superseded versions readable with their key; no readable version of a dead key."""
        problems = []
        if not self.unrecorded_seen:
            problems.append("vacuous: no kill left a secret on a version the state lacks")
        for secret in self.secrets:
            meta = self.vault.metadata(secret.mount, secret.path) or {}
            custom = meta.get("custom_metadata") or {}
            if custom.get(MANAGED_KEY) != "true" or custom.get(POLICY_KEY) != secret.policy:
                problems.append(f"{secret.name}: lost the bridge's custom_metadata: {custom}")
            record = records.get(secret.policy)
            current = record.current() if record else None
            recorded = current.targets.get(secret.target_id) if current else None
            if recorded != str(meta.get("current_version")):
                problems.append(
                    f"{secret.name}: the state records version {recorded} for the current "
                    f"generation, the secret is on {meta.get('current_version')}"
                )
            for generation in record.by_phase(Phase.SUPERSEDED) if record else ():
                version = generation.targets.get(secret.target_id)
                if version not in meta.get("versions", {}):
                    # Past the secret's max_versions (the mount's 10 by default): Vault
                    # dropped it; the key is still served by no target, and still alive.
                    self.trimmed[secret.name] += 1
                    continue
                fields = self.vault.read(secret.mount, secret.path, int(version or 0))
                key = (fields or {}).get(API_KEY)
                if not key or fingerprint(str(key)) != generation.fingerprint:
                    problems.append(
                        f"{secret.name}: superseded generation {generation.rotation_id} is "
                        f"not readable at version {version}"
                    )
            problems += self._dead_versions(secret, meta)
        return problems

    def _dead_versions(self, secret: VaultPayload, meta: dict[str, Any]) -> list[str]:
        """Versions still readable whose key LangSmith deleted: ``retire`` missed them."""
        problems = []
        now = self.emu.clock.now()
        for number, info in meta.get("versions", {}).items():
            if info.get("destroyed") or info.get("deletion_time"):
                continue
            fields = self.vault.read(secret.mount, secret.path, int(number)) or {}
            found = self.emu.state.find_key(str(fields.get(API_KEY, "")))
            if found is None or not found.usable_at(now):
                short = found.short_key if found else "?"
                problems.append(f"{secret.name}: version {number} still holds the dead key {short}")
        return problems

    def summary_lines(self) -> list[str]:
        written = {s.name: self.vault.current_version(s.mount, s.path) for s in self.secrets}
        destroyed = {s.name: self.vault.destroyed(self.targets_mount, s.path) for s in self.secrets}
        saves = {
            p.name: self.vault.current_version(
                self.state_mount, self.state_entry(f"{POLICIES}/{p.name}")
            )
            for p in self.config.policy
        }
        return [
            f"leases of killed runners expired by the test: {self.leases_expired}",
            f"secrets a kill left on an unrecorded version: {counts(self.unrecorded_seen)}",
            f"superseded versions trimmed by max_versions: {counts(self.trimmed)}",
            "Vault versions written per secret: "
            + ", ".join(f"{k} {v} ({destroyed[k]} destroyed)" for k, v in written.items()),
            "record saves per policy: " + ", ".join(f"{k} {v}" for k, v in saves.items()),
        ]


@pytest.mark.timeout(180)
def test_sigkill_with_vault_targets_and_vault_state_keeps_invariants(
    tmp_path: Path,
    emulator: Emulator,
    bao: BaoServer,
    processes: list[subprocess.Popen[bytes]],
    stoppers: list[Callable[[], None]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    seed = crash_seed()
    scenario = VaultScenario(tmp_path, emulator, bao, processes)
    stoppers.append(scenario.close)
    run_and_report(seed, lambda: scenario.run(seed, stoppers), capfd)
