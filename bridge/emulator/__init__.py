"""A local LangSmith API emulator, faithful to ``API.md``, for tests and the demo.

Usage::

    from bridge.emulator import Emulator

    with Emulator().start() as emu:
        admin_key = emu.bootstrap["admin_key"]   # org-scoped Organization Admin key
        ...                                      # talk HTTP to emu.url

Modules: ``core`` (the ``Emulator``), ``server`` (HTTP/1.1 plumbing, the ``Date``
header), ``api`` (routes, auth, permissions), ``api_tokens`` (personal access tokens),
``api_tracing`` (the SDK's ingest routes), ``control`` (``/_emulator`` test hooks),
``state`` (the in-memory world), ``tracing`` (tracing projects and run counts),
``ingest`` and ``bodies`` (ingest payloads), ``keyauth`` (accepting a key),
``switches`` (auth cache, ``last_used_at`` granularity, expiry caps), ``models``
(request validation), ``views`` (response shapes), ``faults`` (latency, injected
failures, rate limit), ``clock`` and ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.emulator.clock import EmulatorClock
    from bridge.emulator.core import Emulator
    from bridge.emulator.faults import FaultSwitches
    from bridge.emulator.records import KeyRecord
    from bridge.emulator.state import EmulatorState
    from bridge.emulator.switches import AuthSwitches, OrgLimits
    from bridge.emulator.tracing import TraceStore

__all__ = [
    "AuthSwitches",
    "Emulator",
    "EmulatorClock",
    "EmulatorState",
    "FaultSwitches",
    "KeyRecord",
    "OrgLimits",
    "TraceStore",
]

# Loaded on first use, so that ``bridge.emulator.options`` (the CLI's parser) stays cheap.
_HOMES = {
    "Emulator": "core",
    "EmulatorClock": "clock",
    "EmulatorState": "state",
    "FaultSwitches": "faults",
    "KeyRecord": "records",
    "AuthSwitches": "switches",
    "OrgLimits": "switches",
    "TraceStore": "tracing",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"bridge.emulator.{_HOMES[name]}"), name)
