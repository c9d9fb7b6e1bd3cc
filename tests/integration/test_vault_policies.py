"""The Vault policies of ``infra/vault``, proven in a real OpenBao server, not claimed.

``infra/vault/setup.sh`` loads ``bridge.hcl`` and one ``consumer.hcl`` per consumer, for a
fresh KV v2 mount, and writes the AppRole, Kubernetes and JWT roles. Then:

* the bridge, logged in by AppRole with a token holding ``bridge.hcl`` alone (no default
  policy), runs a whole rotation cycle over two Vault targets (one new, one adopted) and the
  Vault state, and ``validate --online`` passes; the server's audit log shows every request
  it made is one ``bridge.hcl`` grants, and every grant one it made (only renewal is left,
  which a short cycle never reaches);
* consumers holding ``consumer.hcl`` alone read their secret and acknowledge, as replicas,
  through ``bridge.consumer.load_settings``; again every grant is used and nothing else asked;
* every path outside those policies answers 403: a sibling secret, another mount, ``sys/``,
  token creation, the auth roles, another consumer's ack, the state as a consumer;
* each role of ``setup.sh`` hands out a token holding exactly its one policy.

The module starts an OpenBao dev server of its own, with a file audit device declared in its
configuration: OpenBao refuses ``bao audit enable`` through the API ("cannot enable audit
device via API; use declarative, config-based audit device management instead"). The
audit log holds HMACs, never a token or a secret value.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hvac
import pytest

from bridge.config import load_config
from bridge.config.vault import VaultSettings
from bridge.consumer import load_settings
from bridge.emulator import Emulator
from bridge.emulator.records import short_key
from bridge.engine import RunReport
from bridge.langsmith import RetryPolicy
from bridge.payload import API_KEY
from bridge.validate import check_online
from bridge.wiring import build_engine
from providers.vault.client import VaultAuthError, VaultClients
from tests.support.vault import BAO, BaoServer, _free_port, _wait_ready
from tests.support.vault_auth import JwtSigner, ServiceAccount, tls_files, token_review_server

pytestmark = pytest.mark.integration

INFRA = Path(__file__).resolve().parents[2] / "infra" / "vault"
SETUP = INFRA / "setup.sh"
STATE = "langsmith-bridge/state"
POLICY = "tracing-prod"
FAST_RETRY = RetryPolicy(max_attempts=6, base_delay=0.001, max_delay=0.01)
# Unaudited by design: the mount lookup ``bao kv`` and the bridge make answers any token
# with some capability under the path (OpenBao's preflight check), whatever the policies.
PREFLIGHT = "sys/internal/ui/mounts/"


# -- an audited server -------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request in the audit log: its operation (the capability it needs), its path
    and the policies of the token that sent it (none for a login)."""

    operation: str
    path: str
    policies: tuple[str, ...]
    denied: bool


@dataclass(frozen=True)
class Audit:
    """The server's file audit device."""

    path: Path

    def mark(self) -> int:
        """Where the log ends now: ``requests(since=mark)`` shows only what follows."""
        return self.path.stat().st_size if self.path.exists() else 0

    def requests(self, since: int = 0) -> list[Request]:
        with self.path.open("rb") as log:
            log.seek(since)
            lines = log.read().decode().splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        denied = {
            e["request"].get("id")
            for e in entries
            if e["type"] == "response" and "permission denied" in str(e.get("error", ""))
        }
        return [
            Request(
                operation=e["request"]["operation"],
                path=e["request"]["path"],
                policies=tuple((e.get("auth") or {}).get("policies") or ()),
                denied=e["request"].get("id") in denied,
            )
            for e in entries
            if e["type"] == "request"
        ]


@contextlib.contextmanager
def audited_bao(folder: Path) -> Iterator[tuple[BaoServer, Audit]]:
    """A dev server on 127.0.0.1 whose configuration declares a file audit device."""
    audit, config, log = folder / "audit.log", folder / "audit.hcl", folder / "bao.log"
    config.write_text(
        f'audit "file" "test" {{\n  options {{\n    file_path = "{audit}"\n  }}\n}}\n',
        encoding="utf-8",
    )
    port, token = _free_port(), f"root-{secrets.token_hex(8)}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(BAO),
                "server",
                "-dev",
                f"-config={config}",
                "-dev-no-store-token",
                f"-dev-root-token-id={token}",
                f"-dev-listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},
        )
    server = BaoServer(f"http://127.0.0.1:{port}", token, process)
    try:
        _wait_ready(server, log)
        yield server, Audit(audit)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BaoServer, Audit]]:
    with audited_bao(tmp_path_factory.mktemp("audited-bao")) as found:
        yield found


