"""``langsmith-bridge serve`` as an operator starts it: a process of its own, its reconcile
loop publishing on schedule, its probes and metrics answering; and the refusals it makes
before binding (beyond loopback without a token, a loop slower than ``run.every``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Bridge, policy_toml
from tests.support.serving import free_port

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("langsmith-bridge")


def start(bridge: Bridge, *args: str) -> subprocess.Popen[str]:
    env = {"PATH": os.environ["PATH"], "LANGSMITH_ADMIN_KEY": bridge.emu.bootstrap["admin_key"]}
    return subprocess.Popen(
        [str(CLI), "-c", str(bridge.config_path), "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def bridge(make_bridge: Callable[..., Bridge]) -> Bridge:
    return make_bridge(policy_toml("tracing", ack="grace"), run='verify_attempts = 1\nevery = "1m"')


@pytest.fixture
def served_process(bridge: Bridge) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = start(bridge, "--port", str(port), "--every", "1m")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    yield url, process
    process.terminate()
    process.communicate(timeout=30)  # reaps it and closes its pipe


def test_the_loop_publishes_and_the_service_reports_it(
    bridge: Bridge, served_process: tuple[str, subprocess.Popen[str]]
) -> None:
    url, _process = served_process
    deadline = time.monotonic() + 30
    while not (bridge.root / "out" / "tracing.env").exists():
        assert time.monotonic() < deadline, "the loop did not publish"
        time.sleep(0.1)
    while 'langsmith_bridge_runs_total{outcome="ok"} 1.0' not in httpx.get(f"{url}/metrics").text:
        assert time.monotonic() < deadline, "the run was not counted"
        time.sleep(0.1)
    assert httpx.get(f"{url}/healthz").json() == {"ok": True}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--host", "0.0.0.0"), "--token-file"),  # noqa: S104 - refused, never bound
        (("--every", "2m"), "at most run.every"),
    ],
)
def test_serve_refuses_before_binding(bridge: Bridge, args: tuple[str, ...], said: str) -> None:
    process = start(bridge, "--port", str(free_port()), *args)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2 and said in output
