"""Vault / OpenBao: KV v2 targets and the Vault state backend, on one authenticated hvac
client per namespace (``VaultConnection``). Only hvac (and requests, under it) is imported.

Modules: ``client`` (logging in and staying logged in: token, AppRole, Kubernetes, JWT;
the error classifier), ``kv`` (the KV v2 calls both users share), ``target`` (the KV v2
target), ``state`` (the state backend).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bridge.config.vault import VaultSettings, VaultStateSettings, VaultTarget
from providers.vault.client import VaultClients

if TYPE_CHECKING:
    from bridge.provider import Provider
    from bridge.state.protocol import StateStore


class VaultConnection:
    """The process's Vault login and clients, shared by every target, policy and run.

    Args:
        settings: The ``[vault]`` section.
        environ: Where ``auth.token_env`` is looked up (the wiring passes the process
            environment; the adapters never read it themselves).
    """

    def __init__(
        self, settings: VaultSettings | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self.clients = VaultClients(settings or VaultSettings(), dict(environ or {}))

    def target(self, target: VaultTarget, policy: str) -> Provider:
        from providers.vault.target import VaultKvProvider

        return VaultKvProvider(target, policy, self.clients)

    def state(self, settings: VaultStateSettings) -> StateStore:
        from providers.vault.state import VaultStateStore

        return VaultStateStore(settings, self.clients)

    def close(self) -> None:
        self.clients.close()


__all__: list[Any] = ["VaultConnection"]
