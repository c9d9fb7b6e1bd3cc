"""The official ``langsmith`` SDK, configured only through the environment, talks to us."""

from __future__ import annotations

from pathlib import Path

import langsmith
import pytest
from langsmith.utils import LangSmithUserError

from bridge.emulator import Emulator
from tests.emulator.conftest import MintKey


@pytest.fixture
def sdk_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean SDK environment: no inherited LangSmith settings (the root conftest removes
    them from every test), no profile, no tracing."""
    monkeypatch.setenv("LANGSMITH_CONFIG_FILE", str(tmp_path / "absent.json"))
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
        client.close()

    assert sorted(p.name for p in projects) == ["bridge-demo", "default"]
    assert {str(p.tenant_id) for p in projects} == {workspace_ids[0]}
    record = emulator.state.get_key(created["id"])
    assert record is not None
    assert record.last_used_at is not None


def test_sdk_with_an_org_scoped_key_and_no_workspace_gets_the_workspace_hint(
    sdk_env: pytest.MonkeyPatch, emulator: Emulator
):
    sdk_env.setenv("LANGSMITH_API_KEY", emulator.bootstrap["admin_key"])
    sdk_env.setenv("LANGSMITH_ENDPOINT", f"{emulator.url}/api/v1")

    client = langsmith.Client()
    try:
        with pytest.raises(LangSmithUserError, match="org-scoped"):
            list(client.list_projects())
    finally:
        client.close()
