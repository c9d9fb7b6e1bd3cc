"""The configuration, as frozen typed models. Parsed once, at the edge (``load_config``)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, WithJsonSchema, field_validator, model_validator

from bridge.config.alerts import AlertSettings
from bridge.config.base import Frozen as _Frozen
from bridge.config.durations import Duration, format_duration
from bridge.config.gcp import GcsStateSettings, PubsubPushSettings
from bridge.config.langsmith import LangSmithSettings
from bridge.config.langsmith import uuid_text as _uuid
from bridge.config.targets import TargetConfig
from bridge.config.vault import VaultSettings, VaultStateSettings
from bridge.secrets import redact

POLICY_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"

Gate = Literal["explicit", "usage", "grace"]
_GATE_NAMES = {"enum": ["explicit", "usage", "grace"], "type": "string"}
_GATES_SCHEMA: dict[str, Any] = {
    "anyOf": [_GATE_NAMES, {"type": "array", "items": _GATE_NAMES, "minItems": 1}]
}


class FileStateSettings(_Frozen):
    """State in one local SQLite database (WAL): the embedded default for a host or a volume."""

    backend: Literal["file"] = "file"
    path: Path = Field(Path("state/bridge-state.db"), description="Relative to the config file.")


class DynamoDBStateSettings(_Frozen):
    """State in a DynamoDB table (partition key ``pk``, string): for Lambda and fleets."""

    backend: Literal["dynamodb"]
    table: str = Field(pattern=r"^[A-Za-z0-9_.-]{3,255}$")
    region: str | None = Field(None, description="Default: the SDK's.")
    endpoint_url: str | None = Field(None, description="DynamoDB endpoint (VPC, tests).")


StateSettings = Annotated[
    FileStateSettings | DynamoDBStateSettings | VaultStateSettings | GcsStateSettings,
    Field(discriminator="backend"),
]


class RunSettings(_Frozen):
    """How one run behaves."""

    concurrency: int = Field(4, ge=1, le=64, description="Policies reconciled at once.")
    fanout_queue_url: str | None = Field(
        None,
        description="Lambda: a scheduled run sends one SQS message per policy here instead of "
        "reconciling them itself; the queue's consumer (the same function) runs each.",
    )
    per_store_concurrency: int = Field(
        8, ge=1, le=64, description="Calls in flight to one secret store (per provider)."
    )
    every: Duration = Field(
        timedelta(hours=1),
        description="How often this deployment runs (its cron schedule, EventBridge rate or "
        "serve interval). Keys are replaced early enough that none expires between two runs.",
    )
    lease_ttl: Duration = Field(
        timedelta(minutes=5),
        description="How long a policy's lease lasts between renewals; renewed while a runner "
        "works, so it bounds how long a dead runner blocks the policy.",
    )
    verify_attempts: int = Field(
        31,
        ge=1,
        le=1000,
        description="Tries to authenticate a new key before it is published. LangSmith caches "
        "auth results for up to a minute, so a new key may be refused (401/403) that long; "
        "the default tries for 90 s.",
    )
    verify_delay: Duration = Field(timedelta(seconds=3), description="Pause between those tries.")


class Policy(_Frozen):
    """One managed credential: its LangSmith scope, its schedule, its consumers, its targets."""

    name: str = Field(pattern=POLICY_NAME)
    workspaces: tuple[str, ...] | None = Field(
        None, min_length=1, description="Workspace UUIDs the key reaches; omit for an org-wide key."
    )
    default_workspace: str | None = Field(
        None, description="Published as LANGSMITH_WORKSPACE_ID when the key reaches several."
    )
    role_id: str | None = Field(
        None, description="Workspace role of the key (LangSmith default: Admin)."
    )
    org_role_id: str | None = Field(None, description="Org role, for org-wide keys only.")
    rotate_every: Duration = Field(timedelta(days=30))
    key_ttl: Duration = Field(timedelta(days=60), description="expires_at backstop on each key.")
    consumers: tuple[str, ...] = Field((), description="Applications that must acknowledge.")
    ack: Annotated[tuple[Gate, ...], WithJsonSchema(_GATES_SCHEMA)] = Field(
        ("explicit",),
        min_length=1,
        description="What opens the revocation gate: 'explicit' (every consumer's live "
        "replicas acknowledged the new key), 'usage' (the old key shows no use), 'grace' "
        "(min_overlap alone). A list composes: every gate in it must open.",
    )
    replica_ttl: Duration = Field(
        timedelta(hours=1),
        description="ack='explicit': a replica that has not acknowledged (its heartbeat) for "
        "this long counts as gone, and no longer holds its consumer's gate.",
    )
    min_overlap: Duration = Field(timedelta(0), description="Both keys live at least this long.")
    max_wait: Duration = Field(timedelta(days=7), description="How long to wait for the gate.")
    on_timeout: Literal["hold", "revoke"] = "hold"
    usage_quiet: Duration = Field(
        timedelta(hours=1),
        description="ack='usage': the old key must show no use for this long after supersession.",
    )
    target: tuple[TargetConfig, ...] = Field(min_length=1, description="Where the payload goes.")

    @field_validator("ack", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("ack")
    @classmethod
    def _no_repeats(cls, value: tuple[Gate, ...]) -> tuple[Gate, ...]:
        if len(set(value)) != len(value):
            raise ValueError("ack gates repeat")
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        # A key pasted here would be stored in full: in the state, lock names and LangSmith.
        if redact(value) != value:
            raise ValueError("looks like a key, not a policy name")
        return value

    @field_validator("workspaces")
    @classmethod
    def _check_workspaces(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        ids = tuple(_uuid(item) for item in value)
        if len(set(ids)) != len(ids):
            raise ValueError("workspace ids repeat")
        return ids

    @field_validator("default_workspace", "role_id", "org_role_id")
    @classmethod
    def _check_ids(cls, value: str | None) -> str | None:
        return None if value is None else _uuid(value)

    @field_validator("consumers")
    @classmethod
    def _check_consumers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_.:@/-]{1,128}", name):
                raise ValueError(f"consumer name {name!r} has characters outside [A-Za-z0-9_.:@/-]")
        if len(set(value)) != len(value):
            raise ValueError("consumer names repeat")
        return value

    @model_validator(mode="after")
    def _check_policy(self) -> Policy:
        if "explicit" in self.ack and not self.consumers:
            raise ValueError("ack = 'explicit' needs at least one consumer")
        if self.rotate_every <= timedelta(0):
            raise ValueError("rotate_every must be positive")
        if self.workspaces is None and self.default_workspace is None:
            # LangSmith answers an org-wide key 403 org_scoped_key_requires_workspace on every
            # workspace route (tracing included) unless the client names a workspace.
            raise ValueError(
                "an org-wide key (no 'workspaces') needs 'default_workspace': without a "
                "workspace, consumers get 403 org_scoped_key_requires_workspace on every "
                "workspace route, tracing included"
            )
        if self.org_role_id and self.workspaces is not None:
            raise ValueError("org_role_id applies to org-wide keys only (omit 'workspaces')")
        if (
            self.default_workspace
            and self.workspaces
            and self.default_workspace not in self.workspaces
        ):
            raise ValueError("default_workspace must be one of 'workspaces'")
        ids = [target.target_id for target in self.target]
        if len(set(ids)) != len(ids):
            raise ValueError("two targets have the same address")
        return self

    def needs_slack(self, every: timedelta) -> timedelta:
        """How much longer than ``rotate_every`` a key must live, with runs ``every`` apart:
        the run that replaces it may come ``every`` late, and both keys then overlap for
        ``min_overlap``."""
        return every + self.min_overlap

    @property
    def published_workspace(self) -> str | None:
        """``LANGSMITH_WORKSPACE_ID`` for consumers, when the key can reach more than one."""
        if self.workspaces is None:
            return self.default_workspace
        if len(self.workspaces) > 1:
            return self.default_workspace or self.workspaces[0]
        return None

    @property
    def verify_workspace(self) -> str | None:
        """The workspace a consumer's first call lands in; the new key is verified there."""
        if self.workspaces is not None and len(self.workspaces) == 1:
            return self.workspaces[0]
        return self.published_workspace


