"""Everything the AWS adapters share about the SDK: the one botocore configuration, the one
client cache per process, the one error classifier, and the redaction of AWS error text.

Retries are pinned here. Calls the engine makes (targets, state) get a single attempt from
botocore, because the engine retries every retryable ``BridgeError`` under the same
``RetryPolicy`` as LangSmith calls: two loops stacked would multiply the attempts. Calls no
engine wraps (reading the config or the admin key at start-up, the SQS fan-out) keep the
SDK's standard retries.

Classification (botocore ``ClientError`` code, or exception class)::

    ResourceNotFoundException                          -> not_found
    AccessDenied(Exception), DecryptionFailure, ...    -> denied
    ExpiredTokenException, UnrecognizedClient..., ...  -> credentials
    Throttling(Exception), ProvisionedThroughput..., 429 -> throttled      retryable
    InternalServiceError, ServiceUnavailable, 5xx,
      connection errors and timeouts                   -> unavailable     retryable
    ConditionalCheckFailedException                    -> condition
    NoRegionError                                      -> region
    anything else                                      -> other
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from bridge.secrets import redact

ENGINE_ATTEMPTS = 1  # the engine's RetryPolicy retries these calls
STANDALONE_ATTEMPTS = 3  # botocore's standard mode default, for calls no engine wraps

Kind = Literal[
    "not_found", "denied", "credentials", "throttled", "unavailable", "condition", "region", "other"
]

_CODES: dict[str, Kind] = {
    "ResourceNotFoundException": "not_found",
    **dict.fromkeys(
        ("AccessDenied", "AccessDeniedException", "DecryptionFailure", "EncryptionFailure"),
        "denied",
    ),
    **dict.fromkeys(
        (
            "ExpiredTokenException",
            "InvalidClientTokenId",
            "InvalidSignatureException",
            "UnrecognizedClientException",
        ),
        "credentials",
    ),
    **dict.fromkeys(
        (
            "ThrottlingException",
            "Throttling",
            "TooManyRequestsException",
            "RequestLimitExceeded",
            "ProvisionedThroughputExceededException",
        ),
        "throttled",
    ),
    **dict.fromkeys(
        (
            "InternalServiceError",
            "InternalFailure",
            "InternalServerError",
            "ServiceUnavailable",
            "ServiceUnavailableException",
        ),
        "unavailable",
    ),
    "ConditionalCheckFailedException": "condition",
}

SDK_ERRORS = (ClientError, BotoCoreError)
"""What an SDK call raises; ``classify`` understands all of it."""


def client_config(attempts: int) -> Config:
    """The botocore configuration of every client the bridge builds."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=5,
        read_timeout=10,
    )


class AwsClients:
    """One boto3 session per process and one client per service, region and endpoint.

    boto3 clients are thread-safe and keep a connection pool, so every target, state
    store and policy of a run shares them; a session is not, so building is locked.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[tuple[str, str | None, str | None, int], Any] = {}

    def client(
        self,
        service: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        *,
        attempts: int = ENGINE_ATTEMPTS,
    ) -> Any:
        """The shared client for ``service`` (built on first use).

        Raises:
            BotoCoreError: it cannot be built (no region configured anywhere, ...).
        """
        key = (service, region, endpoint_url, attempts)
        with self._lock:
            if key not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                self._clients[key] = self._session.client(
                    service,
                    region_name=region,
                    endpoint_url=endpoint_url,
                    config=client_config(attempts),
                )
            return self._clients[key]

    @property
    def built(self) -> int:
        """How many clients exist (one per service, region and endpoint)."""
        return len(self._clients)

    def close(self) -> None:
        """Close every client built; safe to call twice."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


@dataclass(frozen=True)
class Failure:
    """An SDK failure, classified: what every adapter maps onto its own error type."""

    kind: Kind
    code: str
    text: str  # "Code: message", redacted

    @property
    def retryable(self) -> bool:
        return self.kind in ("throttled", "unavailable")


def classify(exc: BaseException) -> Failure:
    """The one reading of an SDK exception (see the module docstring)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        kind = _CODES.get(code, "other")
        if kind == "other" and status == 429:
            kind = "throttled"
        elif kind == "other" and isinstance(status, int) and status >= 500:
            kind = "unavailable"
        return Failure(kind, code, describe(exc))
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return Failure("unavailable", type(exc).__name__, describe(exc))
    if isinstance(exc, NoCredentialsError):
        return Failure("credentials", "NoCredentials", "no AWS credentials found")
    if isinstance(exc, NoRegionError):
        return Failure(
            "region", "NoRegion", "no AWS region: set region in the config or AWS_REGION"
        )
    return Failure("other", type(exc).__name__, describe(exc))


def describe(exc: BaseException) -> str:
    """An SDK exception as one line for a message, with anything key-shaped redacted
    (AWS echoes request values, such as a SecretString, in some error messages)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        text = f"{error.get('Code', 'Unknown')}: {error.get('Message', '')}".rstrip(": ")
    else:
        text = str(exc) or type(exc).__name__
    return redact(text)
