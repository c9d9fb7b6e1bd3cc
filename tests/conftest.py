"""Fixtures every test gets."""

from __future__ import annotations

import pytest

from tests.support.env import isolate_environment


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without the developer's LangSmith, LangChain, AWS, Vault/OpenBao
    and Google settings, so real credentials never reach a test and no test depends on
    the shell it was started from. A test sets what it needs with ``monkeypatch``."""
    isolate_environment(monkeypatch)
