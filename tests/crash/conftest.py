"""Fixtures for the crash suite: an in-process emulator, a moto server, and cleanup of every
process and watcher thread a test starts, whether it passes or fails."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from bridge.emulator import Emulator
from tests.support.aws import serve_moto


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A loopback emulator on a free port, without a rate limit (the watcher is chatty)."""
    emu = Emulator(host="127.0.0.1", port=0, rate_limit=0).start()
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


@pytest.fixture
def stoppers() -> Iterator[list[Callable[[], None]]]:
    """Append ``stop`` callables (watcher threads); all are called at teardown, newest first."""
    items: list[Callable[[], None]] = []
    yield items
    for stop in reversed(items):
        stop()


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A loopback moto server on a free port (its URL), reached with credentials that can
    only ever reach moto; its data is reset and it is stopped at teardown."""
    with serve_moto(monkeypatch) as url:
        yield url
