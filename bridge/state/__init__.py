"""State: policy records with compare-and-swap, leases and acknowledgements.

``bridge.wiring.open_state`` opens the backend a configuration names.
"""

from bridge.state.file import FileStateStore
from bridge.state.model import Ack, Generation, Phase, PolicyRecord, new_rotation_id
from bridge.state.protocol import StateStore

__all__ = [
    "Ack",
    "FileStateStore",
    "Generation",
    "Phase",
    "PolicyRecord",
    "StateStore",
    "new_rotation_id",
]
