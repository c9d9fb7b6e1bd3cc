"""State: policy records with compare-and-swap, leases and acknowledgements."""

from bridge.config.model import DynamoDBStateSettings, FileStateSettings
from bridge.state.file import FileStateStore
from bridge.state.model import Ack, Generation, Phase, PolicyRecord, new_rotation_id
from bridge.state.protocol import StateStore


def open_store(settings: FileStateSettings | DynamoDBStateSettings) -> StateStore:
    """The state backend the configuration names; SDK-backed ones load on first use."""
    if isinstance(settings, FileStateSettings):
        return FileStateStore(settings.path)
    from providers import open_state

    return open_state(settings)


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
