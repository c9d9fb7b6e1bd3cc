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


TargetConfig = Annotated[FileTarget, Field(discriminator="provider")]
