"""The ``bridge`` loggers configured as the CLI does, into a buffer, for log tests."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

import pytest

from bridge.logs import configure


@contextlib.contextmanager
def configured(fmt: str) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A ``bridge`` logger configured as the CLI does, writing to a buffer."""
    root = logging.getLogger("bridge")
    saved = (root.handlers[:], root.level, root.propagate)
    stream = io.StringIO()
    configure("debug", fmt, stream)
    try:
        yield logging.getLogger("bridge.test"), stream
    finally:
        root.handlers[:], root.level, root.propagate = saved


@pytest.fixture(params=["text", "json"])
def log(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """Each test twice: with text logs and with JSON logs."""
    with configured(request.param) as configured_log:
        yield configured_log
