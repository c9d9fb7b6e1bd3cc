"""Configuration of the Google Cloud stores: the GCS state backend and the Secret Manager
target. SDK-free, so any config validates without the ``gcp`` extra installed."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bridge.config.base import Frozen
from bridge.config.durations import Duration

BUCKET = r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"
SERVICE_ACCOUNT = r"^[a-z0-9][a-z0-9._-]*@[a-z0-9][a-z0-9.:-]*\.gserviceaccount\.com$"
TOPIC = r"^projects/[a-z0-9][a-z0-9.:-]{0,62}[a-z0-9]/topics/[A-Za-z][A-Za-z0-9._~%+-]{2,254}$"
POLICY_ANNOTATION = "langsmith-bridge.policy"  # a secret's exact policy name (no label can hold it)
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
MIN_ROTATION_PERIOD = timedelta(hours=1)  # Secret Manager refuses a shorter rotation_period

IMPERSONATE = Field(
    None,
    description=(
        "A service account to act as, with the ambient credentials "
        "(roles/iam.serviceAccountTokenCreator on it); default: the ambient identity."
    ),
    pattern=SERVICE_ACCOUNT,
)


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
    impersonate_service_account: str | None = IMPERSONATE


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
    impersonate_service_account: str | None = IMPERSONATE
    rotation_topic: str | None = Field(
        None,
        pattern=TOPIC,
        description=(
            "For a secret the bridge creates: the Pub/Sub topic (projects/P/topics/T) its "
            "SECRET_ROTATE events go to; with rotation_period, GCP then drives rotation."
        ),
    )
    rotation_period: Duration | None = Field(
        None, description="How often Secret Manager publishes SECRET_ROTATE (at least 1h)."
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
            if self.impersonate_service_account:
                raise ValueError("insecure = true sends no credentials: drop the impersonation")
        if self.kms_key_name and self.replication != "automatic":
            raise ValueError("kms_key_name is for automatic replication; give it per location")
        if (self.rotation_topic is None) != (self.rotation_period is None):
            raise ValueError("rotation_topic and rotation_period go together")
        if self.rotation_period is not None and self.rotation_period < MIN_ROTATION_PERIOD:
            raise ValueError("rotation_period must be at least 1h (Secret Manager's minimum)")
        return self

    @property
    def name(self) -> str:
        """The secret's resource name."""
        return f"projects/{self.project}/secrets/{self.secret}"

    @property
    def target_id(self) -> str:
        return f"gcp:{self.project}/{self.secret}"


class PubsubPushSettings(Frozen):
    """The SECRET_ROTATE push endpoint (``langsmith-bridge gcp-push``): who may call it.

    Pub/Sub signs each push with an OIDC token of the subscription's service account for
    its audience; a request whose token Google did not sign, for another audience or
    another account, is refused.
    """

    audience: str = Field(
        min_length=1, description="The push subscription's OIDC audience (default there: the URL)."
    )
    service_account: str = Field(
        pattern=SERVICE_ACCOUNT, description="The email of the subscription's push identity."
    )
    certs_url: str = Field(
        GOOGLE_CERTS_URL, description="Google's token-signing certificates (tests: a local URL)."
    )

    @field_validator("certs_url")
    @classmethod
    def _certs_over_tls(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme == "https" or (
            parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}
        ):
            return url
        raise ValueError("certs_url must be https (plain http only on loopback)")
