"""Issue 8's "Done when", as one test, with the real programs a platform team runs.

``infra/vault/setup.sh`` sets an OpenBao server up (the ``secret`` mount, ``bridge.hcl``,
one ``consumer.hcl`` each for ``api`` and ``worker``, the bridge's AppRole role, its role id
and secret id files). The ``langsmith-bridge`` CLI, in processes of its own, with only
``VAULT_ADDR`` and the admin key in its environment and the issue's config shape (Vault
target, Vault state, AppRole auth):

1. ``run`` publishes a key that the official ``langsmith`` SDK, configured from the output of
   ``bao kv get -format=json`` alone (the real CLI, with a consumer's token), uses against
   the emulator;
2. ``rotate`` leaves the old version readable, and the old key working, while it waits for
   its consumers;
3. ``api`` acknowledges with ``langsmith-bridge ack --from-env`` and its own VAULT_TOKEN:
   the next ``run`` still waits for ``worker``;
4. ``worker`` acknowledges through ``bridge.consumer.load_settings``: the next ``run``
   deletes the old key and destroys its version;
5. a no-op ``run`` is counted in the server's audit log: its Vault requests, per target,
   per policy (the state) and per process (the login), printed for the closing note.

No output of any program holds a key, a token, the role id or the secret id.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import langsmith
import pytest
from langsmith.utils import LangSmithAuthError

from bridge.consumer import load_settings
from bridge.emulator import Emulator
from bridge.emulator.records import short_key
from bridge.payload import API_KEY, ENDPOINT, WORKSPACE_ID
from tests.integration.test_vault_policies import (
    POLICY,
    STATE,
    Audit,
    Layout,
    Request,
    audited_bao,
    live_bridge_keys,
    versions,
)
from tests.support.vault import BAO, BaoServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLI = Path(sys.executable).with_name("langsmith-bridge")
MOUNT = "secret"  # the dev server's own KV v2 mount, as in the issue
SECRET = f"apps/{POLICY}/langsmith"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BaoServer, Audit]]:
    with audited_bao(tmp_path_factory.mktemp("done-when-bao")) as found:
        yield found


def config(emu: Emulator, auth: str) -> str:
    """The issue's shape; no [vault] address: VAULT_ADDR gives it."""
    return f"""
[langsmith]
endpoint = "{emu.url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"

{auth}
[state]
backend = "vault"
mount = "{MOUNT}"
path = "{STATE}"

[run]
verify_attempts = 1

[[policy]]
name = "{POLICY}"
default_workspace = "{emu.bootstrap["workspace_ids"][0]}"
consumers = ["api", "worker"]
ack = "explicit"
min_overlap = "0s"

  [[policy.target]]
  provider = "vault"
  mount = "{MOUNT}"
  path = "{SECRET}"
"""


class Programs:
    """The CLIs a platform team runs, in processes of their own, outputs kept for checks."""

    def __init__(self, bao: BaoServer, emu: Emulator, folder: Path) -> None:
        self.bao, self.folder = bao, folder
        self.base = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(folder),
            "VAULT_ADDR": bao.address,
            "LANGSMITH_ADMIN_KEY": emu.bootstrap["admin_key"],
        }
        self.outputs: list[str] = []  # the bridge's: `bao kv get` shows the key, as it should

    def bridge(self, config: Path, *args: str, **env: str) -> str:
        done = self._run([str(CLI), "-c", str(config), *args], env)
        assert done.returncode == 0, done.stderr
        self.outputs += [done.stdout, done.stderr]  # none of which may show a secret
        return done.stdout

    def kv_get(self, token: str, version: int | None = None) -> dict[str, Any]:
        """``bao kv get -format=json secret/apps/tracing-prod/langsmith``, as a consumer."""
        flag = [f"-version={version}"] if version else []
        done = self._run(
            [str(BAO), "kv", "get", "-format=json", *flag, f"{MOUNT}/{SECRET}"],
            {"VAULT_TOKEN": token},
        )
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def _run(self, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            env={**self.base, **env},
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
        )


