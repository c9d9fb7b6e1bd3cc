"""The one reading of an hvac or transport failure: a ``Failure`` every Vault adapter maps
onto its own error type (targets onto ``ProviderError`` s, the state onto ``StateError`` s).

Vault answers ``400`` with "check-and-set parameter did not match" when a ``cas`` write
lost a race, ``403`` for a missing policy and for a bad token alike, ``404`` for a missing
path (and for a mount the token cannot see), ``429`` from a rate-limit quota, ``503``
while sealed or in standby. Messages are Vault's own ``errors`` list, redacted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import hvac.exceptions as vault
import requests

from bridge.secrets import redact

Kind = Literal["not_found", "denied", "conflict", "invalid", "throttled", "unavailable", "other"]


@dataclass(frozen=True)
class Failure:
    """A Vault failure, classified."""

    kind: Kind
    status: int | None
    text: str  # Vault's message, redacted

    @property
    def retryable(self) -> bool:
        return self.kind in ("throttled", "unavailable")


def classify(exc: BaseException) -> Failure:
    """What ``exc`` (raised by hvac or under it by requests) means for a caller."""
    if isinstance(exc, vault.VaultError):
        text = redact(
            "; ".join(str(e) for e in (exc.errors or [])) or str(exc) or type(exc).__name__
        )
        # hvac 2.x keeps no status on its exceptions: the class is the status.
        status = getattr(exc, "status_code", None)
        status = status if isinstance(status, int) else _STATUSES.get(type(exc))
        if isinstance(exc, vault.InvalidRequest) and "check-and-set" in text:
            return Failure("conflict", status, text)
        return Failure(_KINDS.get(type(exc), "other"), status, text)
    if isinstance(exc, requests.exceptions.RequestException):
        return Failure("unavailable", None, redact(f"{type(exc).__name__}: {exc}"))
    return Failure("other", None, redact(f"{type(exc).__name__}: {exc}"))


SDK_ERRORS: tuple[type[BaseException], ...] = (
    vault.VaultError,
    requests.exceptions.RequestException,
)
"""What hvac (and requests under it) raise for a failed call; anything else is a bug."""

_STATUSES: dict[type[BaseException], int] = {
    vault.InvalidRequest: 400,
    vault.Unauthorized: 401,
    vault.Forbidden: 403,
    vault.InvalidPath: 404,
    vault.PreconditionFailed: 412,
    vault.RateLimitExceeded: 429,
    vault.InternalServerError: 500,
    vault.VaultNotInitialized: 501,
    vault.BadGateway: 502,
    vault.VaultDown: 503,
}

_KINDS: dict[type[BaseException], Kind] = {
    vault.InvalidPath: "not_found",
    vault.Forbidden: "denied",
    vault.Unauthorized: "denied",
    vault.InvalidRequest: "invalid",
    vault.ParamValidationError: "invalid",
    vault.PreconditionFailed: "conflict",
    vault.RateLimitExceeded: "throttled",
    vault.VaultDown: "unavailable",
    vault.InternalServerError: "unavailable",
    vault.BadGateway: "unavailable",
    vault.VaultNotInitialized: "unavailable",
}
