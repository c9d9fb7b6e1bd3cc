"""Configuration of the AWS stores. SDK-free, so any config validates (and its JSON Schema
prints) without the ``aws`` extra installed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bridge.config.base import Frozen

AWS_REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"


class AwsTarget(Frozen):
    """An AWS Secrets Manager secret holding the payload as a JSON object.

    New payloads go in as ``AWSPENDING`` and then become ``AWSCURRENT``; the superseded
    payload stays readable as ``AWSPREVIOUS`` until its key is revoked.
    """

    provider: Literal["aws"]
    secret_id: str = Field(min_length=1, max_length=2048, description="Secret name or ARN.")
    region: str | None = Field(None, pattern=AWS_REGION, description="Default: the SDK's.")
    kms_key_id: str | None = Field(None, description="KMS key for a secret the bridge creates.")
    replica_regions: tuple[str, ...] = Field((), description="Replicate a created secret there.")
    adopt: bool = Field(
        False, description="Take over an existing secret the bridge did not create (tags it)."
    )
    endpoint_url: str | None = Field(None, description="Secrets Manager endpoint (VPC, tests).")

    @property
    def target_id(self) -> str:
        return f"aws:{self.region or 'default'}:{self.secret_id}"
