"""What the Secrets Manager provider knows about one secret: its ownership tags, its staging
labels, and the request tokens (version ids) it writes under. SDK-free: plain data in, plain
data out, so it is tested without any client.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

MANAGED_TAG = "langsmith-bridge:managed"
POLICY_TAG = "langsmith-bridge:policy"

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
PREVIOUS = "AWSPREVIOUS"

TOKEN_MIN, TOKEN_MAX = 32, 64

Ownership = Literal["ours", "unowned", "theirs"]


def owner_tags(policy: str) -> list[dict[str, str]]:
    """The tags that make a secret bridge-owned on behalf of ``policy``."""
    return [{"Key": MANAGED_TAG, "Value": "true"}, {"Key": POLICY_TAG, "Value": policy}]


@dataclass(frozen=True)
class SecretView:
    """A ``DescribeSecret`` answer, reduced to what the provider decides on."""

    arn: str
    tags: Mapping[str, str]
    stages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pending_deletion: bool = False

    @classmethod
    def from_describe(cls, response: Mapping[str, Any]) -> SecretView:
        tags = {str(t.get("Key")): str(t.get("Value")) for t in response.get("Tags") or []}
        # AWS lists only versions with labels; moto lists unlabelled ones too (empty lists).
        stages = {
            str(version): tuple(labels)
            for version, labels in (response.get("VersionIdsToStages") or {}).items()
            if labels
        }
        return cls(
            arn=str(response.get("ARN", "")),
            tags=tags,
            stages=stages,
            pending_deletion=response.get("DeletedDate") is not None,
        )

    @property
    def tagged_policy(self) -> str | None:
        return self.tags.get(POLICY_TAG)

    def ownership(self, policy: str) -> Ownership:
        """``ours`` when both tags name ``policy``; ``theirs`` when the policy tag names
        another policy; otherwise ``unowned`` (a secret the bridge may adopt)."""
        if self.tagged_policy == policy and self.tags.get(MANAGED_TAG) == "true":
            return "ours"
        if self.tagged_policy not in (None, policy):
            return "theirs"
        return "unowned"

    def holder(self, stage: str) -> str | None:
        """The version carrying ``stage``, if any."""
        return next((v for v, labels in self.stages.items() if stage in labels), None)

    def labels(self, version: str) -> tuple[str, ...]:
        return self.stages.get(version, ())


def request_token(rotation_id: str, variant: str = "") -> str:
    """The ``ClientRequestToken`` (and so the version id) a rotation is written under.

    A rotation id of 32-64 characters (the bridge's own are 33) is used as it is. Shorter or
    longer ids, and ``variant`` suffixes, are made to fit deterministically, so a retried
    publish of the same content always lands on the same version.
    """
    token = f"{rotation_id}-{variant}" if variant else rotation_id
    if TOKEN_MIN <= len(token) <= TOKEN_MAX:
        return token
    digest = hashlib.sha256(token.encode()).hexdigest()
    if len(token) < TOKEN_MIN:
        return f"{token}-{digest}"[:TOKEN_MIN]
    return f"{token[: TOKEN_MAX - 17]}-{digest[:16]}"


def settings_variant(settings: Mapping[str, str]) -> str:
    """A short name for a settings map (never key material): tells republished versions
    of one rotation apart when only the settings changed."""
    text = json.dumps(dict(settings), sort_keys=True)
    return "s" + hashlib.sha256(text.encode()).hexdigest()[:12]


def valid_token(token: str) -> bool:
    return TOKEN_MIN <= len(token) <= TOKEN_MAX
