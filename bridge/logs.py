"""Logging: one event per line, as text or JSON, with every record scrubbed of key material.

Call sites log an event name and fields (``event(log, "rotated", policy=..., short_key=...)``).
Text lines read ``2026-12-01T21:40:00.123Z INFO    rotated policy=p short_key=...``; JSON
lines carry the fields with their types (numbers, booleans, lists, objects, ``null``), so a
log pipeline can filter on them.

The ``RedactingFilter`` is the last line of defence: it rewrites anything key-shaped in the
rendered message, in every string inside the fields however deeply nested, and in
tracebacks, so even a careless ``%r`` of a response body cannot leak a key. Logging never
fails because of what it was given: a field that cannot be shown is shown as its type.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from enum import Enum
from typing import Any, TypeAlias

from bridge.secrets import redact

_FIELDS = "bridge_fields"
_DEPTH = 8  # deeper than any field the bridge logs; also what ends a self-containing list
_INT_BITS = 14_000  # about 4200 decimal digits

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``name`` with ``fields``; text output renders them as ``key=value``."""
    if logger.isEnabledFor(level):
        text = " ".join([name, *(f"{key}={_text(value)}" for key, value in fields.items())])
        logger.log(level, text, extra={_FIELDS: {"event": name, **fields}})


def jsonable(value: object, depth: int = 0) -> Json:
    """``value`` as JSON data with every string redacted, keeping its type where JSON has
    one: datetimes become ISO 8601 strings, exceptions their message, anything else its
    ``str``, and what cannot even be shown its type name."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, int) and value.bit_length() > _INT_BITS:
        return _text(value)  # no str(), so no JSON, past Python's 4300-digit limit
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN or Infinity
    if depth < _DEPTH and isinstance(value, Mapping | list | tuple | set | frozenset):
        try:
            if isinstance(value, Mapping):
                return {redact(_text(k)): jsonable(v, depth + 1) for k, v in value.items()}
            return [jsonable(v, depth + 1) for v in value]
        except Exception:  # a container that fails to iterate is shown as a whole
            return redact(_text(value))
    return redact(_text(value))


def _text(value: object) -> str:
    """``str(value)`` that cannot fail, with the type's name for an empty exception."""
    try:
        if isinstance(value, datetime | date | time):
            return value.isoformat()
        if isinstance(value, BaseException):
            return str(value) or type(value).__name__
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


class RedactingFilter(logging.Filter):
    """Rewrite key-shaped text in the message and its fields before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(_message(record))
        record.args = None
        fields = getattr(record, _FIELDS, None)
        if fields:
            setattr(record, _FIELDS, _fields(fields))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(_traceback(record.exc_info))
            record.exc_info = None
        return True


def _message(record: logging.LogRecord) -> str:
    """The rendered message; arguments that do not fit their format are shown, not raised
    (in a filter, where logging's own guard does not reach, they would fail the caller)."""
    try:
        return record.getMessage()
    except Exception:
        return f"{_text(record.msg)} (arguments that do not fit: {_text(record.args)})"


def _fields(fields: object) -> dict[str, Json]:
    data = jsonable(fields)
    return data if isinstance(data, dict) else {"fields": data}


def _traceback(exc_info: Any) -> str:
    try:
        return logging.Formatter().formatException(exc_info)
    except Exception:
        return f"<traceback unavailable: {_text(exc_info[1])}>"


def timestamp(record: logging.LogRecord) -> str:
    """When ``record`` was made, in ISO 8601 UTC with milliseconds: ``...T21:40:00.123Z``."""
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``<timestamp> <LEVEL> <event> key=value ...``, then any (redacted) traceback."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return timestamp(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event fields (typed), message."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Json] = {
            "time": timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, _FIELDS, None)
        # Cleaned again (idempotent) for a handler that lacks the filter.
        body.update(_fields(fields) if fields else {"message": redact(_message(record))})
        if record.exc_info and not record.exc_text:  # a handler without the filter
            record.exc_text = _traceback(record.exc_info)
        if record.exc_text:
            body["exception"] = redact(record.exc_text)
        try:
            return json.dumps(body)
        except ValueError:  # not reached by ``_fields``' output; a last guard
            return json.dumps({k: v if isinstance(v, str) else _text(v) for k, v in body.items()})


def configure(level: str = "info", fmt: str = "text", stream: Any = None) -> None:
    """Send the ``bridge`` loggers to ``stream`` (stderr) through the redacting filter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("bridge")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
