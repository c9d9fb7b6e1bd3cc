"""The error tree. Every failure the bridge raises on purpose is a ``BridgeError``::

    BridgeError
    ├── ConfigError                     bad configuration; exit code 2, nothing touched
    ├── StateError                      the state store failed
    │   ├── StateConflict               a compare-and-swap lost the race (not retryable:
    │   │                               the same write would lose again; reload instead)
    │   ├── LeaseHeld                   another runner holds the policy's lease
    │   ├── LeaseLost                   this runner's lease lapsed or was taken over:
    │   │                               stop acting (not retryable)
    │   └── (per backend)               StateBusy (SQLite), StateUnavailable (DynamoDB):
    │                                   retryable
    ├── ProviderError                   a secret store failed (provider, operation, reference)
    │   ├── ProviderNotFound
    │   ├── ProviderAccessDenied
    │   ├── ProviderThrottled           retryable
    │   ├── ProviderUnavailable         retryable
    │   ├── ProviderConflict            the store changed under us (version check failed)
    │   └── OwnershipError              the target exists but the bridge does not own it
    ├── LangSmithError                  the LangSmith API failed (operation, status)
    │   ├── LangSmithAuthError          401: the key is unknown, deleted or expired
    │   ├── LangSmithPermissionError    403
    │   │   └── WorkspaceRequired       403 org_scoped_key_requires_workspace
    │   ├── LangSmithNotFound           404
    │   ├── LangSmithValidationError    422
    │   ├── LangSmithRateLimited        429, retryable, carries retry_after
    │   ├── LangSmithServerError        5xx, retryable
    │   ├── LangSmithUnavailable        connect/read failures and timeouts, retryable
    │   └── LangSmithProtocolError      a response the client cannot understand
    ├── RotationError                   a rotation step cannot go on (policy, rotation id)
    └── RequestRefused                  an inbound request failed authentication (a Pub/Sub
                                        push): the caller learns only that it was refused

``retryable`` is the only attribute a retry policy reads. Messages never carry key
material: only ids, ``short_key`` values and fingerprints.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose."""

    retryable: bool = False


class ConfigError(BridgeError):
    """The configuration is missing, malformed or inconsistent."""


class StateError(BridgeError):
    """The state store could not be read or written."""


class StateConflict(StateError):
    """A compare-and-swap write found a newer version than the one it read.

    Not retryable: sending the same write again loses again. The engine retries only what
    ``retryable`` marks, so a conflict fails the policy's run, and the next run starts from
    the newer record.
    """


class LeaseHeld(StateError):
    """Another runner holds the lease on this policy; it will be reconciled there."""


class LeaseLost(StateError):
    """This runner's lease on a policy lapsed, was taken over, or is about to expire.

    Raised by ``Lease.ensure`` before a side effect and by a ``save`` under a lease no
    longer held (which then writes nothing). Not retryable: the runner must stop acting
    on the policy; whoever holds the lease now, or the next run, carries on.
    """


class ProviderError(BridgeError):
    """A secret store operation failed.

    Args:
        message: What went wrong, without secrets.
        provider: The provider name (``file``, ``aws``, ...).
        operation: The provider verb that failed (``read``, ``publish``, ...).
        reference: The target's address (path, secret id), never its content.
    """

    def __init__(self, message: str, *, provider: str, operation: str, reference: str) -> None:
        super().__init__(f"{provider} {operation} {reference}: {message}")
        self.provider = provider
        self.operation = operation
        self.reference = reference


class ProviderNotFound(ProviderError):
    """The target does not exist."""


class ProviderAccessDenied(ProviderError):
    """The store refused the bridge's identity."""


class ProviderThrottled(ProviderError):
    """The store asked us to slow down."""

    retryable = True


class ProviderUnavailable(ProviderError):
    """The store could not be reached or failed on its side."""

    retryable = True


class ProviderConflict(ProviderError):
    """The store's version check failed: someone else wrote in between."""


class OwnershipError(ProviderError):
    """The target exists and the bridge did not create it; it refuses to overwrite it."""


class LangSmithError(BridgeError):
    """A LangSmith API call failed.

    Args:
        message: What went wrong, without secrets.
        operation: The client method (``create_service_key``, ...).
        status: The HTTP status, or ``None`` when no response arrived.
    """

    def __init__(self, message: str, *, operation: str, status: int | None = None) -> None:
        prefix = f"LangSmith {operation}" + (f" -> HTTP {status}" if status is not None else "")
        super().__init__(f"{prefix}: {message}")
        self.operation = operation
        self.status = status


class LangSmithAuthError(LangSmithError):
    """401: the key is invalid, deleted or expired."""


class LangSmithPermissionError(LangSmithError):
    """403: the key is valid but may not do this."""


class WorkspaceRequired(LangSmithPermissionError):
    """403 ``org_scoped_key_requires_workspace``: send ``X-Tenant-Id``."""


class LangSmithNotFound(LangSmithError):
    """404: the resource does not exist (for a delete: already gone)."""


class LangSmithValidationError(LangSmithError):
    """422: the server rejected the request body or parameters."""


class LangSmithRateLimited(LangSmithError):
    """429: slow down; ``retry_after`` is the server's hint in seconds, if it gave one."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, operation=operation, status=status)
        self.retry_after = retry_after


class LangSmithServerError(LangSmithError):
    """5xx: the server failed; the request may be retried."""

    retryable = True


class LangSmithUnavailable(LangSmithError):
    """No usable response: connection refused, reset or timed out."""

    retryable = True


class LangSmithProtocolError(LangSmithError):
    """The response was not what the API documents (not JSON, wrong shape)."""


class RotationError(BridgeError):
    """A rotation step cannot proceed for a policy."""

    def __init__(self, message: str, *, policy: str, rotation_id: str | None = None) -> None:
        where = f"policy {policy}" + (f" rotation {rotation_id}" if rotation_id else "")
        super().__init__(f"{where}: {message}")
        self.policy = policy
        self.rotation_id = rotation_id


class RequestRefused(BridgeError):
    """An inbound request (a Pub/Sub push) failed authentication.

    The message says why, for the log; the caller is told only that it was refused, so a
    forger learns nothing about which check failed. Never carries the token itself.
    """
