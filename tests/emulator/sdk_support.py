"""Drive the official ``langsmith`` SDK as a tracing consumer would, against the emulator.

The SDK uploads from background threads and swallows upload errors (it logs them);
``tracing_error_callback`` hands them to the test instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import langsmith
from langsmith import traceable, tracing_context

from bridge.emulator import Emulator

PROJECT = "consumer"


@dataclass
class Tracer:
    """An SDK client and the upload errors it reported."""

    client: langsmith.Client
    errors: list[Exception] = field(default_factory=list)

    def trace(self, count: int = 1, project: str = PROJECT) -> None:
        """Run ``count`` traced calls (one run each) and wait until they are uploaded."""

        @traceable(name="step", client=self.client, project_name=project)
        def step(i: int) -> int:
            return i

        with tracing_context(enabled=True, client=self.client, project_name=project):
            for i in range(count):
                step(i)
        self.client.flush(timeout=10)


@contextmanager
def tracer(
    emulator: Emulator,
    key: str,
    *,
    workspace_id: str | None = None,
    api_url: str | None = None,
    **options: Any,
) -> Iterator[Tracer]:
    """An SDK client configured like a consumer (key, endpoint, workspace); closed after."""
    errors: list[Exception] = []
    client = langsmith.Client(
        api_key=key,
        api_url=api_url or emulator.url,
        workspace_id=workspace_id,
        tracing_error_callback=errors.append,
        **options,
    )
    try:
        yield Tracer(client, errors)
    finally:
        client.close(timeout=5)
