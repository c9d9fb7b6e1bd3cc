"""Bounding how many calls a run makes to one secret store at once.

A run works on many policies concurrently; each store has its own API limits (Secrets
Manager's per-account request rates, a Vault server's capacity), so every provider call
passes through a semaphore shared by all targets of that store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from bridge.config import TargetConfig
from bridge.payload import Payload, Stored
from bridge.provider import Provider


class StoreLimits:
    """One semaphore per provider name, created on first use."""

    def __init__(self, per_store: int) -> None:
        self.per_store = per_store
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    def semaphore(self, store: str) -> threading.BoundedSemaphore:
        with self._lock:
            if store not in self._semaphores:
                self._semaphores[store] = threading.BoundedSemaphore(self.per_store)
            return self._semaphores[store]

    def wrap(
        self, open_target: Callable[[TargetConfig, str], Provider]
    ) -> Callable[[TargetConfig, str], Provider]:
        """``open_target`` whose providers take their store's semaphore for every call."""

        def opened(target: TargetConfig, policy: str) -> Provider:
            return BoundedProvider(open_target(target, policy), self.semaphore(target.provider))

        return opened


class BoundedProvider:
    """A provider whose calls hold its store's semaphore; everything else passes through."""

    def __init__(self, inner: Provider, semaphore: threading.BoundedSemaphore) -> None:
        self.inner = inner
        self.name = inner.name
        self.reference = inner.reference
        self._semaphore = semaphore

    def read(self) -> Stored | None:
        with self._semaphore:
            return self.inner.read()

    def publish(self, payload: Payload) -> str:
        with self._semaphore:
            return self.inner.publish(payload)

    def retire(self, version: str) -> None:
        with self._semaphore:
            self.inner.retire(version)

    def discard(self, rotation_id: str) -> None:
        with self._semaphore:
            self.inner.discard(rotation_id)

    def validate(self) -> None:
        with self._semaphore:
            self.inner.validate()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # Store-specific verbs (the AWS native-rotation steps) go straight through.
        return getattr(self.inner, name)