# -- the policies as loaded ----------------------------------------------------------------


_BLOCK = re.compile(r'^path "([^"]+)" \{\s*capabilities = \[([^\]]*)\]\s*\}', re.MULTILINE)


def grants(policy: str) -> dict[str, frozenset[str]]:
    """A policy's paths and their capabilities (the simple HCL of ``infra/vault``)."""
    found = {}
    for path, capabilities in _BLOCK.findall(policy):
        assert path not in found, f"{path} granted twice"
        found[path] = frozenset(c.strip().strip('"') for c in capabilities.split(",") if c.strip())
    assert found, "no path blocks"
    return found


def granting(granted: Mapping[str, frozenset[str]], path: str) -> str | None:
    """The grant whose path pattern ``path`` matches (``+``: one segment; a trailing ``*``:
    any rest). The policies of ``infra/vault`` never overlap, so at most one does."""
    matches = [
        pattern
        for pattern in granted
        if re.fullmatch(
            re.escape(pattern).replace(r"\+", "[^/]+").removesuffix(r"\*")
            + (".*" if pattern.endswith("*") else ""),
            path,
        )
    ]
    assert len(matches) <= 1, f"{path} matches {matches}"
    return matches[0] if matches else None


def unused_grants(granted: Mapping[str, frozenset[str]], requests: list[Request]) -> set[str]:
    """Check each request is one a grant allows; return the grants never used
    (``"<capability> <path>"``)."""
    used: set[tuple[str, str]] = set()
    for request in requests:
        if request.path.startswith(PREFLIGHT):
            continue
        pattern = granting(granted, request.path)
        assert pattern is not None, f"{request.operation} {request.path}: not in the policy"
        assert request.operation in granted[pattern], f"{request.operation} {request.path}"
        assert not request.denied, request
        used.add((pattern, request.operation))
    return {f"{c} {p}" for p, caps in granted.items() for c in caps if (p, c) not in used}


