"""One secret's Secrets Manager calls, translated: SDK answers in, ``SecretView``/``Stored``
out, SDK failures raised as ``ProviderError``. It decides nothing; ``secrets_manager`` does.

The port (``SecretsManagerClient``) lists the only SDK calls made, and
``SECRETS_MANAGER_ACTIONS`` the IAM actions they need, so a least-privilege policy is built
from it and a hand-written fake fits without patching.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from botocore.exceptions import ClientError

from bridge.config.aws import AwsTarget
from bridge.errors import (
    ProviderAccessDenied,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderThrottled,
    ProviderUnavailable,
)
from bridge.payload import Stored, decode
from bridge.secrets import redact
from providers.aws.sdk import SDK_ERRORS, Kind, classify
from providers.aws.secret_view import CURRENT, PENDING, SecretView, owner_tags

SECRETS_MANAGER_ACTIONS: tuple[str, ...] = (
    # One per API operation of ``SecretsManagerClient`` ...
    "secretsmanager:CreateSecret",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:TagResource",
    "secretsmanager:UpdateSecretVersionStage",
    # ... and the one action AWS authorizes implicitly: CreateSecret with AddReplicaRegions
    # (``replica_regions``) also needs ReplicateSecretToRegions. (CreateSecret with Tags
    # needs TagResource, listed above.)
    "secretsmanager:ReplicateSecretToRegions",
)
"""The IAM actions this provider can need; a least-privilege policy is built from it."""

IMPLIED_ACTIONS = frozenset({"secretsmanager:ReplicateSecretToRegions"})
"""Actions in ``SECRETS_MANAGER_ACTIONS`` that are authorized, never called."""

MOVED = frozenset({"InvalidParameterException"})  # RemoveFromVersionId no longer holds it
EXISTS = frozenset({"ResourceExistsException"})

_ERRORS: dict[Kind, type[ProviderError]] = {
    "not_found": ProviderNotFound,
    "denied": ProviderAccessDenied,
    "credentials": ProviderAccessDenied,
    "throttled": ProviderThrottled,
    "unavailable": ProviderUnavailable,
}


class SecretsManagerClient(Protocol):
    """The Secrets Manager calls the provider makes; a boto3 client or a test fake fits."""

    def describe_secret(self, **kwargs: Any) -> dict[str, Any]: ...

    def create_secret(self, **kwargs: Any) -> dict[str, Any]: ...

    def tag_resource(self, **kwargs: Any) -> dict[str, Any]: ...

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]: ...

    def put_secret_value(self, **kwargs: Any) -> dict[str, Any]: ...

    def update_secret_version_stage(self, **kwargs: Any) -> dict[str, Any]: ...


class ErrorMapper:
    """Turns SDK exceptions into provider errors naming one provider and target."""

    def __init__(self, provider: str, reference: str) -> None:
        self.provider = provider
        self.reference = reference

    def error(self, kind: type[ProviderError], operation: str, message: str) -> ProviderError:
        return kind(
            redact(message), provider=self.provider, operation=operation, reference=self.reference
        )

    @contextlib.contextmanager
    def translating(
        self, operation: str, *, conflicts: frozenset[str] = frozenset()
    ) -> Iterator[None]:
        """Raise what an SDK call inside the block failed with as a ``ProviderError``.

        Args:
            operation: The provider verb, for the error.
            conflicts: Error codes that mean "the secret changed under us" here.
        """
        try:
            yield
        except SDK_ERRORS as exc:
            failure = classify(exc)
            kind = ProviderConflict if failure.code in conflicts else _ERRORS.get(failure.kind)
            text = failure.text
            if failure.kind == "unavailable" and not isinstance(exc, ClientError):
                text = f"cannot reach Secrets Manager: {text}"
            raise self.error(kind or ProviderError, operation, text) from exc


class SecretCalls:
    """The calls the provider makes on ``target.secret_id``, for one policy.

    Args:
        target: The secret's address and creation settings.
        policy: The policy the calls are made for (its ownership tags).
        connect: Gives the client on first use (the connection's shared one, or a fake).
        errors: How SDK failures are reported.
    """

    def __init__(
        self,
        target: AwsTarget,
        policy: str,
        connect: Callable[[], SecretsManagerClient],
        errors: ErrorMapper,
    ) -> None:
        self.target = target
        self.secret_id = target.secret_id
        self.policy = policy
        self.errors = errors
        self._connect = connect
        self._client: SecretsManagerClient | None = None

    def describe(self, operation: str) -> SecretView | None:
        """The secret's tags and labels; ``None`` when it does not exist."""
        try:
            with self.errors.translating(operation):
                response = self._sm(operation).describe_secret(SecretId=self.secret_id)
        except ProviderNotFound:
            return None
        return SecretView.from_describe(response)

    def get(self, version: str, operation: str) -> Mapping[str, Any] | None:
        """The raw ``GetSecretValue`` answer for ``version``; ``None`` if there is none."""
        try:
            with self.errors.translating(operation):
                return self._sm(operation).get_secret_value(
                    SecretId=self.secret_id, VersionId=version
                )
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
                response = self._sm(operation).get_secret_value(SecretId=self.secret_id, **selector)
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
                response = self._sm(operation).create_secret(**request)
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
            self._sm(operation).tag_resource(SecretId=self.secret_id, Tags=owner_tags(self.policy))

    def put_pending(self, token: str, text: str, operation: str) -> tuple[str, ...]:
        """Add a version ``token`` holding ``text`` as AWSPENDING; returns its labels (the
        first version of a secret also gets AWSCURRENT).

        Raises:
            ProviderConflict: AWS already holds other content under ``token``.
        """
        with self.errors.translating(operation, conflicts=EXISTS):
            response = self._sm(operation).put_secret_value(
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
            self._sm(operation).update_secret_version_stage(SecretId=self.secret_id, **arguments)

    def _sm(self, operation: str) -> SecretsManagerClient:
        if self._client is None:
            with self.errors.translating(operation):  # building can fail: no region
                self._client = self._connect()
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
