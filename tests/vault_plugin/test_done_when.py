"""Issue 11's "Done when", in a real OpenBao (``bao server -dev -dev-plugin-dir``): the
LangSmith secrets engine, installed by ``langsmith-bridge vault-plugin install``, registered
by sha256 and mounted, against the LangSmith emulator.

* ``creds/ci`` returns a key the official SDK uses, with a lease the core renews (capped at
  ``max_ttl``) and revokes (the key is gone from LangSmith), that expires on its own, and
  that ``lease revoke -prefix`` and ``secrets disable`` revoke with every other;
* a plugin killed mid-mint is respawned by the host, and the sweep deletes the orphan;
* a static role rotates behind its consumer's ack; ``rotate-root`` replaces the admin key;
* a Vault policy allowing only ``creds/ci`` denies the rest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.emulator import Emulator
from tests.integration.test_vault_done_when import sdk_works
from tests.support.bao_plugin import BaoPluginServer, bao_plugin_server
from tests.vault_plugin.test_bao import _plugin_pids

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLI = Path(sys.executable).with_name("langsmith-bridge")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator().start() as emu:
        yield emu


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory, emulator: Emulator) -> Iterator[BaoPluginServer]:
    root = tmp_path_factory.mktemp("engine")
    plugins = root / "plugins"
    said = subprocess.run(
        [str(CLI), "vault-plugin", "install", "--dir", str(plugins)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    register = next(line.strip() for line in said.splitlines() if "plugin register" in line)
    with bao_plugin_server(root / "bao.log", plugins) as server:
        server.cli(*register.split()[1:])  # exactly the line install printed
        server.cli("secrets", "enable", "langsmith")
        boot = emulator.bootstrap
        server.cli(
            "write", "langsmith/config", f"endpoint={boot['endpoint']}",
            f"admin_key={boot['admin_key']}", f"admin_key_id={boot['admin_key_id']}",
            f"admin_org_role_id={boot['roles']['ORGANIZATION_ADMIN']}", "sweep_after=1s",
        )  # fmt: skip
        server.cli(
            "write", "langsmith/roles/ci", f"workspaces={boot['workspace_ids'][0]}",
            "ttl=1m", "max_ttl=10m",
        )  # fmt: skip
        yield server


def read_json(
    bao: BaoPluginServer, command: str, *args: str, token: str | None = None
) -> dict[str, Any]:
    """``bao COMMAND -format=json ARGS`` (COMMAND may be two words: ``lease renew``)."""
    done = bao.cli(*command.split(), "-format=json", *args, token=token)
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def live(emu: Emulator, key_id: str) -> bool:
    return any(k["id"] == key_id and not k["deleted"] for k in emu.state.inspect_keys())


def eventually(condition: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def kill_mid_mint(bao: BaoPluginServer, emu: Emulator, path: str, pid: int) -> str:
    """SIGKILL the plugin after LangSmith minted a key and before the plugin heard so (the
    emulator holds the answer back); the orphaned key's id."""
    before = {k["id"] for k in emu.state.inspect_keys()}

    def minted() -> set[str]:
        return {k["id"] for k in emu.state.inspect_keys()} - before

    emu.set_faults(answer_delay_ms=5000)
    reading = threading.Thread(target=lambda: bao.cli("read", path, check=False, timeout=90))
    reading.start()
    try:
        assert eventually(lambda: len(minted()) == 1, 30), "no mint reached LangSmith"
        os.kill(pid, signal.SIGKILL)
    finally:
        emu.set_faults(answer_delay_ms=0)
        reading.join(timeout=90)
    (orphan,) = minted()
    return orphan


