"""Crash-safe file replacement, shared by the file state backend and the file provider."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path


def atomic_write(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a mix.

    The temporary file is created with ``mode`` before any byte is written, so the content
    is never readable with looser permissions, even for an instant.

    Raises:
        OSError: the folder cannot be created or written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)  # O_CREAT's mode is filtered by the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_dead_temporaries(path: Path) -> None:
    """Delete temporary files that writers killed mid-write left beside ``path``.

    They may hold a whole payload (a key among it), so they must not linger. A file whose
    writer is still alive is left alone: it is that writer's, and it is about to be renamed.
    Only ``path``'s own temporaries are touched (``.<name>.<pid>.tmp``).
    """
    for leftover in _LEFTOVERS.of(path):
        pid_text = leftover.name[len(path.name) + 2 : -len(".tmp")]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            leftover.unlink()


class _LeftoverIndex:
    """Which temporaries each folder holds, from one listing of it at most every
    ``RESCAN_S`` seconds.

    Listing the folder on every write made a run over N targets in one folder cost N
    listings of N entries. Dead writers' leftovers come from a crash, so they are found by
    the first write of a later run (a new process lists the folder afresh), as before.
    """

    RESCAN_S = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[Path, tuple[float, dict[str, list[Path]]]] = {}

    def of(self, path: Path) -> list[Path]:
        folder, now = path.parent, time.monotonic()
        with self._lock:
            listed = self._folders.get(folder)
            if listed is None or now - listed[0] >= self.RESCAN_S:
                listed = (now, _temporaries(folder))
                self._folders[folder] = listed
            return listed[1].pop(path.name, [])


def _temporaries(folder: Path) -> dict[str, list[Path]]:
    """The ``.<name>.<pid>.tmp`` files in ``folder``, by the name they were to become."""
    found: dict[str, list[Path]] = {}
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") and name.endswith(".tmp"):
                target, _, pid = name[1 : -len(".tmp")].rpartition(".")
                if target and pid.isdigit():
                    found.setdefault(target, []).append(Path(entry.path))
    return found


_LEFTOVERS = _LeftoverIndex()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