@dataclass
class Layout:
    """One deployment's Vault, set up by ``infra/vault/setup.sh``: a fresh KV v2 mount
    with the example layout (``apps/<app>/langsmith``, ``langsmith-bridge/state``), names
    of its own (so tests sharing a server never meet), and the bridge's AppRole files."""

    bao: BaoServer
    folder: Path
    mount: str = field(default_factory=lambda: f"kv-{secrets.token_hex(4)}")
    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    consumers: tuple[str, ...] = (f"{POLICY}:api", f"{POLICY}:worker:legacy")
    prefix: str = ""  # of the policies' and roles' names; default: t<suffix>-
    approle: str = ""  # the AppRole mount; default: approle-<suffix>

    def __post_init__(self) -> None:
        self.prefix = self.prefix or f"t{self.suffix}-"
        self.approle = self.approle or f"approle-{self.suffix}"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}bridge"

    def consumer(self, name: str, policy: str = POLICY) -> str:
        return f"{self.prefix}consumer-{policy}-{name}"

    @property
    def role_id_file(self) -> Path:
        return self.folder / "role-id"

    @property
    def secret_id_file(self) -> Path:
        return self.folder / "secret-id"

    @property
    def state(self) -> str:
        return f"{self.mount}/data/{STATE}"

    def setup(self, *steps: str, **settings: str) -> str:
        """Run ``setup.sh`` as an operator would, with the root token; returns its output."""
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.folder),
            "BAO": str(BAO),
            "VAULT_ADDR": self.bao.address,
            "VAULT_TOKEN": self.bao.root_token,
            "KV_MOUNT": self.mount,
            "PREFIX": self.prefix,
            "CONSUMERS": " ".join(self.consumers),
            "APPROLE_MOUNT": self.approle,
            "ROLE_ID_FILE": str(self.role_id_file),
            "SECRET_ID_FILE": str(self.secret_id_file),
            **settings,
        }
        done = subprocess.run(
            ["bash", str(SETUP), *steps], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert self.bao.root_token not in done.stdout + done.stderr
        for credential in (self.role_id_file, self.secret_id_file):
            if credential.exists():
                assert credential.read_text().strip() not in done.stdout + done.stderr
        return done.stdout

    def policy(self, name: str) -> dict[str, frozenset[str]]:
        return grants(self.bao.root().sys.read_policy(name)["data"]["rules"])

    def token(self, policy: str) -> str:
        """A token holding ``policy`` alone (``bao token create -no-default-policy``)."""
        created = self.bao.root().auth.token.create(
            policies=[policy], no_default_policy=True, ttl="10m"
        )
        return str(created["auth"]["client_token"])

    def login_bridge(self) -> str:
        """The bridge's token, by AppRole with the files ``setup.sh`` wrote."""
        answer = hvac.Client(url=self.bao.address).auth.approle.login(
            role_id=self.role_id_file.read_text().strip(),
            secret_id=self.secret_id_file.read_text().strip(),
            mount_point=self.approle,
        )
        return str(answer["auth"]["client_token"])


def status(http: httpx.Client, token: str, method: str, path: str, body: Any = None) -> int:
    """The HTTP status Vault answers ``method /v1/<path>`` with for ``token``."""
    return http.request(
        method, f"/v1/{path}", headers={"X-Vault-Token": token}, json=body
    ).status_code


def bridge_config(
    emu: Emulator, layout: Layout, auth: str, *, targets: list[dict[str, Any]] | None = None
) -> str:
    """A bridge.toml whose targets and state are in the layout's mount; ``auth`` is the
    ``[vault.auth]`` section's body (empty: a token from VAULT_TOKEN)."""
    targets = targets or [{"path": f"apps/{POLICY}/langsmith"}]
    blocks = "\n".join(
        '  [[policy.target]]\n  provider = "vault"\n'
        f'  mount = "{layout.mount}"\n'
        + "".join(f"  {name} = {json.dumps(value)}\n" for name, value in target.items())
        for target in targets
    )
    return f"""
[langsmith]
endpoint = "{emu.url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"

[vault]
address = "{layout.bao.address}"

[vault.auth]
{auth}

[state]
backend = "vault"
mount = "{layout.mount}"
path = "{STATE}"

[run]
verify_attempts = 1

[[policy]]
name = "{POLICY}"
default_workspace = "{emu.bootstrap["workspace_ids"][0]}"
consumers = ["api", "worker"]
ack = "explicit"
min_overlap = "0s"

{blocks}
"""


def approle_auth(layout: Layout) -> str:
    return (
        f'method = "approle"\nmount = "{layout.approle}"\n'
        f'role_id_file = "{layout.role_id_file}"\nsecret_id_file = "{layout.secret_id_file}"\n'
    )


def run(config: Path, emu: Emulator, *force: str) -> RunReport:
    """One run of the production engine (``build_engine``) on the emulator's clock."""
    with build_engine(
        load_config(config), clock=emu.clock.now, sleep=lambda _: None, retry=FAST_RETRY
    ) as engine:
        report = engine.run(engine.select(None), force=frozenset(force))
    assert report.ok, [o.error for o in report.outcomes]
    return report


def live_bridge_keys(emu: Emulator) -> list[str]:
    """The short keys of the bridge's keys LangSmith (the emulator) still has."""
    return sorted(
        k["short_key"]
        for k in emu.state.inspect_keys()
        if "langsmith-bridge:" in (k["description"] or "") and not k["deleted"]
    )


def versions(root: hvac.Client, mount: str, path: str) -> dict[str, bool]:
    """Each version of a secret: whether it is destroyed."""
    meta = root.secrets.kv.v2.read_secret_metadata(path, mount_point=mount)["data"]
    return {number: info["destroyed"] for number, info in meta["versions"].items()}


def current(root: hvac.Client, mount: str, path: str, version: int | None = None) -> str:
    answer = root.secrets.kv.v2.read_secret_version(
        path, version=version, mount_point=mount, raise_on_deleted_version=True
    )
    return str(answer["data"]["data"][API_KEY])


@pytest.fixture
def layout(audited: tuple[BaoServer, Audit], tmp_path: Path) -> Layout:
    bao, _ = audited
    made = Layout(bao, tmp_path)
    root = bao.root()
    root.sys.enable_secrets_engine("kv", path=made.mount, options={"version": "2"})
    # What else an app keeps beside its LangSmith secret, and a hand-made LangSmith secret
    # the bridge is to adopt.
    root.secrets.kv.v2.create_or_update_secret(
        f"apps/{POLICY}/db", secret={"password": secrets.token_hex(8)}, mount_point=made.mount
    )
    root.secrets.kv.v2.create_or_update_secret(
        "apps/legacy/langsmith",
        secret={API_KEY: "pasted-by-hand", "OWNER": "a human"},
        mount_point=made.mount,
    )
    return made


# -- the bridge with its policy alone --------------------------------------------------------


def test_the_bridge_holding_only_its_policy_rotates_and_asks_for_exactly_what_it_grants(
    audited: tuple[BaoServer, Audit],
    layout: Layout,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bao, audit = audited
    root = bao.root()
    out = layout.setup("kv", "policies", "approle")
    assert f"wrote policy {layout.bridge}" in out
    bridge = layout.policy(layout.bridge)
    assert bridge == grants(_rendered("bridge.hcl", layout))
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])
    targets: list[dict[str, Any]] = [
        {"path": f"apps/{POLICY}/langsmith"},
        {"path": "apps/legacy/langsmith", "adopt": True},
    ]
    config = tmp_path / "bridge.toml"
    config.write_text(bridge_config(emulator, layout, approle_auth(layout), targets=targets))
    new, adopted = f"apps/{POLICY}/langsmith", "apps/legacy/langsmith"

    run(config, emulator)  # mints, publishes to both, creates the state
    first = current(root, layout.mount, new)
    assert current(root, layout.mount, adopted) == first
    assert live_bridge_keys(emulator) == [short_key(first)]

    run(config, emulator, POLICY)  # rotate now: the old key waits for api and worker
    second = current(root, layout.mount, new)
    assert second != first
    assert current(root, layout.mount, new, version=1) == first
    assert len(live_bridge_keys(emulator)) == 2

    # Each consumer's replicas load the settings and acknowledge, holding their policy alone.
    consumer_config = tmp_path / "consumer.toml"
    consumer_config.write_text(bridge_config(emulator, layout, "", targets=targets))
    tokens = {name: layout.token(layout.consumer(name)) for name in ("api", "worker")}
    for name, target in (("api", 0), ("worker", 1)):
        for replica in ("pod-1", "pod-2"):
            environ = {"VAULT_TOKEN": tokens[name]}
            loaded = load_settings(
                POLICY,
                name,
                config=consumer_config,
                target=target,
                environ=environ,
                replica=replica,
            )
            assert loaded.api_key.reveal() == environ[API_KEY] == second

    run(config, emulator)  # the gate opens: the old key is revoked, its versions destroyed
    assert live_bridge_keys(emulator) == [short_key(second)]
    assert versions(root, layout.mount, new) == {"1": True, "2": False}
    # The hand-made version 1 of the adopted secret is not the bridge's to destroy.
    assert versions(root, layout.mount, adopted) == {"1": False, "2": True, "3": False}

    # validate --online, by AppRole and with a given token (VAULT_TOKEN) of the policy alone.
    for auth, environ in (
        (approle_auth(layout), {}),
        ("", {"VAULT_TOKEN": layout.token(layout.bridge)}),
    ):
        config.write_text(bridge_config(emulator, layout, auth, targets=targets))
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        loaded_config = load_config(config)
        with build_engine(loaded_config, retry=FAST_RETRY) as engine:
            assert check_online(loaded_config, engine) == []

    requests = audit.requests()
    ran = [r for r in requests if r.policies == (layout.bridge,)]
    # Renewal happens at two thirds of the token's TTL (20 minutes): never in a short cycle.
    assert unused_grants(bridge, ran) == {"update auth/token/renew-self"}
    for name in ("api", "worker"):
        policy = layout.consumer(name)
        acked = [r for r in requests if r.policies == (policy,)]
        # A given token is neither renewed in a short call nor revoked when it is done.
        assert unused_grants(layout.policy(policy), acked) == {
            "update auth/token/renew-self",
            "update auth/token/revoke-self",
        }


