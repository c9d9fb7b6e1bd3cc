"""Logging in to Vault / OpenBao and staying logged in; one client per namespace.

This first cut supports token auth (``auth.token_env`` or ``auth.token_file``); AppRole,
Kubernetes and JWT come next, behind the same ``VaultClients.client``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import hvac

from bridge.config.vault import VaultSettings
from bridge.errors import ConfigError


class VaultClients:
    """Authenticated hvac clients of one Vault server, one per namespace, shared."""

    def __init__(self, settings: VaultSettings, environ: Mapping[str, str]) -> None:
        self.settings = settings
        self._environ = environ
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def client(self, namespace: str | None = None) -> Any:
        """The authenticated client for ``namespace`` (default: the section's)."""
        namespace = namespace or self.settings.namespace or ""
        with self._lock:
            if namespace not in self._clients:
                self._clients[namespace] = self._login(namespace)
            return self._clients[namespace]

    def _login(self, namespace: str) -> Any:
        settings = self.settings
        if not settings.address:
            raise ConfigError("vault: no address; set [vault] address or VAULT_ADDR")
        token = self._token()
        return hvac.Client(
            url=settings.address,
            token=token,
            namespace=namespace or None,
            timeout=settings.timeout.total_seconds(),
            verify=str(settings.ca_cert) if settings.ca_cert else True,
            cert=(
                (str(settings.client_cert), str(settings.client_key))
                if settings.client_cert and settings.client_key
                else None
            ),
        )

    def _token(self) -> str:
        auth = self.settings.auth
        if auth.token_file is not None:
            try:
                token = auth.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"vault auth token: cannot read {auth.token_file}: {exc.strerror}"
                ) from None
        else:
            token = self._environ.get(auth.token_env, "").strip()
        if not token:
            raise ConfigError(f"vault auth token: {auth.token_env} is not set")
        return token

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            adapter = getattr(client, "adapter", None)
            if adapter is not None:
                adapter.close()
