"""Fixtures every test gets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.env import isolate_environment
from tests.support.gcs import GcsServer, gcs_server
from tests.support.vault import BaoServer, bao_server


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without the developer's LangSmith, LangChain, AWS, Vault/OpenBao
    and Google settings, so real credentials never reach a test and no test depends on
    the shell it was started from. A test sets what it needs with ``monkeypatch``."""
    isolate_environment(monkeypatch)


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    """One real OpenBao dev server for the whole session (see ``tests/support/vault.py``)."""
    with bao_server(tmp_path_factory.mktemp("bao") / "bao.log") as server:
        yield server


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    """One real fake-gcs-server for the whole session (see ``tests/support/gcs.py``)."""
    with gcs_server(tmp_path_factory.mktemp("gcs") / "gcs.log") as server:
        yield server
