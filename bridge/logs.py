"""Logging: one event per line, as text or JSON, with every record scrubbed of key material.

Call sites log an event name and fields (``event(log, "rotated", policy=..., short_key=...)``).
The ``RedactingFilter`` is the last line of defence: it rewrites anything key-shaped in the
rendered message, so even a careless ``%r`` of a response body cannot leak a key.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from bridge.secrets import redact

_FIELDS = "bridge_fields"


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``name`` with ``fields``; text output renders them as ``key=value``."""
    if logger.isEnabledFor(level):
        text = " ".join([name, *(f"{key}={value}" for key, value in fields.items())])
        logger.log(level, text, extra={_FIELDS: {"event": name, **fields}})


class RedactingFilter(logging.Filter):
    """Rewrite key-shaped text in the message and its fields before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        fields = getattr(record, _FIELDS, None)
        if fields:
            setattr(record, _FIELDS, {k: redact(str(v)) for k, v in fields.items()})
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event fields, message."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        body.update(getattr(record, _FIELDS, None) or {"message": record.getMessage()})
        if record.exc_text:
            body["exception"] = record.exc_text
        return json.dumps(body, default=str)


def configure(level: str = "info", fmt: str = "text", stream: Any = None) -> None:
    """Send the ``bridge`` loggers to ``stream`` (stderr) through the redacting filter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)-7s %(message)s")
    )
    root = logging.getLogger("bridge")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
