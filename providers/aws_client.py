"""The Secrets Manager port: the few SDK calls the provider makes, how the boto3 client is
built, the IAM actions those calls need, and how SDK failures become provider errors.

Error mapping (botocore ``ClientError`` code, or exception class)::

    ResourceNotFoundException                           -> ProviderNotFound
    AccessDenied(Exception), DecryptionFailure, ...     -> ProviderAccessDenied
    Throttling(Exception), TooManyRequests..., 429      -> ProviderThrottled      retryable
    InternalServiceError, ServiceUnavailable, 5xx,
      connection errors and timeouts                    -> ProviderUnavailable    retryable
    a code the caller names as a conflict               -> ProviderConflict
    anything else (InvalidRequestException, ...)        -> ProviderError
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from bridge.config.targets import AwsTarget
from bridge.errors import (
    ProviderAccessDenied,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderThrottled,
    ProviderUnavailable,
)
from bridge.secrets import redact

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

_NOT_FOUND = frozenset({"ResourceNotFoundException"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "DecryptionFailure",
        "EncryptionFailure",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    }
)
_THROTTLED = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
_UNAVAILABLE = frozenset(
    {"InternalServiceError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException"}
)


class SecretsManagerClient(Protocol):
    """The Secrets Manager calls the provider makes; a boto3 client or a test fake fits."""

    def describe_secret(self, **kwargs: Any) -> dict[str, Any]: ...

    def create_secret(self, **kwargs: Any) -> dict[str, Any]: ...

    def tag_resource(self, **kwargs: Any) -> dict[str, Any]: ...

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]: ...

    def put_secret_value(self, **kwargs: Any) -> dict[str, Any]: ...

    def update_secret_version_stage(self, **kwargs: Any) -> dict[str, Any]: ...


def build_client(target: AwsTarget) -> Any:
    """A boto3 Secrets Manager client for ``target`` (its region and endpoint, if set).

    Raises:
        NoRegionError: neither the target nor the environment names a region.
    """
    config = Config(retries={"mode": "standard"}, connect_timeout=5, read_timeout=10)
    return boto3.client(
        "secretsmanager",
        region_name=target.region,
        endpoint_url=target.endpoint_url,
        config=config,
    )


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
        except ClientError as exc:
            raise self.from_client_error(exc, operation, conflicts) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise self.error(
                ProviderUnavailable, operation, f"cannot reach Secrets Manager: {exc}"
            ) from exc
        except NoCredentialsError as exc:
            raise self.error(ProviderAccessDenied, operation, "no AWS credentials found") from exc
        except NoRegionError as exc:
            message = "no AWS region: set region in the target or AWS_REGION"
            raise self.error(ProviderError, operation, message) from exc
        except BotoCoreError as exc:
            raise self.error(ProviderError, operation, f"AWS SDK failure: {exc}") from exc

    def from_client_error(
        self, exc: Any, operation: str, conflicts: frozenset[str] = frozenset()
    ) -> ProviderError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = f"{code}: {error.get('Message', '')}".rstrip(": ")
        return self.error(_kind(code, status, conflicts), operation, message)


def _kind(code: str, status: object, conflicts: frozenset[str]) -> type[ProviderError]:
    kind: type[ProviderError] = ProviderError
    if code in conflicts:
        kind = ProviderConflict
    elif code in _NOT_FOUND:
        kind = ProviderNotFound
    elif code in _DENIED:
        kind = ProviderAccessDenied
    elif code in _THROTTLED or status == 429:
        kind = ProviderThrottled
    elif code in _UNAVAILABLE or (isinstance(status, int) and status >= 500):
        kind = ProviderUnavailable
    return kind