def test_creds_are_a_key_the_sdk_uses_under_a_lease_renewed_and_revoked(
    bao: BaoPluginServer, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = read_json(bao, "read", "langsmith/creds/ci")
    data, lease = creds["data"], creds["lease_id"]
    assert set(data) >= {"api_key", "key_id", "short_key", "expires_at", "LANGSMITH_ENDPOINT"}
    assert creds["renewable"] and creds["lease_duration"] == 60
    fields = {
        "LANGSMITH_API_KEY": data["api_key"],
        "LANGSMITH_ENDPOINT": data["LANGSMITH_ENDPOINT"],
        "LANGSMITH_WORKSPACE_ID": emulator.bootstrap["workspace_ids"][0],
    }
    assert sdk_works(fields, emulator.bootstrap["workspace_ids"][0], monkeypatch)

    renewed = read_json(bao, "lease renew", "-increment=1h", lease)
    assert 540 <= renewed["lease_duration"] <= 600  # the core caps it at max_ttl
    bao.cli("lease", "revoke", lease)
    assert eventually(lambda: not live(emulator, data["key_id"]))


def test_a_lease_expires_on_its_own_and_prefix_revoke_and_disable_take_every_key(
    bao: BaoPluginServer, emulator: Emulator
) -> None:
    workspace = emulator.bootstrap["workspace_ids"][0]
    bao.cli("write", "langsmith/roles/short", f"workspaces={workspace}", "ttl=2s", "max_ttl=4s")
    short = read_json(bao, "read", "langsmith/creds/short")["data"]["key_id"]
    assert eventually(lambda: not live(emulator, short), 30)

    keys = [read_json(bao, "read", "langsmith/creds/ci")["data"]["key_id"] for _ in range(2)]
    bao.cli("lease", "revoke", "-prefix", "langsmith/creds/ci")
    assert eventually(lambda: not any(live(emulator, k) for k in keys))


def test_a_plugin_killed_mid_mint_is_respawned_and_the_orphan_swept(
    bao: BaoPluginServer, emulator: Emulator
) -> None:
    (pid,) = _plugin_pids(bao)
    orphan = kill_mid_mint(bao, emulator, "langsmith/creds/ci", pid)

    time.sleep(1.2)  # sweep_after
    swept = read_json(bao, "write", "-f", "langsmith/tidy")["data"]  # the host respawns it

    # (the host's own once-a-minute rollback may have come first: then tidy finds nothing)
    assert not live(emulator, orphan) and len(swept["orphans_deleted"]) <= 1
    assert _plugin_pids(bao) != [pid]


def test_the_hosts_own_rollback_sweeps_a_mint_cut_short(
    bao: BaoPluginServer, emulator: Emulator
) -> None:
    """No tidy here: the host's periodic rollback (once a minute) respawns the plugin and
    deletes the orphan by itself."""
    boot = emulator.bootstrap
    others = set(_plugin_pids(bao))
    bao.cli("secrets", "enable", "-path=swept", "langsmith")
    bao.cli(
        "write", "swept/config", f"endpoint={boot['endpoint']}",
        f"admin_key={boot['admin_key']}", "sweep_after=1s",
    )  # fmt: skip
    bao.cli("write", "swept/roles/ci", f"workspaces={boot['workspace_ids'][0]}")
    bao.cli("read", "swept/creds/ci")  # the mount's plugin is running
    (pid,) = set(_plugin_pids(bao)) - others  # one process per mount
    orphan = kill_mid_mint(bao, emulator, "swept/creds/ci", pid)

    assert eventually(lambda: not live(emulator, orphan), 150)
    bao.cli("secrets", "disable", "swept")


def test_a_static_role_rotates_behind_its_consumers_ack(
    bao: BaoPluginServer, emulator: Emulator
) -> None:
    workspace = emulator.bootstrap["workspace_ids"][0]
    bao.cli(
        "write", "langsmith/static-roles/svc", f"workspaces={workspace}",
        "consumers=api", "min_overlap=0s",
    )  # fmt: skip
    bao.cli("write", "-f", "langsmith/tidy")
    first = read_json(bao, "read", "langsmith/static-creds/svc")["data"]
    bao.cli("write", "-f", "langsmith/rotate-role/svc")
    second = read_json(bao, "read", "langsmith/static-creds/svc")["data"]
    assert second["previous_api_key"] == first["api_key"] != second["api_key"]

    bao.cli("write", "-f", "langsmith/tidy")
    assert "previous_api_key" in read_json(bao, "read", "langsmith/static-creds/svc")["data"]
    bao.cli(
        "write", "langsmith/static-roles/svc/ack", "consumer=api", "replica=api-0",
        f"api_key={second['api_key']}",
    )  # fmt: skip
    bao.cli("write", "-f", "langsmith/tidy")
    assert "previous_api_key" not in read_json(bao, "read", "langsmith/static-creds/svc")["data"]


def test_rotate_root_replaces_the_admin_key(bao: BaoPluginServer, emulator: Emulator) -> None:
    old = emulator.bootstrap["admin_key_id"]
    rotated = read_json(bao, "write", "-f", "langsmith/rotate-root")["data"]
    assert rotated["previous_deleted"] and not live(emulator, old)
    assert live(emulator, rotated["key_id"])
    assert "key_id" in read_json(bao, "read", "langsmith/creds/ci")["data"]  # the new key mints


def test_a_policy_allowing_only_creds_ci_denies_the_rest(bao: BaoPluginServer) -> None:
    policy = 'path "langsmith/creds/ci" { capabilities = ["read"] }'
    bao.cli("policy", "write", "ci-only", "-", stdin=policy)
    token = read_json(bao, "token create", "-policy=ci-only")["auth"]["client_token"]

    allowed = bao.cli("read", "langsmith/creds/ci", token=token, check=False)
    denied = [
        bao.cli("read", path, token=token, check=False)
        for path in ("langsmith/creds/short", "langsmith/config", "langsmith/roles/ci")
    ]

    assert allowed.returncode == 0
    assert all(d.returncode != 0 and "permission denied" in d.stderr for d in denied)


def test_every_path_answers_path_help(bao: BaoPluginServer) -> None:
    for path in ("creds/ci", "roles/ci", "config", "static-creds/svc", "rotate-root", "tidy"):
        said = bao.cli("path-help", f"langsmith/{path}").stdout
        assert len(said) > 80, path


def test_disabling_the_mount_revokes_every_key_it_issued(  # last: it unmounts the engine
    bao: BaoPluginServer, emulator: Emulator
) -> None:
    keys = [read_json(bao, "read", "langsmith/creds/ci")["data"]["key_id"] for _ in range(2)]

    bao.cli("secrets", "disable", "langsmith")

    assert eventually(lambda: not any(live(emulator, k) for k in keys))
