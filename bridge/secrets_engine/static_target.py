"""Where a static role's keys live for ``static-creds/<name>``: a target of the bridge's
engine on the mount's storage, keeping the current payload and the previous one while its
key waits for its consumers (``static/creds/<name>``)::

    {"current": "3", "previous": "2", "versions": {"2": {env}, "3": {env}}}

A version is published whole and never changed; ``retire`` drops a superseded version once
its key is revoked. The entry is the engine's own: no other writer exists, so ownership is
"ours" whenever it exists.
"""

from __future__ import annotations

import threading
from typing import Literal

from pydantic import BaseModel, Field

from bridge.payload import Payload, Stored
from bridge.provider import ABSENT, Known, Observed
from bridge.secrets_engine.storage import EngineStorage


class _Entry(BaseModel):
    current: str | None = None
    previous: str | None = None
    versions: dict[str, dict[str, str]] = Field(default_factory=dict)


class StorageTarget:
    name = "vault-engine"
    staging = None

    def __init__(self, storage: EngineStorage, role: str, policy: str) -> None:
        self._storage = storage
        self.key = f"static/creds/{role}"
        self.reference = f"static-creds/{role}"
        self.policy = policy
        self._lock = threading.Lock()

    # -- what static-creds reads ------------------------------------------------------------

    def entry(self) -> _Entry:
        raw = self._storage.get(self.key)
        return _Entry.model_validate_json(raw) if raw else _Entry()

    def payload(self, which: Literal["current", "previous"]) -> dict[str, str] | None:
        """The env map of ``current`` or ``previous``, or ``None``."""
        entry = self.entry()
        version = entry.current if which == "current" else entry.previous
        return None if version is None else entry.versions.get(version)

    # -- the Provider protocol --------------------------------------------------------------

    def observe(self, known: Known) -> Observed:
        stored = self.read()
        if stored is None:
            return ABSENT
        return Observed(
            "ours",
            stored.fingerprint,
            stored.version,
            owner=stored.policy,
            settings_digest=stored.settings_digest,
        )

    def read(self) -> Stored | None:
        entry = self.entry()
        env = None if entry.current is None else entry.versions.get(entry.current)
        return None if env is None else Stored.from_env(env, version=entry.current)

    def publish(self, payload: Payload) -> str:
        with self._lock:
            entry = self.entry()
            current = entry.current
            if current is not None and current in entry.versions:
                stored = Stored.from_env(entry.versions[current], version=current)
                if stored.same_content(payload):
                    return current
            number = str(max((int(v) for v in entry.versions), default=0) + 1)
            versions = {**entry.versions, number: payload.reveal_env()}
            previous = current if current in entry.versions else None
            self._write(_Entry(current=number, previous=previous, versions=versions))
            return number

    def retire(self, version: str) -> None:
        with self._lock:
            entry = self.entry()
            if entry.current == version or version not in entry.versions:
                return
            versions = {v: env for v, env in entry.versions.items() if v != version}
            previous = None if entry.previous == version else entry.previous
            self._write(_Entry(current=entry.current, previous=previous, versions=versions))

    def _write(self, entry: _Entry) -> None:
        self._storage.put(self.key, entry.model_dump_json().encode())

    def discard(self, rotation_id: str) -> None:
        """Nothing is staged: a version is current as soon as it is written."""

    def validate(self) -> None:
        """Always writable: the entry is the engine's own."""


__all__ = ["StorageTarget"]
