"""Local files: a dotenv or JSON payload, written atomically with mode 0600.

For hosts, Kubernetes volumes and systemd credentials. The file carries the bridge's
ownership marker; a file without it (or with another policy's) is never overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path

from bridge.config.targets import FileTarget
from bridge.errors import (
    OwnershipError,
    ProviderAccessDenied,
    ProviderError,
    ProviderUnavailable,
)
from bridge.fsutil import atomic_write
from bridge.payload import Payload, Stored, decode, encode


class FileProvider:
    """One file target."""

    name = "file"

    def __init__(self, target: FileTarget, policy: str) -> None:
        self.path = target.path
        self.format = target.format
        self.policy = policy
        self.reference = str(target.path)

    def read(self) -> Stored | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise self._error(ProviderAccessDenied, "read", "permission denied") from exc
        except UnicodeDecodeError:
            # Not retryable (the bytes will not change), and the error object holds them.
            raise self._error(ProviderError, "read", "unreadable: not UTF-8 text") from None
        except OSError as exc:
            raise self._error(ProviderUnavailable, "read", f"cannot read: {exc}") from exc
        try:
            env = decode(text, self.format)
        except ValueError as exc:
            raise self._error(ProviderError, "read", f"unreadable {self.format}: {exc}") from None
        stored = Stored.from_env(env)
        return Stored(
            api_key=stored.api_key,
            settings=stored.settings,
            policy=stored.policy,
            rotation_id=stored.rotation_id,
            version=stored.rotation_id,
        )

    def publish(self, payload: Payload) -> str:
        current = self._owned_or_absent("publish")
        if current is not None and current.same_content(payload):
            return payload.rotation_id
        try:
            atomic_write(self.path, encode(payload.reveal_env(), self.format), mode=0o600)
        except PermissionError as exc:
            raise self._error(ProviderAccessDenied, "publish", "permission denied") from exc
        except OSError as exc:
            raise self._error(
                ProviderUnavailable, "publish", exc.strerror or "write failed"
            ) from exc
        return payload.rotation_id

    def retire(self, version: str) -> None:
        """A file keeps no history, so there is nothing to retire."""

    def discard(self, rotation_id: str) -> None:
        """A file is written in one step: nothing is ever staged."""

    def validate(self) -> None:
        self._owned_or_absent("validate")
        folder = _nearest_existing(self.path.parent)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise self._error(ProviderAccessDenied, "validate", f"folder {folder} is not writable")

    def close(self) -> None:
        """Nothing to release."""

    def _owned_or_absent(self, operation: str) -> Stored | None:
        try:
            current = self.read()
        except ProviderError as exc:
            if isinstance(exc, ProviderAccessDenied | ProviderUnavailable):
                raise
            raise self._error(
                OwnershipError, operation, "exists and is not a payload the bridge wrote"
            ) from None
        if current is not None and not current.owned_by(self.policy):
            owner = f"policy {current.policy!r}" if current.policy else "someone else"
            raise self._error(
                OwnershipError, operation, f"exists and belongs to {owner}; refusing to overwrite"
            )
        return current

    def _error(self, kind: type[ProviderError], operation: str, message: str) -> ProviderError:
        return kind(message, provider=self.name, operation=operation, reference=self.reference)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
