"""Crash-safe replacement: no partial file, no lingering temporary with a payload in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bridge.fsutil import atomic_write


def test_leftovers_of_dead_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "out.env"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_leftover = tmp_path / f".out.env.{dead.stdout.strip()}.tmp"
    live_leftover = tmp_path / f".out.env.{os.getppid()}.tmp"
    unrelated = tmp_path / ".other.env.1.tmp"
    for path in (dead_leftover, live_leftover, unrelated):
        path.write_text("LANGSMITH_API_KEY=half-written")
    atomic_write(target, "A=1\n")
    assert target.read_text() == "A=1\n"
    assert not dead_leftover.exists()
    assert live_leftover.exists() and unrelated.exists()


def test_the_file_is_created_with_the_requested_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "f", "x", mode=0o600)
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
