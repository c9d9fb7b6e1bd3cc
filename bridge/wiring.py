"""Putting a configured bridge together: the one place that turns a ``BridgeConfig`` into a
running ``Engine`` (LangSmith client, state store, providers). The CLI, the Lambda entry and
the consumer helper all start here."""

from __future__ import annotations

from bridge.config import BridgeConfig, read_admin_key
from bridge.engine import Engine
from bridge.langsmith import LangSmithClient, RateLimiter, RetryPolicy
from bridge.state import open_store


def build_engine(config: BridgeConfig) -> Engine:
    """An engine for ``config``; close it (or use it as a context manager) when done.

    Raises:
        ConfigError: the admin key cannot be read.
    """
    from providers import open_provider  # the registry; adapters load on first use

    settings = config.langsmith
    client = LangSmithClient(
        settings.api_endpoint,
        read_admin_key(settings),
        organization_id=settings.organization_id,
        timeout=settings.timeout.total_seconds(),
        retry=RetryPolicy(max_attempts=settings.max_attempts),
        limiter=RateLimiter(settings.requests_per_10s, 10.0),
    )
    return Engine(config, client, open_store(config.state), open_provider)
