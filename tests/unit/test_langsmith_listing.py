"""The org's key listing: a ``KeyListing`` that skips malformed entries and carries
LangSmith's clock (the response's ``Date``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge import errors
from bridge.langsmith import ApiKey, KeyListing
from bridge.langsmith.models import parse_http_date
from tests.unit.test_langsmith_fakes import KEY_BODY, KEY_ID, Reply, serve

OTHER_ID = "9a9b7d43-4444-4d39-9d4f-2c4f0f4d0004"
GOOD = {**KEY_BODY, "created_at": "2026-08-01T10:00:00Z"}
SECOND = {**KEY_BODY, "id": OTHER_ID, "short_key": "lsv2_sk_...c3"}
SERVED = datetime(2026, 11, 27, 13, 4, 49, tzinfo=UTC)


def skipped_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    fields = [getattr(r, "bridge_fields", {}) for r in caplog.records]
    return [f for f in fields if f.get("event") == "service_key_skipped"]


def test_the_listing_is_a_sequence_of_keys_as_the_list_it_replaces() -> None:
    _, client = serve(Reply(200, json=[GOOD, SECOND]))
    with client:
        listing = client.list_service_keys()
    assert isinstance(listing, Sequence)
    assert len(listing) == 2
    assert [k.id for k in listing] == [KEY_ID, OTHER_ID]
    assert listing[0].id == KEY_ID and listing[-1].id == OTHER_ID
    assert [k.id for k in listing[1:]] == [OTHER_ID]
    assert listing[1] in listing
    assert listing.index(listing[1]) == 1
    assert (listing.served_at, listing.skipped) == (None, 0)


def test_listings_compare_by_keys_clock_and_skips() -> None:
    key = ApiKey(id=KEY_ID, short_key="s", description="d")
    assert KeyListing((key,), SERVED, 0) == KeyListing((key,), SERVED, 0)
    assert KeyListing((key,), SERVED, 0) != KeyListing((key,), None, 0)
    assert KeyListing((key,), SERVED, 0) != KeyListing((key,), SERVED, 1)
    assert list(KeyListing()) == [] and not KeyListing()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"short_key": "lsv2_sk_...d4", "description": "no id"}, "id"),
        ({**KEY_BODY, "id": OTHER_ID, "expires_at": "next tuesday"}, "expires_at"),
        ({**KEY_BODY, "id": OTHER_ID, "created_at": 17}, "created_at"),
        ({**KEY_BODY, "id": OTHER_ID, "description": None}, "description"),
        ({**KEY_BODY, "id": OTHER_ID, "workspace_names": "Orders"}, "workspace_names"),
        ({"id": OTHER_ID, "description": "d"}, "short_key"),
    ],
)
def test_one_malformed_entry_is_skipped_not_fatal(
    bad: dict[str, Any], field: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.langsmith")
    _, client = serve(Reply(200, json=[GOOD, bad, SECOND]))
    with client:
        listing = client.list_service_keys()
    assert [k.id for k in listing] == [KEY_ID, OTHER_ID]
    assert listing.skipped == 1
    (logged,) = skipped_events(caplog)
    assert logged["index"] == 1
    assert logged["reason"].startswith(f"[1].{field}: expected")
    assert logged.get("key_id") == bad.get("id")
    assert logged.get("short_key") == bad.get("short_key")


def test_a_skipped_entry_names_only_what_it_has(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.langsmith")
    entries = ["not an object", {"id": 12, "short_key": 3}, {"id": "has space", "x": 1}]
    _, client = serve(Reply(200, json=entries))
    with client:
        listing = client.list_service_keys()
    assert (len(listing), listing.skipped) == (0, 3)
    events = skipped_events(caplog)
    assert [e["index"] for e in events] == [0, 1, 2]
    assert events[0]["reason"] == "[0]: expected an object"
    assert all("key_id" not in e and "short_key" not in e for e in events)
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "bridge.langsmith")


def test_a_body_that_is_not_an_array_still_fails_the_listing() -> None:
    _, client = serve(Reply(200, json={"keys": [GOOD]}))
    with client, pytest.raises(errors.LangSmithProtocolError, match="expected an array"):
        client.list_service_keys()


def test_served_at_is_the_response_date() -> None:
    _, client = serve(Reply(200, json=[GOOD], headers={"Date": "Fri, 27 Nov 2026 13:04:49 GMT"}))
    with client:
        listing = client.list_service_keys()
    assert listing.served_at == SERVED
    assert listing.served_at is not None and listing.served_at.tzinfo is UTC


@pytest.mark.parametrize("date", ["", "yesterday", "Fri, 32 Nov 2026 13:04:49 GMT", "1795789489"])
def test_a_garbled_date_reads_as_unknown(date: str) -> None:
    _, client = serve(Reply(200, json=[GOOD], headers={"Date": date}))
    with client:
        listing = client.list_service_keys()
    assert listing.served_at is None
    assert len(listing) == 1


@pytest.mark.parametrize(
    "text",
    [
        "Fri, 27 Nov 2026 13:04:49 GMT",  # IMF-fixdate, what servers send
        "Friday, 27-Nov-26 13:04:49 GMT",  # RFC 850, obsolete but to be read
        "Fri Nov 27 13:04:49 2026",  # asctime, obsolete but to be read
        "Fri, 27 Nov 2026 14:04:49 +0100",  # not HTTP, but unambiguous
    ],
)
def test_http_dates_in_every_form_rfc_7231_accepts(text: str) -> None:
    assert parse_http_date(text) == SERVED


@pytest.mark.parametrize("text", [None, "", "  ", "Fri, 27 Nov 2026 25:04:49 GMT", "27/11/2026"])
def test_what_is_no_http_date(text: str | None) -> None:
    assert parse_http_date(text) is None
