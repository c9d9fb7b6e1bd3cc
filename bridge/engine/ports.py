"""The narrow view of LangSmith that the engine needs; ``bridge.langsmith.LangSmithClient``
fits it, and so does any fake a unit test hands in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from bridge.langsmith import CreatedKey, KeyListing
from bridge.secrets import Secret


class KeyService(Protocol):
    def list_service_keys(self) -> KeyListing: ...

    def create_service_key(
        self,
        *,
        description: str,
        expires_at: datetime | None = None,
        workspaces: Sequence[str] | None = None,
        role_id: str | None = None,
        org_role_id: str | None = None,
    ) -> CreatedKey: ...

    def delete_service_key(self, key_id: str) -> None: ...

    def verify_key(
        self, key: Secret, *, workspace_id: str | None = None, endpoint: str | None = None
    ) -> None: ...

    def close(self) -> None: ...