def sdk_works(fields: dict[str, str], workspace: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    """The official SDK, configured from a secret's fields alone, lists the workspace's
    projects (``False``: LangSmith refused the key)."""
    for name in (API_KEY, ENDPOINT, WORKSPACE_ID):
        monkeypatch.setenv(name, fields[name])
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    client = langsmith.Client()
    try:
        projects = list(client.list_projects())
    except LangSmithAuthError:
        return False
    finally:
        client.close()
    assert client.api_url == fields[ENDPOINT]
    assert {str(p.tenant_id) for p in projects} == {workspace}
    return True


def waiting_for(programs: Programs, config: Path) -> list[list[str]]:
    """``status --json``: whom each superseded key waits for."""
    found = json.loads(programs.bridge(config, "status", "--json"))
    entries = found["policies"] if isinstance(found, dict) else found
    (entry,) = [e for e in entries if e["name"] == POLICY]
    return [sorted(s["waiting_for"]) for s in entry["superseded"]]


def calls(requests: list[Request]) -> dict[str, Counter[str]]:
    """A run's requests by what they were for: the target, the state, the login."""
    kinds: dict[str, Counter[str]] = {
        "target": Counter(),
        "state": Counter(),
        "auth": Counter(),
        "mount lookup": Counter(),
    }
    for request in requests:
        path, op = request.path, request.operation
        if path.startswith("sys/internal/ui/mounts/"):
            kind = "mount lookup"
        elif SECRET in path:
            kind = "target"
        elif path.startswith(f"{MOUNT}/") and STATE in path:
            kind, path = "state", path.split(f"{STATE}/", 1)[-1]
        else:
            kind = "auth" if path.startswith("auth/") else f"other {path}"
        kinds.setdefault(kind, Counter())[f"{op} {path}"] += 1
    return kinds


def test_done_when_vault_target_and_state_approle_and_the_infra_policies(
    audited: tuple[BaoServer, Audit],
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bao, audit = audited
    root = bao.root()
    workspace = emulator.bootstrap["workspace_ids"][0]
    layout = Layout(
        bao,
        tmp_path,
        mount=MOUNT,
        consumers=(f"{POLICY}:api", f"{POLICY}:worker"),
        prefix="langsmith-",
        approle="approle",
    )
    setup_output = layout.setup("kv", "policies", "approle")
    assert "a secrets engine is mounted at secret/ already" in setup_output
    tokens = {name: layout.token(layout.consumer(name)) for name in ("api", "worker")}
    bridge_toml, consumer_toml = tmp_path / "bridge.toml", tmp_path / "consumer.toml"
    bridge_toml.write_text(
        config(
            emulator,
            '[vault.auth]\nmethod = "approle"\n'
            f'role_id_file = "{layout.role_id_file}"\n'
            f'secret_id_file = "{layout.secret_id_file}"\n',
        )
    )
    consumer_toml.write_text(config(emulator, ""))  # VAULT_ADDR and VAULT_TOKEN
    programs = Programs(bao, emulator, tmp_path)

    # 1. run publishes a key the SDK uses, configured from `bao kv get` alone.
    programs.bridge(bridge_toml, "run")
    published = programs.kv_get(tokens["api"])
    first = published["data"]["data"]
    assert published["data"]["metadata"]["version"] == 1
    assert set(first) == {API_KEY, ENDPOINT, WORKSPACE_ID, "LANGSMITH_BRIDGE_MANAGED"}
    assert sdk_works(first, workspace, monkeypatch)

    # 2. rotate: the old version stays readable and its key works while it waits.
    programs.bridge(bridge_toml, "rotate", POLICY)
    second = programs.kv_get(tokens["worker"])["data"]["data"]
    assert second[API_KEY] != first[API_KEY]
    assert programs.kv_get(tokens["api"], version=1)["data"]["data"] == first
    assert sdk_works(first, workspace, monkeypatch) and sdk_works(second, workspace, monkeypatch)
    assert waiting_for(programs, bridge_toml) == [["api", "worker"]]

    # 3. api acknowledges with the CLI and its consumer token: the gate waits for worker.
    said = programs.bridge(
        consumer_toml,
        "ack",
        POLICY,
        "--consumer",
        "api",
        "--from-env",
        VAULT_TOKEN=tokens["api"],
        LANGSMITH_API_KEY=second[API_KEY],
    )
    assert f"{POLICY}: api acknowledged {short_key(second[API_KEY])}" in said
    programs.bridge(bridge_toml, "run")
    assert waiting_for(programs, bridge_toml) == [["worker"]]
    assert versions(root, MOUNT, SECRET) == {"1": False, "2": False}
    assert len(live_bridge_keys(emulator)) == 2

    # 4. worker acknowledges through load_settings: the next run revokes and destroys.
    # (load_config reads VAULT_ADDR from the process environment, not from `environ`.)
    monkeypatch.setenv("VAULT_ADDR", bao.address)
    environ = {"VAULT_ADDR": bao.address, "VAULT_TOKEN": tokens["worker"]}
    loaded = load_settings(POLICY, "worker", config=consumer_toml, environ=environ)
    assert (loaded.fingerprint, environ[API_KEY]) == (loaded.api_key.fingerprint, second[API_KEY])
    programs.bridge(bridge_toml, "run")
    assert live_bridge_keys(emulator) == [short_key(second[API_KEY])]
    assert versions(root, MOUNT, SECRET) == {"1": True, "2": False}
    assert waiting_for(programs, bridge_toml) == []
    assert not sdk_works(first, workspace, monkeypatch)  # deleted in LangSmith
    assert sdk_works(second, workspace, monkeypatch)

    # 5. a no-op run, counted in the audit log.
    before = root.secrets.kv.v2.read_secret_metadata(SECRET, mount_point=MOUNT)["data"]
    mark = audit.mark()
    programs.bridge(bridge_toml, "run")
    counted = calls(audit.requests(since=mark))
    after = root.secrets.kv.v2.read_secret_metadata(SECRET, mount_point=MOUNT)["data"]
    assert after == before
    assert counted["target"] == Counter({f"read {MOUNT}/metadata/{SECRET}": 1})
    assert {c.split(" ")[0] for c in counted["state"]} <= {"read", "update"}
    assert sorted(counted) == ["auth", "mount lookup", "state", "target"]
    total = sum(sum(c.values()) for c in counted.values())
    print(f"\nno-op run: {total} Vault requests for 1 policy with 1 Vault target")
    for kind, found in counted.items():
        listed = ", ".join(f"{what} x{n}" if n > 1 else what for what, n in sorted(found.items()))
        print(f"  {kind}: {sum(found.values())} ({listed})")

    shown = "\n".join([setup_output, *programs.outputs])
    for value in [
        first[API_KEY],
        second[API_KEY],
        *tokens.values(),
        bao.root_token,
        layout.role_id_file.read_text().strip(),
        layout.secret_id_file.read_text().strip(),
    ]:
        assert value not in shown