def _rendered(name: str, layout: Layout) -> str:
    """A policy file as ``setup.sh`` writes it for ``layout``."""
    text = (INFRA / name).read_text(encoding="utf-8")
    return text.replace('"secret/', f'"{layout.mount}/')


# -- 403 outside -------------------------------------------------------------------------------


def _bridge_outside(layout: Layout, other: str) -> list[tuple[str, str, Any]]:
    mount, state, app = layout.mount, layout.state, f"apps/{POLICY}"
    data = {"data": {"x": "1"}}
    escalate = {"policy": 'path "*" { capabilities = ["sudo", "create", "update", "read"] }'}
    return [
        # KV: beside, above and below its targets, and what it never does to them
        ("GET", f"{mount}/data/{app}/db", None),
        ("POST", f"{mount}/data/{app}/db", data),
        ("GET", f"{mount}/metadata/{app}/db", None),
        ("GET", f"{mount}/data/{app}", None),
        ("GET", f"{mount}/data/{app}/langsmith/more", None),
        ("LIST", f"{mount}/metadata/apps", None),
        ("LIST", f"{mount}/metadata/{app}", None),
        ("DELETE", f"{mount}/data/{app}/langsmith", None),
        ("DELETE", f"{mount}/metadata/{app}/langsmith", None),
        ("POST", f"{mount}/delete/{app}/langsmith", {"versions": [1]}),
        ("POST", f"{mount}/undelete/{app}/langsmith", {"versions": [1]}),
        ("GET", f"{mount}/config", None),
        ("POST", f"{mount}/config", {"max_versions": 1}),
        # another mount, the same path
        ("GET", f"{other}/data/{app}/langsmith", None),
        ("POST", f"{other}/data/{app}/langsmith", data),
        ("GET", f"{PREFLIGHT}{other}/{app}/langsmith", None),
        # the state: no acks written, no id rewritten, nothing listed, deleted or beside it
        ("POST", f"{state}/acks/{POLICY}/api", data),
        ("POST", f"{state}/meta/deployment", {"data": {"id": "someone-else"}}),
        ("POST", f"{state}/meta/other", data),
        ("POST", f"{state}/policies/{POLICY}/nested", data),
        ("LIST", f"{mount}/metadata/{STATE}", None),
        ("LIST", f"{mount}/metadata/{STATE}/acks", None),
        ("GET", f"{mount}/metadata/{STATE}/policies/{POLICY}", None),
        ("DELETE", f"{state}/policies/{POLICY}", None),
        ("DELETE", f"{mount}/metadata/{STATE}/leases/{POLICY}", None),
        ("POST", f"{mount}/destroy/{STATE}/policies/{POLICY}", {"versions": [1]}),
        ("GET", f"{mount}/data/langsmith-bridge/other", None),
        # sys/ and auth/: no mounts, policies, tokens, secret ids, audit, identity
        ("GET", "sys/mounts", None),
        ("POST", f"sys/mounts/x-{layout.suffix}", {"type": "kv"}),
        ("GET", "sys/auth", None),
        ("LIST", "sys/policies/acl", None),
        ("GET", f"sys/policies/acl/{layout.bridge}", None),
        ("POST", f"sys/policies/acl/{layout.bridge}", escalate),
        ("GET", "sys/audit", None),
        ("POST", "auth/token/create", {}),
        ("POST", "auth/token/lookup", {"token": "x"}),
        ("GET", f"auth/{layout.approle}/role/{layout.bridge}/role-id", None),
        ("POST", f"auth/{layout.approle}/role/{layout.bridge}/secret-id", {}),
        ("LIST", "identity/entity/id", None),
        ("POST", "sys/wrapping/wrap", {"x": "1"}),
        ("POST", "cubbyhole/x", {"x": "1"}),
    ]


