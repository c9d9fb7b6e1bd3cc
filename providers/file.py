"""Local files: a dotenv or JSON payload, written atomically with mode 0600.

For hosts, Kubernetes volumes and systemd credentials. The file carries the bridge's
ownership marker; a file without it is taken over only with ``adopt = true``, and a file
with another policy's marker never.

A file's version is its identity (inode, modification time in nanoseconds, size): every
write replaces the file by a rename, so a new write always has a new identity. When the
file still has the identity the state recorded, it holds what the bridge wrote there and
a no-op run need not read it.
"""

from __future__ import annotations

import logging
import os
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
from bridge.payload import Payload, Stored, decode, encode
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
        if refused:
            return Observed("foreign", fingerprint, identity, owner=owner, detail=refused)
        ownership: Ownership = "ours" if stored.owned_by(self.policy) else "adoptable"
        return Observed(ownership, fingerprint, identity, owner=owner, settings_digest=digest)

    def read(self) -> Stored | None:
        return self._read("read")

    def publish(self, payload: Payload) -> str:
        current = self._writable("publish")
        _warn_if_unsafe(self.path.parent)
        if current is not None and current.same_content(payload):
            return self._identity("publish") or ""
        try:
            atomic_write(self.path, encode(payload.reveal_env(), self.format), mode=0o600)
        except PermissionError as exc:
            raise self._error(ProviderAccessDenied, "publish", "permission denied") from exc
        except OSError as exc:
            raise self._error(
                ProviderUnavailable, "publish", exc.strerror or "write failed"
            ) from exc
        identity = self._identity("publish")
        written = self._read("publish")
        if identity is None or written is None or not written.same_content(payload):
            raise self._error(ProviderConflict, "publish", "does not hold what was just written")
        return identity

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
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise self._error(ProviderAccessDenied, operation, "permission denied") from exc
        except UnicodeDecodeError:
            # Not retryable (the bytes will not change), and the error object holds them.
            raise self._error(ProviderError, operation, "unreadable: not UTF-8 text") from None
        except OSError as exc:
            raise self._error(ProviderUnavailable, operation, f"cannot read: {exc}") from exc
        try:
            env = decode(text, self.format)
        except ValueError as exc:
            message = f"unreadable {self.format}: {exc}"
            raise self._error(ProviderError, operation, message) from None
        return Stored.from_env(env, version=self._identity(operation))

    def _identity(self, operation: str) -> str | None:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(ProviderUnavailable, operation, f"cannot stat: {exc}") from exc
        return f"{status.st_ino}:{status.st_mtime_ns}:{status.st_size}"

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
        """What the file holds, once it is known that this policy may replace it."""
        try:
            current = self._read(operation)
        except (ProviderAccessDenied, ProviderUnavailable):
            raise
        except ProviderError:
            message = "exists and is not a payload the bridge wrote"
            raise self._error(OwnershipError, operation, message) from None
        refused = self._refusal(current) if current is not None else None
        if refused:
            raise self._error(OwnershipError, operation, refused)
        return current

    def _error(self, kind: type[ProviderError], operation: str, message: str) -> ProviderError:
        return kind(message, provider=self.name, operation=operation, reference=self.reference)


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
