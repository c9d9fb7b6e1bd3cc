"""Key-shaped test data: fresh secrets of LangSmith's documented shape, and rotation ids
shaped as the engine makes them."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime


def new_key(kind: str = "sk") -> str:
    """A fresh key of the documented shape, ``lsv2_<kind>_`` + 32 hex + ``_`` + 10 hex
    (51 characters for ``sk`` service keys and ``pt`` personal tokens)."""
    return f"lsv2_{kind}_" + secrets.token_hex(16) + "_" + secrets.token_hex(5)


def rotation_id(now: datetime | None = None) -> str:
    """Shaped as the engine makes them: 33 characters, a valid ClientRequestToken as is."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(8)
