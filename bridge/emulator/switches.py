"""Switches for how keys behave: the auth cache, ``last_used_at`` resolution, expiry caps.

LangSmith caches authentication results ("deleted tokens stop working within a
minute", API.md §2) and need not write ``last_used_at`` on every request; an
organization may cap key expiry. The emulator answers exactly by default, and these
switches make it behave like the real service, so a test can see what a consumer
would see. Each is set at start-up (CLI options) and changed at run time through
``/_emulator/auth`` and ``/_emulator/org``; ``reset`` brings back the start-up values.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from bridge.emulator.records import KeyKind


@dataclass(frozen=True)
class AuthSwitches:
    """How the emulator authenticates, measured on the emulator clock.

    Attributes:
        auth_cache_delay_s: For this many seconds after a key is deleted, revoked or
            expires it is still accepted, and a newly created key is rejected (401) for
            its first this many seconds: a stale auth cache, both ways round. A new
            key's window is fixed when it is created; a stopped key's follows the value
            in force.
        last_used_granularity_s: ``last_used_at`` moves only when its stored value is at
            least this many seconds old, so it lags real use by up to that much.
    """

    auth_cache_delay_s: float = 0.0
    last_used_granularity_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("auth_cache_delay_s", "last_used_granularity_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def as_dict(self) -> dict[str, Any]:
        """The switches as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class OrgLimits:
    """The organization's caps on key expiry, in days; ``None`` means no cap.

    Attributes:
        max_service_key_expiry_days: Cap on service keys (``/orgs/current/service-keys``
            and ``/api-key``).
        max_pat_expiry_days: Cap on personal access tokens.
    """

    max_service_key_expiry_days: int | None = None
    max_pat_expiry_days: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_service_key_expiry_days", "max_pat_expiry_days"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 day")

    def as_dict(self) -> dict[str, Any]:
        """The caps as JSON-ready data."""
        return asdict(self)

    def cap_days(self, kind: KeyKind) -> int | None:
        """The cap for keys of ``kind``."""
        return self.max_pat_expiry_days if kind == "pat" else self.max_service_key_expiry_days

    def refusal(self, kind: KeyKind, expires_at: datetime | None, now: datetime) -> str | None:
        """Why a new key of ``kind`` expiring at ``expires_at`` breaks the cap, or ``None``.

        The real server's answer is UNCONFIRMED (API.md §2, §8.5). The emulator takes the
        plausible reading of a cap: with one set, a key must carry an ``expires_at``, and
        no later than ``now`` plus the cap (exactly at the cap is allowed); a key without
        one would outlive every cap. Breaking it is a client error, answered 400 with
        this reason as ``detail`` (a 422 would suggest a malformed body, and the body is
        well-formed).
        """
        days = self.cap_days(kind)
        if days is None:
            return None
        what = "personal access tokens" if kind == "pat" else "service keys"
        if expires_at is None:
            return (
                f"expires_at is required: this organization caps the expiry of {what} "
                f"at {days} days"
            )
        if expires_at > now + timedelta(days=days):
            return (
                f"expires_at is too far ahead: this organization caps the expiry of {what} "
                f"at {days} days from creation"
            )
        return None


S = TypeVar("S", AuthSwitches, OrgLimits)


class Switch(Generic[S]):
    """A thread-safe holder of one switch set, remembering its start-up value.

    Args:
        initial: The start-up value, which ``reset`` restores.
    """

    def __init__(self, initial: S) -> None:
        self._lock = threading.Lock()
        self._initial: S = initial
        self._value: S = initial

    @property
    def value(self) -> S:
        """The switches in force now."""
        with self._lock:
            return self._value

    def configure(self, **changes: Any) -> S:
        """Change some fields (validated together); returns the new value.

        Raises:
            ValueError: A value is out of range; nothing changes then.
            TypeError: An unknown field name.
        """
        with self._lock:
            self._value = replace(self._value, **changes)
            return self._value

    def reset(self) -> None:
        """Back to the start-up value."""
        with self._lock:
            self._value = self._initial
