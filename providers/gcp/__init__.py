"""Google Cloud: the GCS state backend (and, next, Secret Manager targets), on one client
per service per process (``GcpConnection``). Only the Google client libraries are imported.

Modules: ``gcs_state`` (the state backend), ``gcs_layout`` (what each state object holds),
``gcs_objects`` (the GCS calls, the client, and their errors).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from bridge.config.gcp import GcsStateSettings

if TYPE_CHECKING:
    from bridge.state.protocol import StateStore


class GcpConnection:
    """The process's Google clients, shared by every target, state backend and run.

    One ``storage.Client`` per (endpoint, project), made on first use and closed by
    ``close``: a client holds an HTTP session and, under ADC, a token it refreshes.
    """

    def __init__(self, **_options: Any) -> None:
        self._storage: dict[tuple[str | None, str | None], Any] = {}
        self._lock = threading.Lock()

    def storage_client(self, settings: GcsStateSettings) -> Any:
        """The shared ``storage.Client`` for ``settings``' endpoint and project."""
        from providers.gcp.gcs_objects import client

        key = (settings.endpoint, settings.project)
        with self._lock:
            if key not in self._storage:
                self._storage[key] = client(settings)
            return self._storage[key]

    def state(self, settings: GcsStateSettings) -> StateStore:
        from providers.gcp.gcs_state import GcsStateStore

        store: StateStore = GcsStateStore(settings, self.storage_client(settings))
        return store

    def close(self) -> None:
        with self._lock:
            clients, self._storage = list(self._storage.values()), {}
        for made in clients:
            with contextlib.suppress(Exception):
                made.close()


__all__ = ["GcpConnection"]
