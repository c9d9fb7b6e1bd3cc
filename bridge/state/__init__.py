"""State: policy records with compare-and-swap, leases and acknowledgements."""

from bridge.config.model import FileStateSettings
from bridge.state.file import FileStateStore
from bridge.state.model import Ack, Generation, Phase, PolicyRecord, new_rotation_id
from bridge.state.protocol import StateStore


def open_store(settings: FileStateSettings) -> StateStore:
    """The state backend the configuration names."""
    return FileStateStore(settings.path)


__all__ = [
    "Ack",
    "FileStateStore",
    "Generation",
    "Phase",
    "PolicyRecord",
    "StateStore",
    "new_rotation_id",
    "open_store",
]
