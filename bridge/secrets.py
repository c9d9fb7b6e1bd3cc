"""Secret values that cannot print themselves, and the fingerprints that stand in for them.

A ``Secret`` holds key material. ``str()``, ``repr()`` and f-strings show only a masked
form, so a secret that reaches a log line, an exception or a traceback's locals shows
nothing usable. The value comes out only through ``reveal()``, which is called at the
few places that must send it somewhere (an HTTP header, a secret store).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import NoReturn

# The documented shape (51 chars) and the SDK anonymizer's looser one; the redactor uses
# the looser so that truncated or future keys are still scrubbed.
KEY_PATTERN = re.compile(r"lsv2_(?:pt|sk)_[A-Za-z0-9]{32,}(?:_[A-Za-z0-9]+)*")
LEGACY_KEY_PATTERN = re.compile(r"ls__[A-Za-z0-9]{16,}")

FINGERPRINT_PREFIX = "sha256:"


def fingerprint(value: str) -> str:
    """A short, stable, non-reversible name for a key: ``sha256:`` and 16 hex digits.

    LangSmith keys carry 168 random bits, so a 64-bit prefix of an unsalted SHA-256
    identifies a key without helping anyone guess it.
    """
    digest = hashlib.sha256(value.encode()).hexdigest()
    return FINGERPRINT_PREFIX + digest[:16]


def redact(text: str) -> str:
    """Replace anything key-shaped in ``text`` with a placeholder carrying its fingerprint."""

    def mask(match: re.Match[str]) -> str:
        return f"<redacted {fingerprint(match.group(0))}>"

    return LEGACY_KEY_PATTERN.sub(mask, KEY_PATTERN.sub(mask, text))


class Secret:
    """A string that must not be shown.

    Equality is constant-time. There is no ``__str__`` that reveals the value, and the
    value is not hashed into ``hash()`` so a secret in a set cannot be probed cheaply.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The secret itself. Call only where it must leave the process."""
        return self._value

    @property
    def fingerprint(self) -> str:
        return fingerprint(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Secret({self.fingerprint})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")
