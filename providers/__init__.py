"""Secret store adapters, one subpackage per store, registered here by name.

A store's module is imported only when a target or state backend of its is first opened,
so a run that writes only files never imports a cloud SDK, and a Lambda that writes only
to AWS never imports hvac. Each store has one connection per ``Connections`` (one per
process: the wiring owns it), which holds its SDK clients and opens every target and state
backend of that store on them.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from typing import Any

from bridge.config.targets import TargetConfig
from bridge.errors import ConfigError
from bridge.provider import Provider
from bridge.state.protocol import StateStore

# store -> (module:connection class, the extra that installs its SDK)
_STORES: dict[str, tuple[str, str]] = {
    "file": ("providers.file:FileConnection", ""),
    "aws": ("providers.aws:AwsConnection", "aws"),
    "vault": ("providers.vault:VaultConnection", "vault"),
    "gcp": ("providers.gcp:GcpConnection", "gcp"),
}
# state backend -> the store whose connection opens it
_STATE_BACKENDS: dict[str, str] = {"dynamodb": "aws", "vault": "vault", "gcs": "gcp"}


def names() -> list[str]:
    """The registered store names."""
    return sorted(_STORES)


class Connections:
    """The connections of one process, opened on first use and shared by every target,
    policy and run; ``close`` closes them all.

    Args:
        options: Per store, the keyword arguments its connection is built with (the
            wiring passes Vault's server settings and how to read its credentials).
    """

    def __init__(self, options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Any] = {}
        self._options = dict(options or {})

    def configure(self, options: Mapping[str, Mapping[str, Any]]) -> None:
        """Set the options of stores not opened yet (the Lambda learns its config through
        an AWS connection, then tells the other stores theirs)."""
        with self._lock:
            opened = sorted(set(options) & set(self._open))
            if opened:
                raise ConfigError(f"store(s) {', '.join(opened)} already opened; configure first")
            self._options.update(options)

    def connection(self, store: str) -> Any:
        """The connection of ``store`` (``file``, ``aws``, ...), opened on first use.

        Raises:
            ConfigError: no store of that name, or its SDK is not installed (the message
                names the extra to install).
        """
        with self._lock:
            if store not in self._open:
                spec = _STORES.get(store)
                if spec is None:
                    raise ConfigError(f"unknown provider {store!r}; known: {', '.join(names())}")
                self._open[store] = _load(*spec)(**self._options.get(store, {}))
            return self._open[store]

    def open(self, target: TargetConfig, policy: str) -> Provider:
        """The adapter for ``target`` acting for ``policy``, on its store's connection."""
        provider: Provider = self.connection(target.provider).target(target, policy)
        return provider

    def state(self, settings: Any) -> StateStore:
        """The SDK-backed state store ``settings.backend`` names."""
        store: StateStore = self.connection(_STATE_BACKENDS[settings.backend]).state(settings)
        return store

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection opened; safe to call twice."""
        with self._lock:
            opened, self._open = list(self._open.values()), {}
        for connection in opened:
            connection.close()


def _load(spec: str, extra: str) -> Any:
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and exc.name.startswith("providers"):
            raise
        raise ConfigError(
            f"{module_name} needs its extra: pip install 'langsmith-bridge[{extra}]' "
            f"({exc.name} is missing)"
        ) from exc
    return getattr(module, class_name)
