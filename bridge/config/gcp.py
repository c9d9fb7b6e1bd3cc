"""Configuration of the Google Cloud stores: the GCS state backend (and, next, the Secret
Manager target). SDK-free, so any config validates without the ``gcp`` extra installed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bridge.config.base import Frozen

BUCKET = r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"


class GcsStateSettings(Frozen):
    """State as objects in a GCS bucket, written with ``if_generation_match`` (the
    compare-and-swap Terraform's GCS backend uses)."""

    backend: Literal["gcs"]
    bucket: str = Field(pattern=BUCKET, description="The bucket (it must exist).")
    prefix: str = Field(
        "langsmith-bridge/state", description="Object name prefix the state lives under."
    )
    project: str | None = Field(None, description="Billing/quota project; default: ADC's.")
    endpoint: str | None = Field(
        None,
        description="GCS endpoint (tests, private service connect), e.g. http://127.0.0.1:4443.",
    )
