"""Secret store adapters, one module per store, registered here by name.

Modules are imported only when a target of theirs is opened, so a run that writes only
files never imports a cloud SDK, and a Lambda that writes only to AWS never imports hvac.
"""

from __future__ import annotations

import importlib
from typing import Any

from bridge.config.targets import TargetConfig
from bridge.errors import ConfigError
from bridge.provider import Provider
from bridge.state.protocol import StateStore

_REGISTRY: dict[str, str] = {
    "file": "providers.file:FileProvider",
    "aws": "providers.aws:SecretsManagerProvider",
}
_STATE_REGISTRY: dict[str, tuple[str, str]] = {
    # backend -> (module:class, extra to install)
    "dynamodb": ("providers.dynamodb:DynamoDBStateStore", "aws"),
}


def names() -> list[str]:
    """The registered provider names."""
    return sorted(_REGISTRY)


def open_provider(target: TargetConfig, policy: str) -> Provider:
    """Construct the adapter for ``target`` on behalf of ``policy``.

    Raises:
        ConfigError: no adapter is registered under the target's provider name, or its
            SDK is not installed (the message names the extra to install).
    """
    spec = _REGISTRY.get(target.provider)
    if spec is None:
        raise ConfigError(f"unknown provider {target.provider!r}; known: {', '.join(names())}")
    provider: Provider = _load(spec, target.provider)(target, policy)
    return provider


def open_state(settings: Any) -> StateStore:
    """Construct the SDK-backed state store ``settings.backend`` names."""
    spec, extra = _STATE_REGISTRY[settings.backend]
    store: StateStore = _load(spec, extra)(settings)
    return store


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
