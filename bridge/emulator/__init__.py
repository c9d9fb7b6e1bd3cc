"""A local LangSmith API emulator, faithful to ``API.md``, for tests and the demo.

Usage::

    from bridge.emulator import Emulator

    with Emulator().start() as emu:
        admin_key = emu.bootstrap["admin_key"]   # org-scoped Organization Admin key
        ...                                      # talk HTTP to emu.url

Modules: ``core`` (the ``Emulator``), ``server`` (HTTP/1.1 plumbing), ``api`` (routes,
auth, permissions), ``control`` (``/_emulator`` test hooks), ``state`` (the in-memory
world), ``models`` (request validation), ``views`` (response shapes), ``faults``
(latency, injected failures, rate limit), ``clock`` and ``cli``.
"""

from bridge.emulator.clock import EmulatorClock
from bridge.emulator.core import Emulator
from bridge.emulator.faults import FaultSwitches
from bridge.emulator.records import KeyRecord
from bridge.emulator.state import EmulatorState

__all__ = ["Emulator", "EmulatorClock", "EmulatorState", "FaultSwitches", "KeyRecord"]
