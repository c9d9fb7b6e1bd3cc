"""For applications: load a policy's LangSmith settings from its target and acknowledge them.

    from bridge.consumer import load_settings

    settings = load_settings("tracing-prod", consumer="api", config="/etc/bridge/bridge.toml")
    # os.environ now has LANGSMITH_API_KEY, LANGSMITH_ENDPOINT (and LANGSMITH_WORKSPACE_ID);
    # the bridge knows "api" uses this key, so the previous one can be revoked.

The consumer needs read access to the target and either write access to its own
acknowledgement in the state store or the URL of ``langsmith-bridge serve``; it never sees
the admin key. With a consumer-only config (``bridge.config.consumer``) it needs nothing
of the bridge's configuration either::

    settings = load_settings(config="/etc/langsmith/consumer.toml")
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bridge.config import BridgeConfig, ConsumerConfig, TargetConfig, config_path, load_any_config
from bridge.config.consumer import AckChannel
from bridge.engine import acknowledge
from bridge.engine.ack import AckError, default_replica, record_ack
from bridge.errors import BridgeError, ConfigError
from bridge.payload import API_KEY, ENDPOINT, WORKSPACE_ID
from bridge.secrets import Secret
from bridge.wiring import Connections, connections_for, open_state, open_target

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
    policy: str | None = None,
    consumer: str | None = None,
    *,
    config: str | Path | None = None,
    target: int = 0,
    environ: MutableMapping[str, str] | None = None,
    ack: bool = True,
    replica: str | None = None,
) -> Settings:
    """Read the policy's payload from its target, export it into ``environ``
    (``os.environ`` by default) and, with ``ack``, acknowledge it as ``replica`` (default:
    the host name) of ``consumer``, proving it holds the key.

    ``config`` is the bridge's file (``target`` is then an index into the policy's
    targets) or a consumer's own (``bridge.config.consumer``), which names the policy,
    the consumer, the target and the ack channel, so ``policy`` and ``consumer`` may be
    left out.

    Call it again periodically (well within the policy's ``replica_ttl``): each call is
    the replica's heartbeat, and picks up a key the bridge published since.

    Raises:
        ConfigError: the config, policy or target is unknown.
        BridgeError: the target cannot be read or holds no key; the ack was refused.
    """
    environ = os.environ if environ is None else environ
    loaded = load_any_config(config_path(config, environ), environ)
    policy, consumer, target_config = resolve(loaded, policy, consumer, target)
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
            send_ack(loaded, connections, policy, consumer, stored.api_key, replica)
    return Settings(
        policy=policy,
        api_key=stored.api_key,
        endpoint=stored.settings.get("LANGSMITH_ENDPOINT"),
        workspace_id=stored.settings.get("LANGSMITH_WORKSPACE_ID"),
        fingerprint=stored.api_key.fingerprint,
        rotation_id=stored.rotation_id,
    )


def send_ack(
    loaded: BridgeConfig | ConsumerConfig,
    connections: Connections,
    policy: str,
    consumer: str,
    key: Secret,
    replica: str | None = None,
) -> Acked:
    """Acknowledge ``key`` for ``consumer`` of ``policy`` over the config's channel: the
    bridge's state (its config, or ``[ack.state]``) or the service's HTTP ack."""
    now = datetime.now(UTC)
    if isinstance(loaded, ConsumerConfig):
        replica = replica or loaded.consumer.replica or default_replica()
        channel = loaded.ack
        if channel.url is not None:
            return _http_ack(channel, policy, consumer, replica, key)
        assert channel.state is not None
        with closing(open_state(channel.state, connections)) as store:
            generation = record_ack(store, policy, consumer, key, now, replica)
    else:
        replica = replica or default_replica()
        with closing(open_state(loaded.state, connections)) as store:
            generation = acknowledge(
                store, loaded.get_policy(policy), consumer, key, now, replica=replica
            )
    return Acked(policy, consumer, replica, generation.short_key, generation.phase.value)


@dataclass(frozen=True)
class Acked:
    policy: str
    consumer: str
    replica: str
    short_key: str | None
    phase: str  # of the key's generation: current, superseded, ...


def resolve(
    loaded: BridgeConfig | ConsumerConfig,
    policy: str | None,
    consumer: str | None,
    target: int = 0,
) -> tuple[str, str, TargetConfig]:
    """The policy, consumer and target a call means, checked against the config.

    Raises:
        ConfigError: the names do not match a consumer config, or the policy or target
            is not in the bridge's config.
    """
    if isinstance(loaded, ConsumerConfig):
        mine = loaded.consumer
        if policy not in (None, mine.policy) or consumer not in (None, mine.name):
            raise ConfigError(
                f"this consumer config is for {mine.name!r} of policy {mine.policy!r}, "
                f"not {consumer!r} of {policy!r}"
            )
        return mine.policy, mine.name, loaded.target
    if policy is None or consumer is None:
        raise ConfigError("name the policy and the consumer (or use a consumer config)")
    try:
        return policy, consumer, loaded.get_policy(policy).target[target]
    except (KeyError, IndexError):
        raise ConfigError(f"policy {policy!r} or its target #{target} is not configured") from None


def _http_ack(channel: AckChannel, policy: str, consumer: str, replica: str, key: Secret) -> Acked:
    """``POST {url}/v1/ack`` with the key itself: the service proves and records it."""
    import httpx

    url = f"{channel.url}/v1/ack"
    try:
        answer = httpx.post(
            url,
            headers={"X-API-Key": key.reveal()},
            json={"policy": policy, "consumer": consumer, "replica": replica},
            timeout=channel.timeout,
            verify=channel.ca_cert or True,
            follow_redirects=False,  # never carry the key elsewhere
        )
    except httpx.HTTPError as exc:
        raise BridgeError(f"cannot reach the bridge at {url}: {type(exc).__name__}") from None
    if answer.status_code != 200:
        try:
            reason = str(answer.json().get("error", ""))
        except ValueError:
            reason = ""
        raise AckError(f"the bridge at {url} refused the ack ({answer.status_code} {reason})")
    body = answer.json()
    phase = "current" if body.get("current") else "superseded"
    return Acked(policy, consumer, replica, body.get("short_key"), phase)
