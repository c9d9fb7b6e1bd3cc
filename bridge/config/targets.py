"""Target addresses: where a policy's payload is written, one model per store.

Each store's models live in their own module (``bridge.config.file``, ``bridge.config.aws``),
SDK-free, so that any config can be validated without the store's extra installed. Each
model names its store in ``provider`` and gives a stable ``target_id`` that the state uses
to remember what was written where. This module only joins them into one tagged union.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bridge.config.aws import AwsTarget
from bridge.config.file import FileTarget
from bridge.config.gcp import GcpTarget
from bridge.config.vault import VaultTarget

TargetConfig = Annotated[
    FileTarget | AwsTarget | VaultTarget | GcpTarget, Field(discriminator="provider")
]

__all__ = ["AwsTarget", "FileTarget", "GcpTarget", "TargetConfig", "VaultTarget"]