class BridgeConfig(_Frozen):
    """The whole configuration file."""

    langsmith: LangSmithSettings
    state: StateSettings = Field(default_factory=FileStateSettings)
    run: RunSettings = Field(default_factory=RunSettings)
    vault: VaultSettings = Field(
        default_factory=VaultSettings, description="The Vault / OpenBao server, when used."
    )
    alerts: AlertSettings = Field(
        default_factory=AlertSettings, description="Where problems are announced."
    )
    pubsub: PubsubPushSettings | None = Field(
        None, description="The SECRET_ROTATE push endpoint's callers (GCP), when it is run."
    )
    policy: tuple[Policy, ...] = Field(min_length=1, description="The managed credentials.")

    @field_validator("state", mode="before")
    @classmethod
    def _default_backend(cls, value: object) -> object:
        if isinstance(value, dict) and "backend" not in value:
            return {**value, "backend": "file"}
        return value

    @field_validator("policy")
    @classmethod
    def _check_unique(cls, policies: tuple[Policy, ...]) -> tuple[Policy, ...]:
        names = [policy.name for policy in policies]
        if len(set(names)) != len(names):
            raise ValueError(
                f"policy names repeat: {sorted({n for n in names if names.count(n) > 1})}"
            )
        owners: dict[str, str] = {}
        for policy in policies:
            for target in policy.target:
                other = owners.setdefault(target.target_id, policy.name)
                if other != policy.name:
                    raise ValueError(
                        f"policies {other!r} and {policy.name!r} write the same target "
                        f"{target.target_id}"
                    )
        return policies

    @field_validator("run")
    @classmethod
    def _check_lease(cls, run: RunSettings, info: ValidationInfo) -> RunSettings:
        langsmith = info.data.get("langsmith")
        if langsmith is None:
            return run  # its own errors are reported
        worst = langsmith.worst_call
        if run.lease_ttl < 3 * worst:
            raise ValueError(
                f"lease_ttl {format_duration(run.lease_ttl)} is shorter than three times the "
                f"longest LangSmith call ({format_duration(worst)}: langsmith.timeout x "
                "max_attempts plus a 10 s back-off between tries); a lease renewed every "
                "third of its life must outlast any call made under it"
            )
        return run

    @field_validator("policy")
    @classmethod
    def _check_timing(
        cls, policies: tuple[Policy, ...], info: ValidationInfo
    ) -> tuple[Policy, ...]:
        run = info.data.get("run")
        every = run.every if run is not None else RunSettings().every
        for index, policy in enumerate(policies):
            if policy.key_ttl <= policy.rotate_every + policy.needs_slack(every):
                raise ValueError(
                    f"[{index}] {policy.name!r}: key_ttl {format_duration(policy.key_ttl)} cannot "
                    f"be honoured: with runs every {format_duration(every)} (run.every), a key "
                    f"may be replaced up to that late, and min_overlap "
                    f"{format_duration(policy.min_overlap)} must pass before it expires; "
                    f"key_ttl must exceed rotate_every + run.every + min_overlap"
                )
        return policies

    def get_policy(self, name: str) -> Policy:
        for policy in self.policy:
            if policy.name == name:
                return policy
        raise KeyError(name)
