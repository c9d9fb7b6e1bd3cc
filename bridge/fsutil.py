"""Crash-safe file replacement, shared by the file state backend and the file provider."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import threading
import time
from pathlib import Path


def atomic_write(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a mix.

    The temporary file is created with ``mode`` before any byte is written, so the content
    is never readable with looser permissions, even for an instant. It gets a name nobody
    can guess and is created with ``O_EXCL | O_NOFOLLOW``: someone who can add entries to
    the folder cannot have the payload written into a file or a symlink of theirs.

    Raises:
        OSError: the folder cannot be created or written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(path)
    temporary, fd = _create_temporary(path, mode)
    try:
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


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _create_temporary(path: Path, mode: int) -> tuple[Path, int]:
    """A new ``.<name>.<pid>.<random>.tmp`` beside ``path``, created by this call alone."""
    for _ in range(8):
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
        try:
            return temporary, os.open(temporary, _CREATE, mode)
        except FileExistsError:
            continue  # someone planted that name: draw another
    raise FileExistsError(f"no free temporary name beside {path}")


def unsafe_folder(folder: Path) -> str | None:
    """Why others could tamper with files in ``folder`` (writable by group or others without
    the sticky bit, or owned by another user than this process's), or ``None``."""
    try:
        status = folder.stat()
    except OSError:
        return None
    if status.st_uid not in (os.geteuid(), 0):
        return f"{folder} is owned by uid {status.st_uid}, not by this process's user"
    writable = status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable and not status.st_mode & stat.S_ISVTX:
        return f"{folder} can be written by other users (mode {stat.S_IMODE(status.st_mode):o})"
    return None


def fsync_path(path: Path) -> None:
    """Flush ``path`` to disk: a file's content, or a folder's entries (a rename in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_path  # what callers say for a folder, to make a rename inside it durable


def _remove_dead_temporaries(path: Path) -> None:
    """Delete temporary files that writers killed mid-write left beside ``path``.

    They may hold a whole payload (a key among it), so they must not linger. A file whose
    writer is still alive is left alone: it is that writer's, and it is about to be renamed.
    Only ``path``'s own temporaries are touched (``.<name>.<pid>.tmp``).
    """
    for leftover, pid in _LEFTOVERS.of(path):
        if _alive(pid):
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
        self._folders: dict[Path, tuple[float, dict[str, list[tuple[Path, int]]]]] = {}

    def of(self, path: Path) -> list[tuple[Path, int]]:
        folder, now = path.parent, time.monotonic()
        with self._lock:
            listed = self._folders.get(folder)
            if listed is None or now - listed[0] >= self.RESCAN_S:
                listed = (now, _temporaries(folder))
                self._folders[folder] = listed
            return listed[1].pop(path.name, [])


def _temporaries(folder: Path) -> dict[str, list[tuple[Path, int]]]:
    """The temporaries in ``folder`` (``.<name>.<pid>.<random>.tmp``, or ``.<name>.<pid>.tmp``
    from earlier versions) with their writers' pids, by the name they were to become."""
    found: dict[str, list[tuple[Path, int]]] = {}
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            parsed = _parse_temporary(entry.name)
            if parsed is not None:
                found.setdefault(parsed[0], []).append((Path(entry.path), parsed[1]))
    return found


def _parse_temporary(name: str) -> tuple[str, int] | None:
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    stem, _, last = name[1 : -len(".tmp")].rpartition(".")
    if last.isdigit() and stem:
        return stem, int(last)
    target, _, pid = stem.rpartition(".")
    if pid.isdigit() and target and len(last) == 16:
        return target, int(pid)
    return None


_LEFTOVERS = _LeftoverIndex()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
