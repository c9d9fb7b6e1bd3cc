"""A consumer's own configuration: what an application needs to read its key and
acknowledge it, and nothing of the bridge's (no admin key, no other policy, no LangSmith
settings)::

    [consumer]
    policy = "tracing-prod"
    name = "api"                          # the consumer, as the policy lists it
    # replica = "api-7f9c"                # default: the host name (the pod name)

    [target]                              # where its key is: a policy target's keys
    provider = "vault"
    mount = "secret"
    path = "apps/tracing-prod/langsmith"

    [ack]                                 # how it acknowledges: one of
    url = "https://langsmith-bridge.platform.svc:8080"   # serve's POST /v1/ack
    # [ack.state] backend = "gcs" ...     # or its own ack object in the bridge's state

    # [vault] as the bridge's, for Vault targets or state
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bridge.config.base import Frozen
from bridge.config.model import StateSettings
from bridge.config.targets import TargetConfig
from bridge.config.vault import VaultSettings

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")


class ConsumerIdentity(Frozen):
    policy: str = Field(min_length=1, description="The policy whose key this consumer uses.")
    name: str = Field(min_length=1, description="The consumer's name in the policy.")
    replica: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.:@/-]{1,128}$", description="Default: the host name."
    )


class AckChannel(Frozen):
    """Exactly one way to acknowledge: ``url`` (the service's HTTP ack) or ``state``."""

    url: str | None = Field(None, description="The bridge service's base URL (serve).")
    state: StateSettings | None = Field(None, description="The bridge's state backend.")
    ca_cert: str | None = Field(None, description="CA bundle for an https url.")
    timeout: float = Field(10.0, gt=0, le=120, description="Seconds per HTTP ack.")

    @field_validator("url")
    @classmethod
    def _url_safe(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or not host:
            raise ValueError("url must be http(s)://host[:port]")
        local = host in LOOPBACK or "." not in host or host.endswith(CLUSTER_SUFFIXES)
        if parts.scheme == "http" and not local:
            raise ValueError(
                "an ack carries the key itself: plain http only to loopback or a cluster "
                "service name (*.svc); use https"
            )
        return url.rstrip("/")

    @model_validator(mode="after")
    def _one_channel(self) -> AckChannel:
        if (self.url is None) == (self.state is None):
            raise ValueError("give exactly one of ack.url and [ack.state]")
        return self


class ConsumerConfig(Frozen):
    """The whole consumer file (``bridge.consumer.load_settings``, ``ack``)."""

    consumer: ConsumerIdentity
    target: TargetConfig
    ack: AckChannel
    vault: VaultSettings = Field(default_factory=VaultSettings)

    @field_validator("ack", mode="before")
    @classmethod
    def _default_backend(cls, value: object) -> object:
        if isinstance(value, dict) and isinstance(value.get("state"), dict):
            state = value["state"]
            if "backend" not in state:
                return {**value, "state": {**state, "backend": "file"}}
        return value


__all__ = ["AckChannel", "ConsumerConfig", "ConsumerIdentity"]
