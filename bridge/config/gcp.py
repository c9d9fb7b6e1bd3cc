"""Configuration of the Google Cloud stores: the GCS state backend and the Secret Manager
target. SDK-free, so any config validates without the ``gcp`` extra installed."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

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


RESOURCE_ID = r"^[A-Za-z0-9_-]{1,255}$"
PROJECT = r"^[a-z0-9][a-z0-9.:-]{0,62}[a-z0-9]$"  # an id (``my-proj``, ``example.com:p``) or number
LABEL_KEY = r"^[a-z][a-z0-9_-]{0,62}$"
LABEL_VALUE = r"^[a-z0-9_-]{0,63}$"
RESERVED_LABELS = frozenset({"managed-by", "langsmith-bridge-policy"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class GcpReplica(Frozen):
    """One location of a user-managed replication, with its optional CMEK key."""

    location: str = Field(pattern=r"^[a-z]+-[a-z]+\d+$", description="e.g. europe-west1.")
    kms_key_name: str | None = Field(
        None, description="projects/P/locations/L/keyRings/R/cryptoKeys/K for this location."
    )


class GcpTarget(Frozen):
    """A Google Secret Manager secret holding the payload as a JSON secret version.

    Each generation is a new version; the aliases ``current`` and ``previous`` move with
    one etag-checked ``UpdateSecret``, so a consumer reading ``versions/current`` flips
    atomically. A retired version is disabled (and destroyed with ``destroy_retired``).
    """

    provider: Literal["gcp"]
    project: str = Field(pattern=PROJECT, description="The project id (or number).")
    secret: str = Field(pattern=RESOURCE_ID, description="The secret id within the project.")
    replication: Literal["automatic"] | tuple[GcpReplica, ...] = Field(
        "automatic", description="For a secret the bridge creates: automatic, or locations."
    )
    kms_key_name: str | None = Field(
        None, description="CMEK key of an automatically replicated secret the bridge creates."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels for a secret the bridge creates."
    )
    adopt: bool = Field(
        False, description="Take over an existing secret the bridge did not create (labels it)."
    )
    destroy_retired: bool = Field(
        False, description="Destroy retired versions instead of only disabling them."
    )
    endpoint: str | None = Field(
        None, description="Secret Manager endpoint host:port (tests, private service connect)."
    )
    insecure: bool = Field(
        False, description="Plain-text gRPC, no credentials: loopback endpoints only (the fake)."
    )

    @field_validator("labels")
    @classmethod
    def _labels_valid(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if not re.match(LABEL_KEY, key) or not re.match(LABEL_VALUE, value):
                raise ValueError(
                    f"label {key!r}: keys are [a-z][a-z0-9_-]{{0,62}}, values [a-z0-9_-]{{0,63}}"
                )
            if key in RESERVED_LABELS:
                raise ValueError(f"label {key!r} is the bridge's own ownership label")
        return labels

    @model_validator(mode="after")
    def _insecure_is_loopback(self) -> GcpTarget:
        if self.insecure:
            if not self.endpoint:
                raise ValueError("insecure = true needs an endpoint (127.0.0.1:PORT)")
            host = self.endpoint.rsplit(":", 1)[0]
            if host not in LOOPBACK_HOSTS:
                raise ValueError(f"insecure = true is allowed for loopback only, not {host!r}")
        if self.kms_key_name and self.replication != "automatic":
            raise ValueError("kms_key_name is for automatic replication; give it per location")
        return self

    @property
    def name(self) -> str:
        """The secret's resource name."""
        return f"projects/{self.project}/secrets/{self.secret}"

    @property
    def target_id(self) -> str:
        return f"gcp:{self.project}/{self.secret}"
