"""The composition root: the one module that turns a ``BridgeConfig`` into running parts,
and the only one that imports ``providers``. The CLI, the Lambda entry and the consumer
helper all start here; so do tests and benchmarks, which pass overrides (a clock, a sleep,
an HTTP transport, a retry policy, a provider factory) instead of re-wiring the engine, so
they run the production engine with its rate limiter and retries.

One ``Connections`` per process holds each store's SDK clients (one boto3 session, one
authenticated Vault client, ...); every target, state backend and run shares them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.config import (
    BridgeConfig,
    ConsumerConfig,
    TargetConfig,
    load_config,
    read_admin_key,
)
from bridge.config.gcp import PubsubPushSettings
from bridge.config.load import ENV_VAR as CONFIG_ENV
from bridge.config.model import FileStateSettings, StateSettings
from bridge.engine import Engine
from bridge.engine.guarded import Guard, GuardedProvider, GuardedState
from bridge.engine.runner import utcnow
from bridge.errors import ConfigError
from bridge.langsmith import LangSmithClient, RateLimiter, RetryPolicy
from bridge.notify import Notifier, WebhookNotifier
from bridge.provider import Provider
from bridge.secrets import Secret
from bridge.state import FileStateStore, StateStore
from providers import Connections

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Connections",
    "build_engine",
    "connections_for",
    "fan_out",
    "fetch_config_text",
    "notifiers_for",
    "open_state",
    "open_target",
    "push_verifier",
    "serve_gcp_push",
    "store_options",
]

OpenTarget = Callable[[TargetConfig, str], Provider]


def build_engine(
    config: BridgeConfig,
    *,
    connections: Connections | None = None,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
    retry: RetryPolicy | None = None,
    open_target: OpenTarget | None = None,
    state: StateStore | None = None,
    admin_key: Secret | None = None,
) -> Engine:
    """The production engine for ``config``; close it (or use it as a context manager).

    Args:
        config: The parsed configuration.
        connections: The process's store connections (default: new ones, closed with the
            engine).
        clock: The current instant, for the engine and its leases.
        sleep: How the engine and the LangSmith client wait between attempts.
        transport: The HTTP transport under the LangSmith client (tests, benchmarks).
        retry: One retry policy for LangSmith, store and state calls (default: from
            ``langsmith.max_attempts``).
        open_target: Wraps or replaces how targets are opened (fault injection).
        state: A state store to use instead of the configured one.
        admin_key: The admin key, instead of reading it where the config says.

    Raises:
        ConfigError: the admin key cannot be read.
    """
    connections = connections or connections_for(config)
    settings = config.langsmith
    retry = retry or RetryPolicy(max_attempts=settings.max_attempts)
    key = admin_key or read_admin_key(
        settings,
        read_secret=lambda secret_id: connections.connection("aws").runtime.admin_key(secret_id),
    )
    client = LangSmithClient(
        settings.api_endpoint,
        key,
        organization_id=settings.organization_id,
        timeout=settings.timeout.total_seconds(),
        retry=retry,
        transport=transport,
        sleep=sleep,
        limiter=RateLimiter(settings.requests_per_10s, 10.0),
    )
    return Engine(
        config,
        client,
        state or _state(config.state, connections),
        open_target or connections.open,
        clock=clock,
        sleep=sleep,
        retry=retry,
        on_close=connections.close,
        notifiers=notifiers_for(config, connections),
    )


def notifiers_for(
    config: BridgeConfig, connections: Connections, environ: Mapping[str, str] | None = None
) -> list[Notifier]:
    """Where ``[alerts]`` sends notices: the webhook (its URL read now, from the variable
    or file the config names) and the SNS topic.

    Raises:
        ConfigError: the webhook URL's variable is unset or its file unreadable.
    """
    settings = config.alerts
    environ = os.environ if environ is None else environ
    notifiers: list[Notifier] = []
    url = None
    if settings.webhook_url_env:
        url = environ.get(settings.webhook_url_env, "").strip()
        if not url:
            raise ConfigError(f"alerts.webhook_url_env: {settings.webhook_url_env} is not set")
    elif settings.webhook_url_file:
        try:
            url = Path(settings.webhook_url_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"alerts.webhook_url_file: {exc.strerror}") from None
    if url is not None:
        if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ConfigError("alerts: the webhook URL must be https (http on loopback only)")
        notifiers.append(WebhookNotifier(Secret(url)))
    if settings.sns_topic_arn:
        notifiers.append(connections.connection("aws").notifier(settings.sns_topic_arn))
    return notifiers


def connections_for(
    config: BridgeConfig | ConsumerConfig, environ: Mapping[str, str] | None = None
) -> Connections:
    """The process's store connections for ``config``: Vault's server settings, and its
    credentials read from ``environ`` (the process environment by default) at the edge."""
    return Connections(store_options(config, environ))


def store_options(
    config: BridgeConfig | ConsumerConfig, environ: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """What each store's connection is built with: Vault's server settings, and the
    environment its credentials are read from (the process's by default)."""
    environ = os.environ if environ is None else environ
    return {"vault": {"settings": config.vault, "environ": dict(environ)}}


def open_state(
    settings: StateSettings, connections: Connections, *, retry: RetryPolicy | None = None
) -> StateStore:
    """The state backend ``settings`` names, for code outside a run (``ack``, ``status``,
    consumers), with the engine's retries of retryable failures."""
    return GuardedState(_state(settings, connections), _guard(retry))


def open_target(
    target: TargetConfig,
    policy: str,
    connections: Connections,
    *,
    retry: RetryPolicy | None = None,
) -> Provider:
    """One target's adapter, for code that reads a target outside a run (status, consumers),
    with the engine's retries of retryable failures."""
    return GuardedProvider(connections.open(target, policy), _guard(retry))


def _state(settings: StateSettings, connections: Connections) -> StateStore:
    if isinstance(settings, FileStateSettings):
        return FileStateStore(settings.path)
    return connections.state(settings)


def _guard(retry: RetryPolicy | None) -> Guard:
    # One call at a time is all an entry point outside a run makes.
    return Guard(per_store=1, retry=retry or RetryPolicy(), sleep=time.sleep)


def fetch_config_text(reference: str, connections: Connections) -> str:
    """The configuration text behind an ``s3://``, Secrets Manager or SSM reference."""
    text: str = connections.connection("aws").runtime.fetch_text(reference)
    return text


def fan_out(queue_url: str, policies: Sequence[str], connections: Connections) -> int:
    """Send one SQS message per policy; returns how many were sent."""
    sent: int = connections.connection("aws").runtime.send_policies(queue_url, policies)
    return sent


def push_verifier(
    settings: PubsubPushSettings, connections: Connections
) -> Callable[[str | None], str]:
    """The check of a Pub/Sub push's OIDC token (``Authorization`` in, caller's email out;
    raises ``RequestRefused``), from the GCP store, which holds Google's libraries."""
    verify: Callable[[str | None], str] = connections.connection("gcp").push_verifier(settings)
    return verify


def serve_gcp_push(config: Path, args: Any) -> int:
    """``langsmith-bridge gcp-push``: hand the process to functions-framework's server
    (gunicorn, threads), whose ``secret_rotate`` loads ``config`` on its first request.

    Raises:
        ConfigError: the config is invalid or has no ``[pubsub]`` section (refused now,
            not at the first push).
    """
    if load_config(config).pubsub is None:
        raise ConfigError(f"{config} has no [pubsub] section (audience, service_account)")
    os.environ[CONFIG_ENV] = str(config.resolve())
    source = Path(__file__).parent / "gcp_push" / "main.py"  # a path: nothing is imported
    command = [sys.executable, "-m", "functions_framework", "--source", str(source)]
    command += ["--target", "secret_rotate", "--host", args.host, "--port", str(args.port)]
    os.execv(sys.executable, command)  # noqa: S606 - our own interpreter, fixed arguments


def serve_gcp_emulator(host: str, port: int) -> int:
    """``langsmith-bridge gcp-emulator``: the Secret Manager fake, until interrupted.

    Loaded by name, as the registry loads stores, so that the core's import graph never
    reaches grpc (an import-linter contract).
    """
    import importlib

    fake = importlib.import_module("providers.gcp.fake.__main__")
    code: int = fake.main(["--host", host, "--port", str(port)])
    return code
