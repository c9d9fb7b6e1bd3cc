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

_REGISTRY: dict[str, str] = {
    "file": "providers.file:FileProvider",
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
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"provider {target.provider!r} needs its extra: "
            f"pip install 'langsmith-bridge[{target.provider}]' ({exc.name} is missing)"
        ) from exc
    factory: Any = getattr(module, class_name)
    provider: Provider = factory(target, policy)
    return provider
