"""Fixtures for the emulator suite: a fresh emulator per test and a validating client."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.emulator import Emulator, EmulatorClock
from bridge.emulator.responses import Request, Response
from tests.openapi import openapi_hook

MintKey = Callable[..., dict[str, Any]]

# Building httpx's default TLS context costs ~30 ms per client; the emulator is plain
# HTTP, so every client shares one.
_TLS = ssl.create_default_context()


def validating_client(base_url: str) -> httpx.Client:
    """An httpx client whose every response is checked against the OpenAPI spec."""
    return httpx.Client(
        base_url=base_url, timeout=5.0, verify=_TLS, event_hooks={"response": [openapi_hook]}
    )


@pytest.fixture
def clock() -> EmulatorClock:
    return EmulatorClock()


@pytest.fixture
def emulator(clock: EmulatorClock) -> Iterator[Emulator]:
    with Emulator(clock=clock).start() as emu:
        yield emu


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    """A validating client for the ``emulator`` fixture."""
    with validating_client(emulator.url) as http:
        yield http


@pytest.fixture
def admin_headers(emulator: Emulator) -> dict[str, str]:
    return {"X-API-Key": emulator.bootstrap["admin_key"]}


@pytest.fixture
def workspace_ids(emulator: Emulator) -> list[str]:
    return list(emulator.bootstrap["workspace_ids"])


@pytest.fixture
def mint_key(client: httpx.Client, admin_headers: dict[str, str]) -> MintKey:
    """Create an org service key with the admin key; returns the create response body."""

    def mint(**body: Any) -> dict[str, Any]:
        response = client.post(
            "/api/v1/orgs/current/service-keys", json=body, headers=admin_headers
        )
        assert response.status_code == 200, response.text
        created: dict[str, Any] = response.json()
        return created

    return mint


StartEmulator = Callable[..., tuple[Emulator, httpx.Client]]


@pytest.fixture
def start_emulator() -> Iterator[StartEmulator]:
    """Start extra emulators with custom switches; each with a validating client."""
    started: list[tuple[Emulator, httpx.Client]] = []

    def start(**switches: Any) -> tuple[Emulator, httpx.Client]:
        emu = Emulator(**switches).start()
        http = validating_client(emu.url)
        started.append((emu, http))
        return emu, http

    yield start
    for emu, http in started:
        http.close()
        emu.stop()


@pytest.fixture
def no_sdk_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The ``langsmith`` SDK reads no profile of the developer's (the root conftest has
    already removed every LangSmith variable)."""
    monkeypatch.setenv("LANGSMITH_CONFIG_FILE", str(tmp_path / "absent.json"))


@dataclass(frozen=True)
class Seen:
    """One request the emulator answered, without its headers' secrets."""

    method: str
    route: str
    content_encoding: str | None
    status: int


@pytest.fixture
def seen(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> list[Seen]:
    """Every API request the ``emulator`` fixture answers, in order."""
    log: list[Seen] = []
    handle = emulator.api.handle

    def spy(request: Request) -> Response:
        response = handle(request)
        encoding = request.header("content-encoding")
        log.append(Seen(request.method, request.route, encoding, response.status))
        return response

    monkeypatch.setattr(emulator.api, "handle", spy)
    return log
