"""The environment every test starts from (the root ``conftest`` applies it to each one)."""

from __future__ import annotations

import os

import pytest

ISOLATED_PREFIXES = ("LANGSMITH_", "LANGCHAIN_", "AWS_", "VAULT_", "BAO_", "GOOGLE_")
"""Settings of LangSmith, its SDK and every store's SDK: a developer's shell may hold real
credentials under these names, and a test must neither see nor depend on them."""


def isolate_environment(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Remove every variable named with one of ``ISOLATED_PREFIXES`` (for the test only:
    ``monkeypatch`` restores them); returns the names removed."""
    removed = sorted(name for name in os.environ if name.upper().startswith(ISOLATED_PREFIXES))
    for name in removed:
        monkeypatch.delenv(name)
    return removed
