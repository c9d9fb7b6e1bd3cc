"""Fixtures for the crash suite: an in-process emulator, and cleanup of every process and
watcher thread a test starts, whether it passes or fails."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Protocol

import pytest

from bridge.emulator import Emulator


class Stoppable(Protocol):
    def stop(self) -> None: ...


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
def stoppers() -> Iterator[list[Stoppable]]:
    """Append anything with ``stop()`` (watcher threads); all are stopped at teardown."""
    items: list[Stoppable] = []
    yield items
    for item in reversed(items):
        item.stop()
