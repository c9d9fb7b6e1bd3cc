"""Google Cloud: Secret Manager targets and the GCS state backend, on one client per
service, endpoint and identity per process (``GcpConnection``). Only the Google client
libraries are imported.

Modules: ``credentials`` (ADC, or the service account they impersonate: the one place
credentials are made); ``secret_manager`` (the target), ``sm_calls`` (its RPCs, labels and
errors), ``sm_client`` (building its client); ``gcs_state`` (the state backend),
``gcs_layout`` (what each state object holds), ``gcs_objects`` (the GCS calls, the client,
their errors); ``fake`` (a local Secret Manager).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from bridge.config.gcp import GcpTarget, GcsStateSettings, PubsubPushSettings

if TYPE_CHECKING:
    from bridge.provider import Provider
    from bridge.state.protocol import StateStore


class GcpConnection:
    """The process's Google clients, shared by every target, state backend and run.

    One ``storage.Client`` per (endpoint, project, impersonated account) and one
    ``SecretManagerServiceClient`` per (endpoint, insecure, impersonated account), made on
    first use and closed by ``close``: a client holds a connection and, under ADC, a token
    it refreshes, so two identities never share one.
    """

    def __init__(self, **_options: Any) -> None:
        self._storage: dict[tuple[str | None, str | None, str | None], Any] = {}
        self._secret_manager: dict[tuple[str | None, bool, str | None], Any] = {}
        self._lock = threading.Lock()

    def secret_manager_client(self, target: GcpTarget) -> Any:
        """The shared Secret Manager client for ``target``'s endpoint and identity."""
        from providers.gcp.sm_client import client

        key = (target.endpoint, target.insecure, target.impersonate_service_account)
        with self._lock:
            if key not in self._secret_manager:
                self._secret_manager[key] = client(target)
            return self._secret_manager[key]

    def target(self, target: GcpTarget, policy: str) -> Provider:
        """The adapter of one Secret Manager secret, on the shared client (made on its
        first call, so opening a target builds no client and reads no credentials)."""
        from providers.gcp.secret_manager import SecretManagerProvider

        provider: Provider = SecretManagerProvider(
            target, policy, connect=lambda: self.secret_manager_client(target)
        )
        return provider

    def storage_client(self, settings: GcsStateSettings) -> Any:
        """The shared ``storage.Client`` for ``settings``' endpoint, project and identity."""
        from providers.gcp.gcs_objects import client

        key = (settings.endpoint, settings.project, settings.impersonate_service_account)
        with self._lock:
            if key not in self._storage:
                self._storage[key] = client(settings)
            return self._storage[key]

    def state(self, settings: GcsStateSettings) -> StateStore:
        from providers.gcp.gcs_state import GcsStateStore

        store: StateStore = GcsStateStore(settings, self.storage_client(settings))
        return store

    def push_verifier(self, settings: PubsubPushSettings) -> Any:
        """The OIDC check of Pub/Sub pushes (``PushVerifier.verify``) for ``settings``."""
        from providers.gcp.push_auth import PushVerifier

        return PushVerifier(settings).verify

    def close(self) -> None:
        from providers.gcp.sm_client import close

        with self._lock:
            clients, self._storage = list(self._storage.values()), {}
            managers, self._secret_manager = list(self._secret_manager.values()), {}
        for made in clients:
            with contextlib.suppress(Exception):
                made.close()
        for made in managers:
            with contextlib.suppress(Exception):
                close(made)


__all__ = ["GcpConnection"]
