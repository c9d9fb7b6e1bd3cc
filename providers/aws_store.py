"""One secret's Secrets Manager calls, translated: SDK answers in, ``SecretView``/``Stored``
out, SDK failures raised as ``ProviderError``. It decides nothing; ``providers.aws`` does.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from bridge.config.targets import AwsTarget
from bridge.errors import ProviderConflict, ProviderError, ProviderNotFound
from bridge.payload import Stored, decode
from providers.aws_client import ErrorMapper, SecretsManagerClient, build_client
from providers.aws_secret import CURRENT, PENDING, SecretView, owner_tags

MOVED = frozenset({"InvalidParameterException"})  # RemoveFromVersionId no longer holds it
EXISTS = frozenset({"ResourceExistsException"})


class SecretStore:
    """The calls the provider makes on ``target.secret_id``, for one policy."""

    def __init__(
        self,
        target: AwsTarget,
        policy: str,
        client: SecretsManagerClient | None,
        errors: ErrorMapper,
    ) -> None:
        self.target = target
        self.secret_id = target.secret_id
        self.policy = policy
        self.errors = errors
        self._client = client
        self._built: Any = None

    def describe(self, operation: str) -> SecretView | None:
        """The secret's tags and labels; ``None`` when it does not exist."""
        try:
            with self.errors.translating(operation):
                response = self._sm().describe_secret(SecretId=self.secret_id)
        except ProviderNotFound:
            return None
        return SecretView.from_describe(response)

    def get(self, version: str, operation: str) -> Mapping[str, Any] | None:
        """The raw ``GetSecretValue`` answer for ``version``; ``None`` if there is none."""
        try:
            with self.errors.translating(operation):
                return self._sm().get_secret_value(SecretId=self.secret_id, VersionId=version)
        except ProviderNotFound:
            return None

    def read(self, operation: str, version: str | None = None) -> Stored | None:
        """The payload of ``version`` (default: AWSCURRENT); ``None`` if there is none.

        Raises:
            ProviderError: the value is not a JSON env map.
        """
        # AWSCURRENT is the default, but naming it is what moto honours after the label
        # moved (it otherwise returns the version that was current when last *written*).
        selector = {"VersionId": version} if version else {"VersionStage": CURRENT}
        try:
            with self.errors.translating(operation):
                response = self._sm().get_secret_value(SecretId=self.secret_id, **selector)
        except ProviderNotFound:
            return None
        stored = payload_of(response)
        if stored is None:
            message = f"version {response.get('VersionId')} is not a JSON object of strings"
            raise self.errors.error(ProviderError, operation, f"unreadable payload: {message}")
        return stored

    def create(self, operation: str) -> SecretView:
        """Create the secret tagged as this policy's, with no value (so no version yet)."""
        request: dict[str, Any] = {
            "Name": self.secret_id,
            "Description": f"LangSmith settings for policy {self.policy}, kept by langsmith-bridge",
            "Tags": owner_tags(self.policy),
        }
        if self.target.kms_key_id:
            request["KmsKeyId"] = self.target.kms_key_id
        if self.target.replica_regions:
            request["AddReplicaRegions"] = [{"Region": r} for r in self.target.replica_regions]
        try:
            with self.errors.translating(operation, conflicts=EXISTS):
                response = self._sm().create_secret(**request)
        except ProviderConflict:
            view = self.describe(operation)  # created concurrently: judge what is there now
            if view is None:
                raise
            return view
        tags = {tag["Key"]: tag["Value"] for tag in owner_tags(self.policy)}
        return SecretView(arn=str(response.get("ARN", "")), tags=tags)

    def tag(self, operation: str) -> None:
        """Mark the secret as this policy's (adoption)."""
        with self.errors.translating(operation):
            self._sm().tag_resource(SecretId=self.secret_id, Tags=owner_tags(self.policy))

    def put_pending(self, token: str, text: str, operation: str) -> tuple[str, ...]:
        """Add a version ``token`` holding ``text`` as AWSPENDING; returns its labels (the
        first version of a secret also gets AWSCURRENT)."""
        with self.errors.translating(operation, conflicts=EXISTS):
            response = self._sm().put_secret_value(
                SecretId=self.secret_id,
                ClientRequestToken=token,
                SecretString=text,
                VersionStages=[PENDING],
            )
        return tuple(response.get("VersionStages") or (PENDING,))

    def update_stage(self, operation: str, **arguments: str) -> None:
        """``UpdateSecretVersionStage``; a ``RemoveFromVersionId`` that no longer holds the
        label (someone moved it) raises ``ProviderConflict``."""
        with self.errors.translating(operation, conflicts=MOVED):
            self._sm().update_secret_version_stage(SecretId=self.secret_id, **arguments)

    def close(self) -> None:
        """Close the client this store built (an injected one belongs to its owner)."""
        if self._built is not None:
            self._built.close()
            self._built = self._client = None

    def _sm(self) -> SecretsManagerClient:
        if self._client is None:
            self._built = self._client = build_client(self.target)
        return self._client


def payload_of(response: Mapping[str, Any] | None) -> Stored | None:
    """The payload in a ``GetSecretValue`` answer; ``None`` if absent or not an env map."""
    text = response.get("SecretString") if response else None
    if response is None or not isinstance(text, str):
        return None
    try:
        env = decode(text, "json")
    except ValueError:
        return None
    return Stored.from_env(env, version=str(response.get("VersionId")))


def same_text(response: Mapping[str, Any], text: str) -> bool:
    """What AWS compares for a reused ClientRequestToken: the exact SecretString."""
    held = response.get("SecretString")
    return isinstance(held, str) and hmac.compare_digest(held.encode(), text.encode())
