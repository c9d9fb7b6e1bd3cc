"""The official ``langsmith`` SDK, configured only through the environment, talks to us."""

from __future__ import annotations

import httpx
import langsmith
import pytest

from bridge.emulator import Emulator
from tests.emulator.conftest import MintKey


@pytest.fixture
def sdk_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("LANGCHAIN_API_KEY", "LANGCHAIN_ENDPOINT", "LANGCHAIN_WORKSPACE_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    monkeypatch.setenv("LANGCHAIN_TRACING_V2", "false")
    return monkeypatch


def test_sdk_lists_seeded_projects_with_a_workspace_scoped_key(
    sdk_env: pytest.MonkeyPatch,
    emulator: Emulator,
    mint_key: MintKey,
    workspace_ids: list[str],
):
    created = mint_key(workspaces=[workspace_ids[0]], description="sdk")
    sdk_env.setenv("LANGSMITH_API_KEY", created["key"])
    sdk_env.setenv("LANGSMITH_ENDPOINT", emulator.url)
    sdk_env.setenv("LANGSMITH_WORKSPACE_ID", workspace_ids[0])

    client = langsmith.Client()
    try:
        projects = list(client.list_projects())
    finally:
        client.close() if hasattr(client, "close") else None

    assert sorted(p.name for p in projects) == ["bridge-demo", "default"]
    assert {str(p.tenant_id) for p in projects} == {workspace_ids[0]}
    keys = {k["id"]: k for k in httpx.get(f"{emulator.url}/_emulator/keys").json()}
    assert keys[created["id"]]["last_used_at"] is not None
