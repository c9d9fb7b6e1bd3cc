"""Vault failing in the middle of a rotation, against a real OpenBao server: sealed, 5xx,
429 from a rate-limit quota, permission denied. Each time ``langsmith-bridge run`` fails
with one clear error line naming Vault and the path, exits 1, deletes no key and leaves a
state the next run can read; once the fault is gone the next run finishes the rotation
(every target on the current key) and the one after it revokes the superseded key (its
grace gate is open at once), destroying its versions.

The bridge reaches Vault through a tiny loopback proxy (``VaultProxy``) that passes every
request through and lets a test act at one instant: right before the rotation's first
secret write reaches the server, it seals the server, narrows the bridge's policy or sets
a quota on the targets' mount (then forwards the write: the real server answers), or it
answers 500 and 503 itself for a while. The sealed case has a server of its own; the
others use the session's server, on fresh mounts.

The runs are the CLI, in-process, authenticating from ``VAULT_ADDR`` and ``VAULT_TOKEN``.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import itertools
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hvac
import pytest

from bridge.cli import main as cli
from bridge.config import load_config
from bridge.config.vault import VaultSettings, VaultStateSettings
from bridge.emulator import Emulator
from bridge.payload import API_KEY
from bridge.secrets import KEY_PATTERN, fingerprint
from bridge.state import Phase, PolicyRecord
from providers.vault.client import VaultClients
from providers.vault.state import VaultStateStore
from providers.vault.state_entries import lease_path, read_lease
from tests.support.vault import BaoServer, bao_server

pytestmark = pytest.mark.integration

POLICY = "faulty"
PATHS = ("apps/faulty-a", "apps/faulty-b")
FOLDER = "langsmith-bridge/state"
ROTATE_EVERY_S = 2
# Two tries per call, so the retryable faults are retried before the run gives up.
RETRYING = 'timeout = "2s"\nmax_attempts = 2'
# The sealed server cannot release a lease: a short one, which needs calls without retries.
SHORT_LEASE = ('timeout = "1s"\nmax_attempts = 1', 'lease_ttl = "3s"')


# -- a proxy in front of Vault -------------------------------------------------------------

Hook = Callable[[str, str], int | None]
"""Called with each request's method and path before it is forwarded: a status to answer
with instead (an injected failure), or ``None`` to forward it."""


class VaultProxy:
    """A loopback HTTP proxy to one Vault server: forwards every request, unless ``hook``
    answers it; records what it saw."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.hook: Hook = lambda method, path: None
        self.seen: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                proxy.serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> VaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        injected = self.hook(request.command, request.path)
        if injected is not None:
            status = injected
            payload = json.dumps({"errors": [f"injected by the test's proxy ({status})"]})
            content, headers = payload.encode(), {"Content-Type": "application/json"}
        else:
            status, headers, content = self._forward(request, body)
        with self._lock:
            self.seen.append((request.command, request.path, status))
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        request.wfile.write(content)

    def _forward(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(
            self.upstream.hostname, self.upstream.port, timeout=10
        )
        try:
            skip = {"host", "connection", "content-length", "accept-encoding"}
            headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
            connection.request(request.command, request.path, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
            passed = {"Content-Type": response.getheader("Content-Type") or "application/json"}
            return response.status, passed, content
        finally:
            connection.close()


def first_secret_write(mount: str) -> Callable[[str, str], bool]:
    """Whether a request is a write of a target's data (a rotation's publish)."""
    prefix = f"/v1/{mount}/data/apps/"
    return lambda method, path: method in ("POST", "PUT") and path.startswith(prefix)


def once_at(when: Callable[[str, str], bool], act: Callable[[], None]) -> Hook:
    """A hook that calls ``act`` right before the first request ``when`` picks is forwarded."""
    done = threading.Event()
    lock = threading.Lock()

    def hook(method: str, path: str) -> int | None:
        with lock:
            if not done.is_set() and when(method, path):
                act()
                done.set()
        return None

    return hook


# -- the bridge under test -----------------------------------------------------------------


@dataclass
class World:
    """One policy with two Vault targets and the Vault state, behind the proxy."""

    emu: Emulator
    server: BaoServer
    proxy: VaultProxy
    targets: str  # the targets' mount
    state: str  # the state's mount
    config_path: Path

    @property
    def root(self) -> hvac.Client:
        return self.server.root()

    def cli(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli(["-c", str(self.config_path), *args])
        logging.getLogger("bridge").handlers.clear()
        text = out.getvalue() + err.getvalue()
        assert not KEY_PATTERN.search(text), "a key in the CLI's output"
        return code, out.getvalue(), err.getvalue()

    def run_ok(self) -> None:
        code, out, err = self.cli("run")
        assert code == 0, out + err

    def run_failing(self) -> str:
        """A run that fails: exit 1 and one error line, which is returned."""
        code, out, err = self.cli("run")
        assert code == 1, out + err
        errors = [line.strip() for line in out.splitlines() if line.startswith("  ! ")]
        assert len(errors) == 1, out
        assert "Traceback" not in err, err
        return errors[0].removeprefix("! ")

    def record(self) -> PolicyRecord:
        """The policy's record, through the backend's own reader, as a root operator."""
        clients = VaultClients(
            VaultSettings(address=self.server.address), {"VAULT_TOKEN": self.server.root_token}
        )
        try:
            settings = VaultStateSettings(backend="vault", mount=self.state, path=FOLDER)
            return VaultStateStore(settings, clients).load(POLICY)
        finally:
            clients.close()

    def served(self) -> dict[str, str]:
        """Target path -> the key its current version holds."""
        kv = self.root.secrets.kv.v2
        return {
            path: kv.read_secret_version(
                path, mount_point=self.targets, raise_on_deleted_version=True
            )["data"]["data"][API_KEY]
            for path in PATHS
        }

    def versions(self, path: str) -> dict[str, Any]:
        kv = self.root.secrets.kv.v2
        versions: dict[str, Any] = kv.read_secret_metadata(path, mount_point=self.targets)["data"][
            "versions"
        ]
        return versions

    def keys(self) -> dict[str, dict[str, Any]]:
        """The bridge's keys in LangSmith by id, deleted ones included (no secrets)."""
        return {
            k["id"]: k
            for k in self.emu.state.inspect_keys()
            if k["description"].startswith("langsmith-bridge:")
        }

    def deleted(self) -> set[str]:
        return {key_id for key_id, k in self.keys().items() if k["deleted"]}

    def accepted(self, key: str) -> bool:
        found = self.emu.state.find_key(key)
        return found is not None and found.usable_at(self.emu.clock.now())


@pytest.fixture
def make_world(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., World]]:
    """``make(server, token=..., run=...)``: a world on fresh mounts of ``server``, the
    bridge authenticating from ``VAULT_ADDR`` (the proxy) and ``VAULT_TOKEN``."""
    proxies: list[VaultProxy] = []
    worlds: list[World] = []
    monkeypatch.setenv("LANGSMITH_ADMIN_KEY", emulator.bootstrap["admin_key"])

    def make(
        server: BaoServer, *, token: str | None = None, langsmith: str = RETRYING, run: str = ""
    ) -> World:
        proxy = VaultProxy(server.address).__enter__()
        proxies.append(proxy)
        targets, state = server.fresh_mount(), server.fresh_mount(cas_required=True)
        monkeypatch.setenv("VAULT_ADDR", proxy.address)
        monkeypatch.setenv("VAULT_TOKEN", token or server.root_token)
        workspace = emulator.bootstrap["workspace_ids"][0]
        targets_toml = "\n".join(
            f'[[policy.target]]\nprovider = "vault"\nmount = "{targets}"\npath = "{p}"'
            for p in PATHS
        )
        path = tmp_path / "bridge.toml"
        path.write_text(
            f"""
[langsmith]
endpoint = "{emulator.url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"
{langsmith}

[state]
backend = "vault"
mount = "{state}"
path = "{FOLDER}"

[run]
verify_attempts = 1
every = "1m"
{run}

[[policy]]
name = "{POLICY}"
workspaces = ["{workspace}"]
ack = "grace"
min_overlap = "0s"
rotate_every = "{ROTATE_EVERY_S}s"
key_ttl = "1h"
{targets_toml}
""",
            encoding="utf-8",
        )
        load_config(path)  # a bad config would fail here, not as a "fault"
        worlds.append(World(emulator, server, proxy, targets, state, path))
        return worlds[-1]

    yield make
    for proxy in proxies:
        proxy.__exit__(None, None, None)
    for world in worlds:
        if world.server.process.poll() is None:  # a private server is gone already
            for mount in (world.targets, world.state):
                world.root.sys.disable_secrets_engine(mount)


# -- the scenario every fault goes through --------------------------------------------------


@dataclass
class Before:
    """What the first run published: the key every consumer holds when the fault strikes."""

    key_id: str
    deleted: set[str]  # ids of the keys deleted before the fault


def published_and_due(world: World) -> Before:
    """A first run publishes a key; then wait until the policy is due again."""
    world.run_ok()
    current = world.record().current()
    assert current is not None and current.key_id
    assert {fingerprint(key) for key in world.served().values()} == {current.fingerprint}
    time.sleep(ROTATE_EVERY_S + 0.1)
    return Before(current.key_id, world.deleted())


def assert_nothing_lost(world: World, before: Before, *, noted: bool = True) -> PolicyRecord:
    """After the failed run: no key deleted, every target still serves a key LangSmith
    accepts and the state knows, and the record is readable (the fault is gone by now);
    with ``noted``, the failure is the policy's ``last_error`` (not when Vault could take
    no write at all)."""
    assert world.deleted() == before.deleted, "the failed run deleted a key"
    record = world.record()
    current = record.current()
    assert current is not None and current.key_id == before.key_id
    known = {g.fingerprint for g in record.generations if g.phase.live}
    for path, key in world.served().items():
        assert world.accepted(key), f"{path} serves a key LangSmith refuses"
        assert fingerprint(key) in known, f"{path} serves a key the state does not know"
    for listed in world.keys().values():  # every key minted is in the record (its intent)
        rotation = listed["description"].rpartition("rotation=")[2]
        assert any(g.rotation_id == rotation for g in record.generations), listed["short_key"]
    assert not noted or record.last_error, "the failure was not recorded in the state"
    return record


def assert_finished(world: World, before: Before) -> None:
    """The next run finishes the rotation; the one after revokes the superseded key."""
    world.run_ok()
    record = world.record()
    current = record.current()
    assert current is not None and current.key_id != before.key_id
    assert record.by_phase(Phase.MINTING, Phase.PUBLISHING) == []
    assert {fingerprint(key) for key in world.served().values()} == {current.fingerprint}
    assert all(world.accepted(key) for key in world.served().values())

    world.run_ok()  # the superseded key's gate (grace, min_overlap 0s) is open
    record = world.record()
    old = next(g for g in record.generations if g.key_id == before.key_id)
    assert old.phase is Phase.REVOKED
    assert before.key_id in world.deleted()
    for path in PATHS:
        version = old.targets[f"vault::{world.targets}/{path}"]
        assert world.versions(path)[version]["destroyed"], f"{path} v{version} kept"
    live = {g.key_id for g in record.generations if g.phase.live}
    leaked = [k["short_key"] for i, k in world.keys().items() if not k["deleted"] and i not in live]
    assert leaked == [], "keys in no live generation"
    assert record.last_error is None


def names_vault_and_the_secret(line: str, world: World) -> None:
    """The error line says it is Vault, and which secret of which mount."""
    assert "vault" in line.lower(), line
    assert world.targets in line and any(path in line for path in PATHS), line


# -- the faults ----------------------------------------------------------------------------


def test_a_server_sealed_mid_rotation_fails_the_run_clearly_and_the_next_finishes(
    make_world: Callable[..., World], tmp_path: Path
) -> None:
    with bao_server(tmp_path / "sealed-bao.log") as server:
        world = make_world(server, langsmith=SHORT_LEASE[0], run=SHORT_LEASE[1])
        before = published_and_due(world)
        world.proxy.hook = once_at(first_secret_write(world.targets), server.root().sys.seal)

        line = world.run_failing()

        names_vault_and_the_secret(line, world)
        assert "503" in line or "sealed" in line.lower(), line
        assert server.root().sys.is_sealed()
        server.root().sys.submit_unseal_key(unseal_key(tmp_path / "sealed-bao.log"))
        assert not server.root().sys.is_sealed()
        assert_nothing_lost(world, before, noted=False)

        # Sealed, the runner could not release its lease: the next run waits it out.
        wait_for_lease(world)
        assert_finished(world, before)


@pytest.mark.parametrize("where", ["targets", "state"])
def test_5xx_mid_rotation_fail_the_run_clearly_and_the_next_finishes(
    make_world: Callable[..., World], bao: BaoServer, where: str
) -> None:
    """From the rotation's first secret write on, Vault answers 503 and 500 by turns: to
    every request of the targets' mount (nothing of the new key is written), or to every
    save of the policy's record (the secrets are written, the state never learns it)."""
    world = make_world(bao)
    before = published_and_due(world)
    failing_under = {
        "targets": f"/v1/{world.targets}/",
        "state": f"/v1/{world.state}/data/{FOLDER}/policies/",
    }[where]
    statuses = itertools.cycle((503, 500))
    failing = threading.Event()

    def hook(method: str, path: str) -> int | None:
        if first_secret_write(world.targets)(method, path):
            failing.set()
        return next(statuses) if failing.is_set() and path.startswith(failing_under) else None

    world.proxy.hook = hook

    line = world.run_failing()

    if where == "targets":
        names_vault_and_the_secret(line, world)
    else:
        assert "Vault" in line and f"{world.state}/data/{FOLDER}/policies/{POLICY}" in line, line
    assert re.search(r"\b50[03]\b|unavailable", line), line
    injected = [s for _, path, s in world.proxy.seen if path.startswith(failing_under)]
    assert len(injected) >= 2, "the failed call was not retried"
    world.proxy.hook = lambda method, path: None
    record = assert_nothing_lost(world, before)
    if where == "state":  # the secrets hold the new key, which the record has as publishing
        (publishing,) = record.by_phase(Phase.PUBLISHING)
        assert {fingerprint(k) for k in world.served().values()} == {publishing.fingerprint}
    assert_finished(world, before)


def test_a_5xx_blip_shorter_than_the_retries_is_ridden_out(
    make_world: Callable[..., World], bao: BaoServer
) -> None:
    world = make_world(bao)
    before = published_and_due(world)
    answered = threading.Event()

    def hook(method: str, path: str) -> int | None:
        if first_secret_write(world.targets)(method, path) and not answered.is_set():
            answered.set()
            return 503
        return None

    world.proxy.hook = hook
    world.run_ok()
    assert answered.is_set()
    current = world.record().current()
    assert current is not None and current.key_id != before.key_id
    assert {fingerprint(k) for k in world.served().values()} == {current.fingerprint}


def test_a_rate_limit_quota_mid_rotation_fails_the_run_clearly_and_the_next_finishes(
    make_world: Callable[..., World], bao: BaoServer
) -> None:
    world = make_world(bao)
    before = published_and_due(world)
    quota = f"crawl-{world.targets}"
    root = bao.root()

    def throttle() -> None:
        body = {"path": f"{world.targets}/", "rate": 1, "interval": "1m"}
        root.adapter.post(f"/v1/sys/quotas/rate-limit/{quota}", json=body)

    world.proxy.hook = once_at(first_secret_write(world.targets), throttle)
    try:
        line = world.run_failing()
    finally:
        root.adapter.delete(f"/v1/sys/quotas/rate-limit/{quota}")

    names_vault_and_the_secret(line, world)
    assert "429" in line or "rate-limited" in line, line
    assert any(s == 429 for *_, s in world.proxy.seen), "OpenBao never answered 429"
    assert_nothing_lost(world, before)
    assert_finished(world, before)


def test_permission_denied_mid_rotation_fails_the_run_clearly_and_the_next_finishes(
    make_world: Callable[..., World], bao: BaoServer
) -> None:
    root = bao.root()
    name = f"bridge-{secrets.token_hex(4)}"
    token = root.auth.token.create(policies=[name], ttl="1h")["auth"]["client_token"]
    world = make_world(bao, token=token)
    root.sys.create_or_update_policy(name, bridge_policy(world))
    before = published_and_due(world)

    narrowed = bridge_policy(world, target_data=["read"])  # it may no longer write secrets
    world.proxy.hook = once_at(
        first_secret_write(world.targets),
        lambda: root.sys.create_or_update_policy(name, narrowed),
    )
    line = world.run_failing()

    names_vault_and_the_secret(line, world)
    assert "permission denied" in line and "create or update" in line, line
    assert token not in line
    root.sys.create_or_update_policy(name, bridge_policy(world))
    assert_nothing_lost(world, before)
    assert_finished(world, before)
    root.sys.delete_policy(name)
    root.auth.token.revoke(token)


# -- helpers -------------------------------------------------------------------------------


def bridge_policy(world: World, *, target_data: list[str] | None = None) -> str:
    """An ACL policy granting the bridge its state folder and its targets, and no more."""
    data = json.dumps(target_data or ["create", "read", "update"])
    state = f"{world.state}/data/{FOLDER}/*"
    listing = f"{world.state}/metadata/{FOLDER}/*"
    return f"""
path "{state}" {{ capabilities = ["create", "read", "update"] }}
path "{listing}" {{ capabilities = ["read", "list"] }}
path "{world.targets}/data/apps/*" {{ capabilities = {data} }}
path "{world.targets}/metadata/apps/*" {{ capabilities = ["create", "read", "update"] }}
path "{world.targets}/destroy/apps/*" {{ capabilities = ["update"] }}
"""


def unseal_key(log: Path) -> str:
    """The dev server's unseal key, as it prints it at start."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = re.search(r"Unseal Key: (\S+)", log.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError("the dev server printed no unseal key")


def wait_for_lease(world: World, limit: timedelta = timedelta(seconds=10)) -> None:
    """Until the policy's lease is released or expired (a sealed server kept it)."""
    kv = world.root.secrets.kv.v2
    deadline = time.monotonic() + limit.total_seconds()
    while time.monotonic() < deadline:
        entry = kv.read_secret_version(
            f"{FOLDER}/{lease_path(POLICY)}", mount_point=world.state, raise_on_deleted_version=True
        )
        lease = read_lease(entry["data"]["data"])
        if not lease.holder or lease.expires_ms < time.time() * 1000:
            return
        time.sleep(0.1)
    raise AssertionError("the lease never expired")
