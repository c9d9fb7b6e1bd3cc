"""``python -m bridge.emulator``: bootstrap file, console line, clean exit on signals."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.openapi import openapi_hook

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def launch(tmp_path: Path, *switches: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Run the emulator CLI on a free port with ``switches``; always reaped at the end."""
    bootstrap = tmp_path / "bootstrap.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge.emulator",
            "--port",
            "0",
            "--bootstrap-file",
            str(bootstrap),
            *switches,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, bootstrap
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Run the emulator CLI on a free port with default switches."""
    with launch(tmp_path) as served:
        yield served


def wait_for(
    path: Path, process: subprocess.Popen[str], timeout: float = 15.0
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "bootstrap file never appeared"
        time.sleep(0.02)
    data: dict[str, object] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_cli_writes_a_private_bootstrap_file_and_exits_cleanly_on_signal(
    serve: tuple[subprocess.Popen[str], Path], sig: signal.Signals
):
    process, path = serve

    bootstrap = wait_for(path, process)
    endpoint = str(bootstrap["endpoint"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not endpoint.endswith(":0")
    assert len(bootstrap["workspace_ids"]) >= 2  # type: ignore[arg-type]
    with httpx.Client(base_url=endpoint, event_hooks={"response": [openapi_hook]}) as client:
        response = client.get(
            "/api/v1/workspaces", headers={"X-API-Key": str(bootstrap["admin_key"])}
        )
    assert response.status_code == 200

    process.send_signal(sig)
    _, stderr = process.communicate(timeout=10)

    assert process.returncode == 0
    assert f"LangSmith emulator listening on {endpoint}" in stderr.splitlines()
    assert str(bootstrap["admin_key"]) not in stderr
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_cli_rejects_a_non_loopback_host(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "bridge.emulator", "--host", "0.0.0.0", "--port", "0"],  # noqa: S104
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
    )

    assert result.returncode == 2
    assert "loopback" in result.stderr


def test_cli_sets_the_auth_switches_and_the_expiry_cap(tmp_path: Path):
    switches = ("--auth-cache-delay", "2.5", "--last-used-granularity", "60")
    caps = ("--max-service-key-expiry-days", "30", "--max-pat-expiry-days", "7")
    with launch(tmp_path, *switches, *caps) as (process, path):
        bootstrap = wait_for(path, process)
        with httpx.Client(base_url=str(bootstrap["endpoint"]), timeout=5) as client:
            auth = client.get("/_emulator/auth").json()
            org = client.get("/_emulator/org").json()
            info = client.get(
                "/api/v1/orgs/current/info", headers={"X-API-Key": str(bootstrap["admin_key"])}
            ).json()

    assert auth == {"auth_cache_delay_s": 2.5, "last_used_granularity_s": 60.0}
    assert org == {"max_service_key_expiry_days": 30, "max_pat_expiry_days": 7}
    assert (info["max_service_key_expiry_days"], info["max_pat_expiry_days"]) == (30, 7)


def test_cli_rejects_a_negative_auth_cache_delay(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "bridge.emulator", "--port", "0", "--auth-cache-delay", "-1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert "auth_cache_delay_s" in result.stderr
