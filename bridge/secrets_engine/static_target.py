"""Where a static role's keys live for ``static-creds/<name>``: a target of the bridge's
engine on the mount's storage, keeping the current payload and the previous one while its
key waits for its consumers (``static/creds/<name>``)::

    {"current": "3", "previous": "2", "versions": {"2": {env}, "3": {env}}}

A version is published whole and never changed; ``retire`` drops a superseded version once
its key is revoked. The entry is the engine's own: no other writer exists, so ownership is
"ours" whenever it exists.
"""

from __future__ import annotations

import json
import threading

from bridge.payload import Payload, Stored
from bridge.provider import ABSENT, Known, Observed
from bridge.secrets_engine.storage import EngineStorage


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

    def entry(self) -> dict[str, object]:
        raw = self._storage.get(self.key)
        return json.loads(raw) if raw else {"versions": {}}

    def payload(self, which: str) -> dict[str, str] | None:
        """The env map of ``current`` or ``previous``, or ``None``."""
        entry = self.entry()
        version = entry.get(which)
        versions = entry.get("versions")
        if not isinstance(version, str) or not isinstance(versions, dict):
            return None
        env = versions.get(version)
        return dict(env) if isinstance(env, dict) else None

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
        env = self.payload("current")
        if env is None:
            return None
        return Stored.from_env(env, version=str(entry["current"]))

    def publish(self, payload: Payload) -> str:
        with self._lock:
            entry = self.entry()
            versions: dict[str, dict[str, str]] = dict(entry.get("versions") or {})  # type: ignore[call-overload]
            current = entry.get("current")
            if isinstance(current, str) and current in versions:
                stored = Stored.from_env(versions[current], version=current)
                if stored.same_content(payload):
                    return current
            number = str(max((int(v) for v in versions), default=0) + 1)
            versions[number] = payload.reveal_env()
            updated = {"current": number, "versions": versions}
            if isinstance(current, str) and current in versions:
                updated["previous"] = current
            self._storage.put(self.key, json.dumps(updated).encode())
            return number

    def retire(self, version: str) -> None:
        with self._lock:
            entry = self.entry()
            versions = dict(entry.get("versions") or {})  # type: ignore[call-overload]
            if entry.get("current") == version or version not in versions:
                return
            del versions[version]
            updated = {k: v for k, v in entry.items() if k != "previous" or v != version}
            updated["versions"] = versions
            self._storage.put(self.key, json.dumps(updated).encode())

    def discard(self, rotation_id: str) -> None:
        """Nothing is staged: a version is current as soon as it is written."""

    def validate(self) -> None:
        """Always writable: the entry is the engine's own."""


__all__ = ["StorageTarget"]
