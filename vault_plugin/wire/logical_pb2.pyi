from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionReply(_message.Message):
    __slots__ = ("plugin_version",)
    PLUGIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    plugin_version: str
    def __init__(self, plugin_version: _Optional[str] = ...) -> None: ...

class PluginEnvironment(_message.Message):
    __slots__ = ("vault_version", "vault_version_prerelease", "vault_version_metadata")
    VAULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    VAULT_VERSION_PRERELEASE_FIELD_NUMBER: _ClassVar[int]
    VAULT_VERSION_METADATA_FIELD_NUMBER: _ClassVar[int]
    vault_version: str
    vault_version_prerelease: str
    vault_version_metadata: str
    def __init__(self, vault_version: _Optional[str] = ..., vault_version_prerelease: _Optional[str] = ..., vault_version_metadata: _Optional[str] = ...) -> None: ...
