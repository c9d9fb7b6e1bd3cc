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
        status = exc.status_code if isinstance(exc.status_code, int) else None
        if isinstance(exc, vault.InvalidRequest) and "check-and-set" in text:
            return Failure("conflict", status, text)
        return Failure(_KINDS.get(type(exc), "other"), status, text)
    if isinstance(exc, requests.exceptions.RequestException):
        return Failure("unavailable", None, redact(f"{type(exc).__name__}: {exc}"))
    return Failure("other", None, redact(f"{type(exc).__name__}: {exc}"))


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
