"""Durations as people write them in config files: ``30d``, ``12h``, ``1h30m``, ``0s``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([wdhms])")
PATTERN = r"^(\d+[wdhms])+$"
MAX_SECONDS = 100 * 365 * 86400  # far beyond any sane setting, and far inside timedelta's range


def parse_duration(value: Any) -> timedelta:
    """Parse ``"<n><unit>"`` runs (units w, d, h, m, s) into a ``timedelta``.

    Raises:
        ValueError: the text is not a duration of that form.
    """
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"expected a duration such as '30d' or '1h30m', got {type(value).__name__}"
        )
    text = value.strip().lower()
    if not re.fullmatch(PATTERN, text):
        raise ValueError(f"invalid duration {value!r}: use runs of <number><w|d|h|m|s>, e.g. '30d'")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration {value!r} is longer than 100 years")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The inverse of ``parse_duration``, shortest form: ``timedelta(hours=36)`` -> ``1d12h``."""
    remaining = int(value.total_seconds())
    if remaining == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": PATTERN, "examples": ["30d", "12h", "1h30m"]}),
]
