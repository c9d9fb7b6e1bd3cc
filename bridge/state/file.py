"""The embedded default state backend: one JSON file on a local disk.

Writes replace the file atomically (write a temporary file, fsync it, rename it over the
old one, fsync the folder), so a reader or a crash sees the old file or the new one, never
half of one. Two processes on one host are kept apart by OS file locks: a short one around
every read-modify-write, and one per policy held for the length of a lease. The kernel drops
a dead process's locks, so a runner killed with SIGKILL never leaves a lease behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bridge.errors import LeaseHeld, StateConflict, StateError
from bridge.fsutil import atomic_write
from bridge.state.model import Ack, PolicyRecord

FORMAT = 1


class FileStateStore:
    """State in ``path``; lock files live beside it in ``<path>.locks/``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._locks = path.with_name(path.name + ".locks")
        self._thread_lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    # -- reading -----------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        """The parsed file for read-only use, re-parsed only when the file was replaced.

        Every write renames a new file into place, so (inode, size, mtime) names a version;
        a run over many policies then parses the file once instead of once per policy.
        """
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return self._read()
        version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        cached = self._cache
        if cached is None or cached[0] != version:
            cached = (version, self._read())
            self._cache = cached
        return cached[1]

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"format": FORMAT, "policies": {}, "acks": {}}
        except OSError as exc:
            raise StateError(f"state file {self.path} cannot be read: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(
                f"state file {self.path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                "refusing to overwrite it: restore it from a backup or move it aside"
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise StateError(f"state file {self.path} has an unknown format; refusing to touch it")
        data.setdefault("policies", {})
        data.setdefault("acks", {})
        return data

    def load(self, policy: str) -> PolicyRecord:
        raw = self._snapshot()["policies"].get(policy)
        if raw is None:
            return PolicyRecord(policy=policy)
        try:
            return PolicyRecord.model_validate(raw)
        except ValidationError as exc:
            raise StateError(f"state file {self.path}: record of {policy!r} is malformed") from exc

    def policies(self) -> list[str]:
        return sorted(self._snapshot()["policies"])

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> dict[str, Ack]:
        raw = self._snapshot()["acks"].get(policy, {})
        try:
            return {
                consumer: Ack.model_validate(ack)
                for consumer, ack in raw.items()
                if consumers is None or consumer in consumers
            }
        except ValidationError as exc:
            raise StateError(f"state file {self.path}: acks of {policy!r} are malformed") from exc

    # -- writing -----------------------------------------------------------------------

    def save(self, record: PolicyRecord) -> PolicyRecord:
        stored = record.model_copy(update={"version": record.version + 1})

        def change(data: dict[str, Any]) -> None:
            existing = data["policies"].get(record.policy, {}).get("version", 0)
            if existing != record.version:
                # The cache key (inode, size, mtime) is a hint: two writes in one coarse
                # timestamp tick can repeat it. Re-read on the retry that follows.
                self._cache = None
                raise StateConflict(
                    f"policy {record.policy!r}: expected version {record.version}, found {existing}"
                )
            data["policies"][record.policy] = stored.model_dump(mode="json")

        self._update(change)
        return stored

    def record_ack(self, policy: str, ack: Ack) -> None:
        def change(data: dict[str, Any]) -> None:
            data["acks"].setdefault(policy, {})[ack.consumer] = ack.model_dump(mode="json")

        self._update(change)

    def _update(self, change: Callable[[dict[str, Any]], None]) -> None:
        with self._write_lock():
            data = self._read()
            change(data)
            self._replace(json.dumps(data, indent=1, sort_keys=True))

    def _replace(self, text: str) -> None:
        try:
            atomic_write(self.path, text)
        except OSError as exc:
            raise StateError(f"state file {self.path} cannot be written: {exc.strerror}") from exc

    # -- locking -----------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, policy: str, owner: str, ttl: timedelta) -> Iterator[None]:
        # The OS lock lives as long as the process does, so ``ttl`` is not needed here.
        del owner, ttl
        fd = _open_lock(self._locks / f"{policy}.lease")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LeaseHeld(f"policy {policy!r} is being reconciled by another runner") from None
        try:
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        with self._thread_lock:
            fd = _open_lock(self._locks / "state.lock")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def close(self) -> None:
        """Nothing is held between calls."""


def _open_lock(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateError(f"lock file {path} cannot be opened: {exc.strerror}") from exc
