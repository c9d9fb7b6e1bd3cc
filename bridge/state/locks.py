"""OS file locks (``flock``) in ``<state>.locks/``, beside the state they guard.

The kernel drops a process's ``flock`` locks when it dies, SIGKILL included, so no lock
here ever outlives its holder. Lock files hold no data; they are never deleted (deleting
one while a process waits on it would let a third process lock a new file of that name).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bridge.errors import StateError


def locks_folder(state: Path) -> Path:
    """The folder of ``state``'s lock files: ``<state>.locks``."""
    return state.with_name(state.name + ".locks")


def open_lock(path: Path) -> int:
    """A descriptor on lock file ``path`` (created, mode 0600, with its folder if needed).

    A symlink planted at ``path`` is refused (``O_NOFOLLOW``): opening with ``O_CREAT``
    through it would create, or hold open, a file of someone else's choosing.

    Raises:
        StateError: the folder or the file cannot be created or opened, or is a symlink.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        reason = "it is a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise StateError(f"lock file {path} cannot be opened: {reason}") from exc


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on lock file ``path`` for the block, waiting for it.

    Each call opens its own descriptor, so two threads of one process exclude each other
    too (``flock`` locks belong to the open file description, not to the process).
    """
    fd = open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