def _consumer_outside(layout: Layout, other: str) -> list[tuple[str, str, Any]]:
    mount, state, app = layout.mount, layout.state, f"apps/{POLICY}"
    data = {"data": {"x": "1"}}
    return [
        # its secret: read, nothing more; no other secret
        ("POST", f"{mount}/data/{app}/langsmith", data),
        ("GET", f"{mount}/metadata/{app}/langsmith", None),
        ("POST", f"{mount}/destroy/{app}/langsmith", {"versions": [1]}),
        ("DELETE", f"{mount}/data/{app}/langsmith", None),
        ("GET", f"{mount}/data/apps/legacy/langsmith", None),  # the worker's
        ("GET", f"{mount}/data/{app}/db", None),
        ("LIST", f"{mount}/metadata/{app}", None),
        ("GET", f"{other}/data/{app}/langsmith", None),
        # the state: only reading the record and the run, and its own ack
        ("GET", f"{state}/acks/{POLICY}/worker", None),
        ("POST", f"{state}/acks/{POLICY}/worker", data),
        ("POST", f"{state}/acks/{POLICY}/api/nested", data),
        ("DELETE", f"{state}/acks/{POLICY}/api", None),
        ("GET", f"{mount}/metadata/{STATE}/acks/{POLICY}/api", None),
        ("POST", f"{state}/policies/{POLICY}", data),
        ("POST", f"{state}/runs/{POLICY}", data),
        ("GET", f"{state}/leases/{POLICY}", None),
        ("POST", f"{state}/leases/{POLICY}", data),
        ("GET", f"{state}/meta/deployment", None),
        ("GET", f"{state}/policies/other-policy", None),
        ("GET", f"{state}/acks/other-policy/api", None),
        ("LIST", f"{mount}/metadata/{STATE}/policies", None),
        # nothing of sys/, auth/ or the default policy
        ("GET", "sys/mounts", None),
        ("LIST", "sys/policies/acl", None),
        ("POST", "sys/capabilities-self", {"paths": [f"{mount}/data/{app}/db"]}),
        ("POST", "auth/token/create", {}),
        ("POST", "cubbyhole/x", {"x": "1"}),
    ]


