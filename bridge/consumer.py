"""For applications: load a policy's LangSmith settings from its target and acknowledge them.

    from bridge.consumer import load_settings

    settings = load_settings("tracing-prod", consumer="api", config="/etc/bridge/bridge.toml")
    # os.environ now has LANGSMITH_API_KEY, LANGSMITH_ENDPOINT (and LANGSMITH_WORKSPACE_ID);
    # the bridge knows "api" uses this key, so the previous one can be revoked.

The consumer needs read access to the target and write access to its own acknowledgement
in the state store; it never sees the admin key.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bridge.config import config_path, load_config
from bridge.engine import acknowledge
from bridge.errors import BridgeError, ConfigError
from bridge.payload import API_KEY, ENDPOINT, WORKSPACE_ID
from bridge.secrets import Secret
from bridge.wiring import connections_for, open_state, open_target

EXPORTED = frozenset({ENDPOINT, WORKSPACE_ID})
"""The settings ``load_settings`` exports besides ``LANGSMITH_API_KEY``."""


@dataclass(frozen=True)
class Settings:
    """What was loaded. ``api_key`` is a ``Secret``: it does not print."""

    policy: str
    api_key: Secret
    endpoint: str | None
    workspace_id: str | None
    fingerprint: str
    rotation_id: str | None


def load_settings(
    policy: str,
    consumer: str,
    *,
    config: str | Path | None = None,
    target: int = 0,
    environ: MutableMapping[str, str] | None = None,
    ack: bool = True,
    replica: str | None = None,
) -> Settings:
    """Read the policy's payload from its ``target`` (index in the config), export it into
    ``environ`` (``os.environ`` by default) and, with ``ack``, acknowledge it as ``replica``
    (default: the host name) of ``consumer``, proving it holds the key.

    Call it again periodically (well within the policy's ``replica_ttl``): each call is
    the replica's heartbeat, and picks up a key the bridge published since.

    Raises:
        ConfigError: the config, policy or target is unknown.
        BridgeError: the target cannot be read or holds no key; the ack was refused.
    """
    environ = os.environ if environ is None else environ
    loaded = load_config(config_path(config, environ), environ)
    try:
        spec = loaded.get_policy(policy)
        target_config = spec.target[target]
    except (KeyError, IndexError):
        raise ConfigError(f"policy {policy!r} or its target #{target} is not configured") from None
    with connections_for(loaded, environ) as connections:
        provider = open_target(target_config, policy, connections)
        stored = provider.read()
        if stored is None or stored.api_key is None:
            raise BridgeError(f"target {provider.reference} holds no key for policy {policy!r} yet")
        environ[API_KEY] = stored.api_key.reveal()
        # Only the documented settings: a target someone edited may carry anything
        # (HTTPS_PROXY, LD_PRELOAD, ...), and the application's environment is not theirs.
        environ.update({n: v for n, v in stored.settings.items() if n in EXPORTED})
        if ack:
            with closing(open_state(loaded.state, connections)) as store:
                now = datetime.now(UTC)
                acknowledge(store, spec, consumer, stored.api_key, now, replica=replica)
    return Settings(
        policy=policy,
        api_key=stored.api_key,
        endpoint=stored.settings.get("LANGSMITH_ENDPOINT"),
        workspace_id=stored.settings.get("LANGSMITH_WORKSPACE_ID"),
        fingerprint=stored.api_key.fingerprint,
        rotation_id=stored.rotation_id,
    )
