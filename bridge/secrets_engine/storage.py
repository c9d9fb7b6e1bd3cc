"""The secrets engine's storage port: the four calls OpenBao's plugin storage offers (get,
put, delete, list), so the engine's semantics run the same on the host's brokered storage
and, in unit tests, on a dict. Values are JSON documents of pydantic models."""

from __future__ import annotations

import threading
from typing import Protocol, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


class EngineStorage(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> list[str]:
        """The entries directly under ``prefix`` (which ends in ``/``): names, and folder
        names ending in ``/``, as Vault's ``List`` answers."""
        ...


class MemoryStorage:
    """A dict, for unit tests and for the engine's own tests of the port."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self.entries.get(key)

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self.entries[key] = bytes(value)

    def delete(self, key: str) -> None:
        with self._lock:
            self.entries.pop(key, None)

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            names = {
                key[len(prefix) :].split("/", 1)[0] + ("/" if "/" in key[len(prefix) :] else "")
                for key in self.entries
                if key.startswith(prefix)
            }
        return sorted(names)


class Documents:
    """Typed reads and writes over an ``EngineStorage``."""

    def __init__(self, storage: EngineStorage) -> None:
        self.storage = storage

    def read(self, key: str, model: type[M]) -> M | None:
        raw = self.storage.get(key)
        return None if raw is None else model.model_validate_json(raw)

    def write(self, key: str, value: BaseModel) -> None:
        self.storage.put(key, value.model_dump_json().encode())

    def delete(self, key: str) -> None:
        self.storage.delete(key)

    def names(self, prefix: str) -> list[str]:
        return [name for name in self.storage.list(prefix) if not name.endswith("/")]


__all__ = ["Documents", "EngineStorage", "MemoryStorage"]
