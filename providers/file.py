"""Local files: a dotenv or JSON payload, written atomically with mode 0600.

For hosts, Kubernetes volumes and systemd credentials. The file carries the bridge's
ownership marker; a file without it is taken over only with ``adopt = true``, and a file
with another policy's marker never.

A file's version is its identity (inode, modification time in nanoseconds, size): every
write replaces the file by a rename, so a new write always has a new identity. When the
file still has the identity the state recorded, it holds what the bridge wrote there and
a no-op run need not read it.

Reading is total and never blocks: only a regular file of at most
``bridge.payload.MAX_PAYLOAD_BYTES`` is opened (non-blocking, so a FIFO put in its place
cannot hang the run), and whatever else is there (a directory, a device, a dangling
symlink, garbage) is one ``ProviderError`` naming the path and never the content, which
blocks this target's policy and no other.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

from bridge.config.file import FileTarget
from bridge.errors import (
    OwnershipError,
    ProviderAccessDenied,
    ProviderConflict,
    ProviderError,
    ProviderUnavailable,
)
from bridge.fsutil import atomic_write, unsafe_folder
from bridge.logs import event
from bridge.payload import (
    MAX_PAYLOAD_BYTES,
    Format,
    Payload,
    PayloadFormatError,
    Stored,
    decode,
    encode,
    oversize,
)
from bridge.provider import ABSENT, Known, Observed, Ownership

log = logging.getLogger("bridge.providers")


class FileConnection:
    """Files need no client; this only opens targets."""

    def target(self, target: FileTarget, policy: str) -> FileProvider:
        return FileProvider(target, policy)

    def close(self) -> None:
        """Nothing to release."""


class FileProvider:
    """One file target."""

    name = "file"
    staging = None  # a file is written in one step: there is nothing to stage

    def __init__(self, target: FileTarget, policy: str) -> None:
        self.path = target.path
        self.format = target.format
        self.adopt = target.adopt
        self.policy = policy
        self.reference = str(target.path)

    def observe(self, known: Known) -> Observed:
        identity = self._identity("observe")
        if identity is None:
            return ABSENT
        if identity in known:
            return Observed(
                "ours", known[identity], identity, owner=self.policy, content_read=False
            )
        stored = self._read("observe")
        if stored is None:  # removed between the two looks
            return ABSENT
        refused = self._refusal(stored)
        fingerprint, owner, digest = stored.fingerprint, stored.policy, stored.settings_digest
        version = stored.version  # the identity of exactly what was read
        if refused:
            return Observed("foreign", fingerprint, version, owner=owner, detail=refused)
        ownership: Ownership = "ours" if stored.owned_by(self.policy) else "adoptable"
        return Observed(ownership, fingerprint, version, owner=owner, settings_digest=digest)

    def read(self) -> Stored | None:
        return self._read("read")

    def publish(self, payload: Payload) -> str:
        current = self._writable("publish")
        _warn_if_unsafe(self.path.parent)
        if current is not None and current.same_content(payload) and current.version:
            return current.version
        try:
            atomic_write(self.path, encode(payload.reveal_env(), self.format), mode=0o600)
        except PermissionError as exc:
            raise self._error(ProviderAccessDenied, "publish", "permission denied") from exc
        except OSError as exc:
            raise self._error(
                ProviderUnavailable, "publish", exc.strerror or "write failed"
            ) from exc
        written = self._read("publish")
        if written is None or written.version is None or not written.same_content(payload):
            raise self._error(ProviderConflict, "publish", "does not hold what was just written")
        return written.version

    def retire(self, version: str) -> None:
        """A file keeps no history, so there is nothing to retire."""

    def discard(self, rotation_id: str) -> None:
        """A file is written in one step: nothing is ever staged."""

    def validate(self) -> None:
        self._writable("validate")
        _warn_if_unsafe(self.path.parent)
        folder = _nearest_existing(self.path.parent)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise self._error(ProviderAccessDenied, "validate", f"folder {folder} is not writable")

    # -- pieces ------------------------------------------------------------------------

    def _read(self, operation: str) -> Stored | None:
        """What the file holds, or ``None`` when there is no file.

        Raises:
            ProviderError: the file cannot be read, or holds no payload (not retryable: the
                same bytes will not parse the next time); the message never quotes them.
        """
        loaded = self._load(operation)
        if loaded is None:
            return None
        data, identity = loaded
        try:
            env = _parse(data, self.format)
        except ValueError as exc:
            message = f"unreadable {self.format}: {exc}"
            raise self._error(ProviderError, operation, message) from None
        return Stored.from_env(env, version=identity)

    def _load(self, operation: str) -> tuple[bytes, str] | None:
        """The file's bytes and the identity of the very file they came from (its ``fstat``,
        not another look at the path, which may have been replaced since); ``None`` when
        there is no file.

        Only a regular file is opened, and without blocking: opening a FIFO would wait for
        a writer forever, and a device may never end. At most one byte more than a payload
        may have is read, whatever size the file claims.
        """
        if self._status(operation) is None:
            return None
        try:
            fd = os.open(self.path, _OPEN_FLAGS)
        except FileNotFoundError:
            return None  # removed between the two looks
        except OSError as exc:
            raise self._os_error(operation, "cannot open", exc) from exc
        with os.fdopen(fd, "rb") as handle:
            try:
                status = os.fstat(fd)
                self._check_kind(status, operation)  # replaced between the two looks
                data = handle.read(MAX_PAYLOAD_BYTES + 1)
            except OSError as exc:
                raise self._os_error(operation, "cannot read", exc) from exc
        too_large = oversize(max(status.st_size, len(data)))
        if too_large:
            raise self._error(ProviderError, operation, too_large)
        return data, _identity_of(status)

    def _identity(self, operation: str) -> str | None:
        status = self._status(operation)
        return None if status is None else _identity_of(status)

    def _status(self, operation: str) -> os.stat_result | None:
        """The file's status through any symlink; ``None`` when there is no file. What the
        bridge can never read as a payload (a directory, a FIFO, a device, a dangling
        symlink, a file over the size limit) is refused here, before it is opened."""
        try:
            status = self.path.stat()
        except FileNotFoundError:
            if self.path.is_symlink():
                # Not absent: publishing would replace the link by a file, and whoever
                # reads the place it points to would never see a key.
                message = "is a symbolic link to a file that does not exist"
                raise self._error(ProviderError, operation, message) from None
            return None
        except OSError as exc:
            raise self._os_error(operation, "cannot stat", exc) from exc
        self._check_kind(status, operation)
        too_large = oversize(status.st_size)
        if too_large:
            raise self._error(ProviderError, operation, too_large)
        return status

    def _check_kind(self, status: os.stat_result, operation: str) -> None:
        if not stat.S_ISREG(status.st_mode):
            message = f"is {_kind(status.st_mode)}, not a regular file"
            raise self._error(ProviderError, operation, message)

    def _os_error(self, operation: str, doing: str, exc: OSError) -> ProviderError:
        """``exc`` as a provider error: retryable only when the path itself is not wrong."""
        if isinstance(exc, PermissionError):
            return self._error(ProviderAccessDenied, operation, "permission denied")
        kind = ProviderError if exc.errno in _PERMANENT else ProviderUnavailable
        return self._error(kind, operation, f"{doing}: {exc.strerror or type(exc).__name__}")

    def _refusal(self, stored: Stored) -> str | None:
        """Why the file may not be written for this policy, or ``None`` when it may."""
        if stored.owned_by(self.policy):
            return None
        if stored.policy:
            return f"exists and belongs to policy {stored.policy!r}; refusing to overwrite"
        if not self.adopt:
            return "exists and was not written by langsmith-bridge; set adopt = true to take it"
        return None

    def _writable(self, operation: str) -> Stored | None:
        """What the file holds, once it is known that this policy may replace it. A file
        that cannot be read at all fails as it is; one that reads but holds no payload is
        someone else's."""
        loaded = self._load(operation)
        if loaded is None:
            return None
        data, identity = loaded
        try:
            current = Stored.from_env(_parse(data, self.format), version=identity)
        except ValueError as exc:
            message = f"exists and is not a payload the bridge wrote ({self.format}: {exc})"
            raise self._error(OwnershipError, operation, message) from None
        refused = self._refusal(current)
        if refused:
            raise self._error(OwnershipError, operation, refused)
        return current

    def _error(self, kind: type[ProviderError], operation: str, message: str) -> ProviderError:
        return kind(message, provider=self.name, operation=operation, reference=self.reference)


_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)

# What another attempt will not cure: the path itself is wrong.
_PERMANENT = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ENXIO})

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def _identity_of(status: os.stat_result) -> str:
    return f"{status.st_ino}:{status.st_mtime_ns}:{status.st_size}"


def _parse(data: bytes, fmt: Format) -> dict[str, str]:
    """The env map in ``data``.

    Raises:
        PayloadFormatError: not UTF-8, or not a payload of ``fmt``.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadFormatError("not UTF-8 text") from None  # the error holds the bytes
    return decode(text, fmt)


_warned: set[Path] = set()


def _warn_if_unsafe(folder: Path) -> None:
    """Say once per process per folder that others can tamper with it. Not refused: a
    Kubernetes ``emptyDir`` is mode 0777, and the write itself cannot be hijacked."""
    reason = unsafe_folder(folder)
    if reason and folder not in _warned:
        _warned.add(folder)
        event(log, "target_folder_unsafe", level=logging.WARNING, reason=reason)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
