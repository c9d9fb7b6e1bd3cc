"""Target addresses: where a policy's payload is written, one model per provider.

The models are SDK-free so that any config can be validated (and its JSON Schema printed)
without the provider's extra installed. Each model names its provider in ``provider`` and
gives a stable ``target_id`` that the state uses to remember what was written where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Target(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def target_id(self) -> str:
        raise NotImplementedError


class FileTarget(_Target):
    """A local file, written atomically with mode 0600 (Kubernetes volume, systemd credential)."""

    provider: Literal["file"]
    path: Path = Field(description="Output file; relative paths are taken from the config file.")
    format: Literal["dotenv", "json"] = Field(
        "dotenv", description="dotenv: KEY=value lines; json: an object of env names to values."
    )

    @property
    def target_id(self) -> str:
        return f"file:{self.path}"


AWS_REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"


class AwsTarget(_Target):
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


TargetConfig = Annotated[FileTarget | AwsTarget, Field(discriminator="provider")]
