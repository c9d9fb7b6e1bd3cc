"""How the bridge reaches LangSmith: the ``[langsmith]`` section."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from uuid import UUID

from pydantic import Field, field_validator, model_validator

from bridge.config.base import Frozen as _Frozen
from bridge.config.durations import Duration
from bridge.langsmith.endpoints import REGION_ENDPOINTS, normalize_endpoint
from bridge.secrets import redact

RATE_WINDOW = timedelta(seconds=10)  # LangSmith's rate limits count per 10 seconds


def uuid_text(value: str) -> str:
    """``value`` as a canonical UUID string; ``ValueError`` naming it otherwise."""
    try:
        return str(UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"{value!r} is not a UUID") from None


class LangSmithSettings(_Frozen):
    """How the bridge reaches LangSmith, and with which admin key."""

    endpoint: str | None = Field(
        None, description="API base URL; a trailing '/', '/api' or '/api/v1' is accepted."
    )
    region: Literal["us", "eu", "apac", "aws-us"] | None = Field(
        None, description="Shorthand for a SaaS region's endpoint, instead of 'endpoint'."
    )
    public_endpoint: str | None = Field(
        None, description="LANGSMITH_ENDPOINT published to consumers; defaults to the endpoint."
    )
    admin_key_env: str | None = Field(
        None, description="Environment variable holding the org admin service key."
    )
    admin_key_file: Path | None = Field(None, description="File holding the org admin service key.")
    admin_key_secret: str | None = Field(
        None,
        description="AWS Secrets Manager secret (name or ARN) holding the admin key, raw or as "
        "JSON with LANGSMITH_API_KEY; for the Lambda. Needs the aws extra.",
    )
    organization_id: str | None = Field(None, description="Sent as X-Organization-Id when set.")
    instance: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        description="Name of this bridge deployment; keys are marked with it, so two bridges "
        "sharing an organization never touch each other's keys. Default: an id the state "
        "store makes on first use (older states keep 'default', what they marked keys with).",
    )
    timeout: Duration = Field(timedelta(seconds=10), description="Per-request timeout.")
    max_attempts: int = Field(4, ge=1, le=10, description="Tries per request, retries included.")
    requests_per_10s: int = Field(
        800,
        ge=1,
        le=100_000,
        description="Client-side pace per key, under LangSmith's 1000 per 10 s; leaves "
        "headroom for anything else using the admin key.",
    )

    @field_validator("organization_id")
    @classmethod
    def _check_org(cls, value: str | None) -> str | None:
        return None if value is None else uuid_text(value)

    @field_validator("endpoint", "public_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            normalize_endpoint(value)  # its ValueError names what is wrong
        return value

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("timeout must be longer than 0s")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_inline_key(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        if "admin_key" in data or "api_key" in data:
            raise ValueError(
                "never put a key inline: use admin_key_env (a variable name) or admin_key_file"
            )
        for name in ("admin_key_env", "admin_key_file", "admin_key_secret"):
            value = data.get(name)
            # A key pasted here would be echoed by every "variable X is not set" message.
            if isinstance(value, str) and redact(value) != value:
                raise ValueError(
                    f"{name} holds what looks like a key; never put a key inline: "
                    f"{name} names a {'variable' if name.endswith('env') else 'file'}"
                )
        return data

    @model_validator(mode="after")
    def _check_sources(self) -> LangSmithSettings:
        if self.endpoint and self.region:
            raise ValueError("set either 'endpoint' or 'region', not both")
        sources = (self.admin_key_env, self.admin_key_file, self.admin_key_secret)
        if sum(source is not None for source in sources) != 1:
            raise ValueError(
                "set exactly one of 'admin_key_env', 'admin_key_file' or 'admin_key_secret'"
            )
        return self

    @property
    def worst_call(self) -> timedelta:
        """The longest one LangSmith call can take with its retries: every attempt times out,
        and each pause waits out a whole 10-second rate-limit window."""
        return self.timeout * self.max_attempts + RATE_WINDOW * (self.max_attempts - 1)

    @property
    def api_endpoint(self) -> str:
        """The endpoint the bridge calls (region shorthand resolved; US SaaS by default)."""
        if self.endpoint:
            return self.endpoint.rstrip("/")
        return REGION_ENDPOINTS[self.region or "us"]

    @property
    def consumer_endpoint(self) -> str:
        """The endpoint published to consumers as ``LANGSMITH_ENDPOINT``."""
        return (self.public_endpoint or self.api_endpoint).rstrip("/")
