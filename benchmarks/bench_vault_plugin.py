"""The LangSmith secrets engine inside a real OpenBao, measured side by side in one run:

* **handshake**: from the host spawning the plugin to its handshake line (the host's log:
  ``starting plugin`` to ``plugin address``), for the first mount and a second one;
* **RSS per mount**: the plugin process's resident memory (``VmRSS``), one process a mount;
* **creds/s**: ``GET /v1/<mount>/creds/ci`` over the HTTP API (each one mints a LangSmith
  key on the emulator, writes the lease, and answers), sequential and with 4 clients, and
  the revocations of all of them by ``lease revoke -prefix``.

    .venv/bin/python benchmarks/bench_vault_plugin.py [--n 100]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.emulator import Emulator  # noqa: E402
from tests.support.bao_plugin import BaoPluginServer, bao_plugin_server  # noqa: E402
from tests.vault_plugin.test_bao import _plugin_pids, _rss_mb  # noqa: E402

CLI = Path(sys.executable).with_name("langsmith-bridge")


def mount(bao: BaoPluginServer, emu: Emulator, path: str) -> float:
    """Enable the engine at ``path``, configured and with role ``ci``; seconds to enable."""
    started = time.monotonic()
    bao.cli("secrets", "enable", f"-path={path}", "langsmith")
    enabled = time.monotonic() - started
    boot = emu.bootstrap
    bao.cli(
        "write", f"{path}/config", f"endpoint={boot['endpoint']}", f"admin_key={boot['admin_key']}"
    )
    bao.cli("write", f"{path}/roles/ci", f"workspaces={boot['workspace_ids'][0]}", "ttl=1h")
    return enabled


def creds_per_second(bao: BaoPluginServer, path: str, n: int, clients: int) -> float:
    headers = {"X-Vault-Token": bao.root_token}
    with httpx.Client(base_url=bao.address, headers=headers, timeout=60) as client:

        def one(_i: int) -> None:
            client.get(f"/v1/{path}/creds/ci").raise_for_status()

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(one, range(n)))
        return n / (time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="creds per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Emulator().start() as emu:
        plugins = Path(tmp) / "plugins"
        said = subprocess.run(
            [str(CLI), "vault-plugin", "install", "--dir", str(plugins)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        register = next(line.strip() for line in said.splitlines() if "plugin register" in line)
        with bao_plugin_server(Path(tmp) / "bao.log", plugins) as bao:
            bao.cli(*register.split()[1:])
            enables = [mount(bao, emu, "langsmith"), mount(bao, emu, "langsmith-b")]
            rss = [_rss_mb(pid) for pid in _plugin_pids(bao)]
            sequential = creds_per_second(bao, "langsmith", args.n, 1)
            parallel = creds_per_second(bao, "langsmith", args.n, 4)
            started = time.monotonic()
            bao.cli("lease", "revoke", "-prefix", "langsmith/creds/ci", timeout=300)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and any(
                not k["deleted"] and "vault ci" in (k["description"] or "")
                for k in emu.state.inspect_keys()
            ):
                time.sleep(0.05)
            revoked = (2 * args.n) / (time.monotonic() - started)
    print(f"python {sys.version.split()[0]}, {args.n} creds per measurement")
    enabled = ", ".join(f"{s * 1000:.0f} ms" for s in enables)
    print(f"secrets enable (spawn, handshake, setup): {enabled}")
    sizes = ", ".join(f"{r:.1f} MB" for r in rss)
    print(f"RSS per mount: {sizes} (median {statistics.median(rss):.1f})")
    print(f"creds/s: {sequential:.1f} sequential, {parallel:.1f} with 4 clients")
    print(f"revocations/s (lease revoke -prefix): {revoked:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
