"""Crash-safe file replacement, shared by the file state backend and the file provider."""

from __future__ import annotations

import contextlib
import os
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
    """
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        pid_text = leftover.name[len(path.name) + 2 : -len(".tmp")]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            leftover.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
