"""Configuration of the local-file store: a target written atomically with mode 0600."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bridge.config.base import Frozen


class FileTarget(Frozen):
    """A local file, written atomically with mode 0600 (Kubernetes volume, systemd credential)."""

    provider: Literal["file"]
    path: Path = Field(description="Output file; relative paths are taken from the config file.")
    format: Literal["dotenv", "json"] = Field(
        "dotenv", description="dotenv: KEY=value lines; json: an object of env names to values."
    )
    adopt: bool = Field(
        False,
        description="Take over an existing file the bridge did not write (no marker); a file "
        "another policy owns is never taken.",
    )

    @property
    def target_id(self) -> str:
        return f"file:{self.path}"