def test_every_path_outside_the_policies_answers_403_to_the_bridge_and_to_a_consumer(
    audited: tuple[BaoServer, Audit],
    layout: Layout,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bao, _ = audited
    layout.setup("policies", "approle")
    other = f"kv-{secrets.token_hex(4)}"
    bao.root().sys.enable_secrets_engine("kv", path=other, options={"version": "2"})
    bao.root().secrets.kv.v2.create_or_update_secret(
        f"apps/{POLICY}/langsmith", secret={"x": "1"}, mount_point=other
    )
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])
    config = tmp_path / "bridge.toml"
    config.write_text(bridge_config(emulator, layout, approle_auth(layout)))
    run(config, emulator)  # the state and the target exist: writes would be updates

    bridge, consumer = layout.login_bridge(), layout.token(layout.consumer("api"))
    state, target = layout.state, f"{layout.mount}/data/apps/{POLICY}/langsmith"
    inside = {
        bridge: [("GET", target), ("GET", f"{state}/policies/{POLICY}")],
        consumer: [("GET", target), ("GET", f"{state}/policies/{POLICY}")],
    }
    outside = {
        bridge: _bridge_outside(layout, other),
        consumer: _consumer_outside(layout, other),
    }
    with httpx.Client(base_url=bao.address, timeout=10) as http:
        for token, probes in outside.items():
            for method, path in inside[token]:  # alive, and answered where its policy grants
                assert status(http, token, method, path) == 200, path
            answers = {f"{m} {p}": status(http, token, m, p, body) for m, p, body in probes}
            assert {probe: code for probe, code in answers.items() if code != 403} == {}
            for method, path in inside[token]:  # still alive: the 403s were the policy's
                assert status(http, token, method, path) == 200, path


# -- the auth roles --------------------------------------------------------------------------


def _login(bao: BaoServer, auth: dict[str, Any]) -> list[str]:
    """Log in as the bridge does (``VaultClients``); the policies of the token it got."""
    clients = VaultClients(VaultSettings(address=bao.address, auth=auth), {})
    try:
        return clients.call(
            None,
            "lookup-self",
            lambda client: sorted(client.auth.token.lookup_self()["data"]["policies"]),
        )
    finally:
        clients.close()


