"""Every response carries one ``Date`` header, from the emulator clock: a client that
measures time on LangSmith's clock sees the time a test moved it to."""

from __future__ import annotations

import http.client
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from bridge.emulator import Emulator, EmulatorClock
from tests.emulator.conftest import StartEmulator

INSTANT = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


def date_headers(emu: Emulator, method: str, path: str, headers: dict[str, str]) -> list[str]:
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.msg.get_all("Date") or []
    finally:
        connection.close()


@pytest.fixture
def frozen(start_emulator: StartEmulator) -> Emulator:
    emu, _ = start_emulator(clock=EmulatorClock(INSTANT, frozen=True))
    return emu


@pytest.mark.parametrize(
    ("method", "path", "with_key"),
    [
        ("GET", "/api/v1/info", False),
        ("GET", "/api/v1/workspaces", True),
        ("GET", "/api/v1/workspaces", False),
        ("GET", "/api/v1/nothing-here", False),
        ("GET", "/_emulator/clock", False),
        ("POST", "/runs/multipart", False),
    ],
    ids=["public", "authenticated", "401", "404", "control", "ingest-401"],
)
def test_every_response_has_exactly_one_date_from_the_emulator_clock(
    frozen: Emulator, method: str, path: str, with_key: bool
):
    headers = {"X-API-Key": frozen.bootstrap["admin_key"]} if with_key else {}

    dates = date_headers(frozen, method, path, headers)

    assert dates == ["Tue, 06 May 2031 07:08:09 GMT"]


def test_the_date_follows_the_clock_when_a_test_moves_it(frozen: Emulator):
    frozen.advance(timedelta(days=3, seconds=1))

    (date,) = date_headers(frozen, "GET", "/info", {})

    assert parsedate_to_datetime(date) == INSTANT + timedelta(days=3, seconds=1)


def test_the_date_of_a_204_comes_from_the_clock_too(frozen: Emulator):
    headers = {"X-API-Key": frozen.bootstrap["admin_key"]}
    pat = frozen.state.create_pat(description="dated")[0]

    dates = date_headers(
        frozen, "POST", f"/api/v1/orgs/current/personal-access-tokens/{pat.id}/revocation", headers
    )

    assert dates == ["Tue, 06 May 2031 07:08:09 GMT"]


def test_a_running_clock_dates_responses_far_from_the_wall_clock(emulator: Emulator):
    emulator.clock.set(INSTANT)

    (date,) = date_headers(emulator, "GET", "/info", {})

    assert abs(parsedate_to_datetime(date) - INSTANT) < timedelta(seconds=5)
