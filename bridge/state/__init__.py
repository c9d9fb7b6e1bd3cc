"""State: policy records with compare-and-swap, fenced leases, acknowledgements and runs.

``bridge.wiring.open_state`` opens the backend a configuration names.
"""

from bridge.state.file import FileStateStore
from bridge.state.lease import Lease
from bridge.state.model import (
    Ack,
    Event,
    Generation,
    Phase,
    PolicyRecord,
    Run,
    new_rotation_id,
)
from bridge.state.protocol import StateStore

__all__ = [
    "Ack",
    "Event",
    "FileStateStore",
    "Generation",
    "Lease",
    "Phase",
    "PolicyRecord",
    "Run",
    "StateStore",
    "new_rotation_id",
]