def test_each_auth_role_of_setup_sh_hands_out_a_token_of_exactly_one_policy(
    audited: tuple[BaoServer, Audit], layout: Layout, tmp_path: Path
) -> None:
    bao, _ = audited
    signer = JwtSigner()
    (tmp_path / "jwt.pem").write_text(signer.public_pem)
    bridge_sa = ServiceAccount("langsmith-bridge", "langsmith-bridge")
    api_sa = ServiceAccount("apps", "api")
    k8s, jwt = f"k8s-{layout.suffix}", f"jwt-{layout.suffix}"
    with token_review_server() as reviews:
        layout.setup(
            "policies",
            "approle",
            "kubernetes",
            "jwt",
            K8S_MOUNT=k8s,
            K8S_HOST=reviews.url,
            K8S_CA_CERT=str(tls_files(tmp_path).ca),  # unused over plain loopback HTTP
            CONSUMER_SA_NAMESPACE="apps",
            JWT_MOUNT=jwt,
            JWT_PUBKEY_FILE=str(tmp_path / "jwt.pem"),
            JWT_ISSUER="https://ci.test",
            JWT_AUDIENCE="langsmith-bridge",
            JWT_BRIDGE_SUBJECT="repo:platform/bridge",
            JWT_SUBJECT_PREFIX="system:serviceaccount:apps:",
        )
        files = {
            "bridge-sa": reviews.issue(bridge_sa, signer),
            "api-sa": reviews.issue(api_sa, signer),
            "bridge-id": signer.sign(
                {"iss": "https://ci.test", "sub": "repo:platform/bridge", "aud": "langsmith-bridge"}
            ),
            "api-id": signer.sign(
                {
                    "iss": "https://ci.test",
                    "sub": "system:serviceaccount:apps:api",
                    "aud": "langsmith-bridge",
                }
            ),
        }
        for name, value in files.items():
            (tmp_path / name).write_text(value)
        root = bao.root()
        api_role = layout.consumer("api")
        api_role_id = root.auth.approle.read_role_id(api_role, mount_point=layout.approle)
        (tmp_path / "api-role-id").write_text(api_role_id["data"]["role_id"])
        api_secret = root.auth.approle.generate_secret_id(api_role, mount_point=layout.approle)
        (tmp_path / "api-secret-id").write_text(api_secret["data"]["secret_id"])

        def approle(who: str) -> dict[str, Any]:
            prefix = "" if who == "bridge" else "api-"
            return {
                "method": "approle",
                "mount": layout.approle,
                "role_id_file": str(tmp_path / f"{prefix}role-id"),
                "secret_id_file": str(tmp_path / f"{prefix}secret-id"),
            }

        def by_file(method: str, mount: str, role: str, name: str) -> dict[str, Any]:
            return {
                "method": method,
                "mount": mount,
                "role": role,
                "jwt_file": str(tmp_path / name),
            }

        logins = {
            "approle bridge": approle("bridge"),
            "approle api": approle("api"),
            "kubernetes bridge": by_file("kubernetes", k8s, layout.bridge, "bridge-sa"),
            "kubernetes api": by_file("kubernetes", k8s, api_role, "api-sa"),
            "jwt bridge": by_file("jwt", jwt, layout.bridge, "bridge-id"),
            "jwt api": by_file("jwt", jwt, api_role, "api-id"),
        }
        found = {what: _login(bao, auth) for what, auth in logins.items()}
        # A service account or a subject is refused by a role it is not bound to.
        for crossed in (
            by_file("kubernetes", k8s, layout.bridge, "api-sa"),
            by_file("jwt", jwt, api_role, "bridge-id"),
        ):
            with pytest.raises(VaultAuthError, match="login refused"):
                _login(bao, crossed)

    assert found == {
        what: [layout.bridge if what.endswith("bridge") else api_role] for what in logins
    }
    assert len(reviews.reviews) >= 2


def test_setup_sh_refuses_a_malformed_consumer_and_an_unknown_step(layout: Layout) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "BAO": str(BAO),
        "VAULT_ADDR": layout.bao.address,
        "VAULT_TOKEN": "unused",
    }
    for args, extra, said in (
        (["policies"], {"CONSUMERS": "no-consumer-here"}, "is not <policy>:<consumer>"),
        (["policies"], {"CONSUMERS": "p:c#x"}, "is not <policy>:<consumer>"),
        (["deploy"], {}, "unknown step 'deploy'"),
    ):
        done = subprocess.run(
            ["bash", str(SETUP), *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (done.returncode, said in done.stderr) == (2, True), done.stderr


def test_the_policy_files_name_the_example_layout_and_only_the_consumer_placeholders() -> None:
    bridge = grants((INFRA / "bridge.hcl").read_text(encoding="utf-8"))
    consumer = grants((INFRA / "consumer.hcl").read_text(encoding="utf-8"))
    assert all(p.startswith(("secret/", "auth/token/", "sys/")) for p in [*bridge, *consumer])
    assert {p for p in consumer if "<" in p} == {
        "secret/data/apps/<app>/langsmith",
        f"secret/data/{STATE}/policies/<policy>",
        f"secret/data/{STATE}/runs/<policy>",
        f"secret/data/{STATE}/acks/<policy>/<consumer>",
    }
    assert os.access(SETUP, os.X_OK)
