"""Fixtures for the consumers' suite: an emulator that behaves like LangSmith's caches, the
stores of each variant (files; Secret Manager and GCS), and cleanup of every process a
test starts, whether it passes or fails."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.emulator import Emulator
from tests.consumers.fleet import AUTH_CACHE_DELAY_S, LAST_USED_GRANULARITY_S
from tests.consumers.stores import FileStores, GcpStores, Stores


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A loopback emulator on a free port with LangSmith's auth cache and coarse
    ``last_used_at`` switched on, and its default per-key rate limit."""
    emu = Emulator(
        host="127.0.0.1",
        port=0,
        auth_cache_delay_s=AUTH_CACHE_DELAY_S,
        last_used_granularity_s=LAST_USED_GRANULARITY_S,
    ).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Append every started process; those still alive at teardown are killed and reaped."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(params=["file", "gcp"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """The variant's targets and state. ``gcp``: a fake Secret Manager in this process (so
    it outlives every bridge it serves) and a fresh bucket of the session's fake-gcs-server.
    A test asks for it before ``processes``, so its processes are stopped first."""
    if request.param == "file":
        yield FileStores(tmp_path)
        return
    from providers.gcp.fake import FakeSecretManager

    gcs = request.getfixturevalue("gcs")
    with FakeSecretManager(max_workers=16) as sm:
        gcp = GcpStores(gcs, sm)
        try:
            yield gcp
        finally:
            gcp.close()
