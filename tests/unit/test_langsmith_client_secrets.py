"""No error path of the client lets key material into an error text or a log line.

Every scenario sends a key and gets back a server (or transport) failure that echoes
both the key it received and a freshly minted key. The raised error, everything chained
under it that the bridge produced, and every log record must be free of both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bridge.errors import BridgeError, LangSmithError
from bridge.langsmith import LangSmithClient
from bridge.langsmith.models import ShapeError
from bridge.secrets import Secret
from tests.unit.test_langsmith_fakes import (
    ADMIN_KEY_TEXT,
    KEY_BODY,
    KEY_ID,
    NEW_KEY,
    NEW_KEY_TEXT,
    WS_ID,
    Reply,
    Script,
    serve,
)

ECHO = f"x-api-key={ADMIN_KEY_TEXT} verify={NEW_KEY_TEXT} new key {NEW_KEY_TEXT}"
SECRETS = (ADMIN_KEY_TEXT, NEW_KEY_TEXT)
FRAGMENTS = tuple(s[8:40] for s in SECRETS) + tuple(s[-10:] for s in SECRETS)


def echo_request(status: int) -> Callable[[httpx.Request], httpx.Response]:
    """A reply that quotes the request's own key header back, as a careless proxy might."""

    def reply(request: httpx.Request) -> httpx.Response:
        sent = request.headers["X-API-Key"]
        return httpx.Response(status, json={"detail": f"bad key {sent}; {ECHO}"})

    return reply


# (scenario id, scripted reply)
SCENARIOS: list[tuple[str, Script]] = [
    ("401-json", echo_request(401)),
    ("401-text", Reply(401, text=f"Invalid token {ECHO}")),
    (
        "403-workspace",
        Reply(403, json={"error": "org_scoped_key_requires_workspace", "detail": ECHO}),
    ),
    ("403-other", Reply(403, json={"detail": ECHO, "message": ECHO})),
    ("404", Reply(404, json={"detail": ECHO})),
    (
        "422",
        Reply(
            422, json={"detail": [{"loc": ["body", ECHO], "msg": ECHO, "type": "t", "input": ECHO}]}
        ),
    ),
    ("422-strings", Reply(422, json={"detail": [ECHO]})),
    ("429", Reply(429, json={"detail": ECHO}, headers={"Retry-After": "1"})),
    ("429-too-long", Reply(429, text=ECHO, headers={"Retry-After": "3600"})),
    ("408", Reply(408, text=ECHO)),
    ("500", echo_request(500)),
    ("502-html", Reply(502, text=f"<html><body>{ECHO}</body></html>")),
    ("400", Reply(400, json={"error": ECHO, "title": ECHO})),
    ("409", echo_request(409)),
    ("425", Reply(425, text=ECHO)),
    ("302", Reply(302, text=ECHO, headers={"Location": f"https://elsewhere/?k={NEW_KEY_TEXT}"})),
    ("connect-error", httpx.ConnectError(f"refused while sending {ECHO}")),
    ("read-timeout", httpx.ReadTimeout(f"timed out {ECHO}")),
    ("protocol-error", httpx.RemoteProtocolError(f"peer closed {ECHO}")),
    ("2xx-not-json", Reply(200, text=ECHO, headers={"Content-Type": f"text/plain; x={ECHO}"})),
    ("2xx-wrong-shape", Reply(200, json={"id": ECHO, "short_key": 1, "key": NEW_KEY_TEXT})),
    ("2xx-bad-key-field", Reply(200, json={**KEY_BODY, "description": None, "key": NEW_KEY_TEXT})),
    ("2xx-bad-encoding", Reply(200, text=ECHO, headers={"Content-Encoding": "gzip"})),
]

# A delete does not read the body of a 2xx, so these are successes for it; and any JSON
# object is an ``OrganizationInfo`` (every field the client reads is optional).
DELETE_ACCEPTS = {"2xx-not-json", "2xx-wrong-shape", "2xx-bad-key-field"}
ORG_INFO_ACCEPTS = {"2xx-wrong-shape", "2xx-bad-key-field"}

CALLS: dict[str, Callable[[LangSmithClient], Any]] = {
    "create_service_key": lambda c: c.create_service_key(description="d"),
    "create_workspace_key": lambda c: c.create_workspace_key(WS_ID, description="d"),
    "list_service_keys": lambda c: c.list_service_keys(),
    "delete_workspace_key": lambda c: c.delete_workspace_key(WS_ID, KEY_ID),
    "verify_key": lambda c: c.verify_key(NEW_KEY, workspace_id=WS_ID),
    "verify_key@consumer": lambda c: c.verify_key(
        NEW_KEY, workspace_id=WS_ID, endpoint="https://public.example.test/"
    ),
    "verify_key@org": lambda c: c.verify_key(NEW_KEY),
    "org_info": lambda c: c.org_info(),
    "list_roles": lambda c: c.list_roles(),
}


def chain(err: BaseException | None) -> Iterator[BaseException]:
    """``err`` and everything chained under it (cause first, then context)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def assert_no_key_material(text: str) -> None:
    for secret in SECRETS + FRAGMENTS:
        assert secret not in text


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize(("scenario", "reply"), SCENARIOS, ids=[s for s, _ in SCENARIOS])
def test_no_key_material_in_any_error_or_log(
    scenario: str, reply: Script, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, client = serve(reply)
    if name.startswith("delete") and scenario in DELETE_ACCEPTS:
        with client:
            assert CALLS[name](client) is None
        return
    if name == "org_info" and scenario in ORG_INFO_ACCEPTS:
        with client:
            CALLS[name](client)
        return
    with client, pytest.raises(BridgeError) as info:
        CALLS[name](client)
    err = info.value
    assert isinstance(err, LangSmithError)
    assert err.operation == name.partition("@")[0]
    ours = [e for e in chain(err) if isinstance(e, BridgeError | ShapeError)]
    assert ours[0] is err
    for e in ours:
        assert_no_key_material(str(e))
        assert_no_key_material(repr(e))
        assert_no_key_material(" ".join(map(str, e.args)))
    for record in caplog.records:
        assert_no_key_material(record.getMessage())


def test_a_skipped_listing_entry_logs_no_key_material(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    entries = [
        {"id": NEW_KEY_TEXT, "short_key": NEW_KEY_TEXT, "description": 5},
        {"id": KEY_ID, "short_key": f"lsv2_sk_...{ECHO}", "description": ECHO, "expires_at": ECHO},
        {"id": 7, "short_key": None, "description": ECHO},
        ECHO,
    ]
    _, client = serve(Reply(200, json=entries))
    with client:
        listing = client.list_service_keys()
    assert (len(listing), listing.skipped) == (0, 4)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    for record in warnings:
        assert_no_key_material(record.getMessage())
        assert_no_key_material(repr(vars(record)))


def test_the_echo_really_contains_the_keys() -> None:
    assert ADMIN_KEY_TEXT in ECHO
    assert NEW_KEY_TEXT in ECHO


def test_a_non_key_shaped_secret_echoed_back_is_scrubbed_too() -> None:
    odd = Secret("hunter2-correct-horse-battery")
    _, client = serve(echo_request(401))
    with client, pytest.raises(LangSmithError) as info:
        client.verify_key(odd)
    assert "hunter2" not in str(info.value)
    assert "<redacted>" in str(info.value)


def test_a_redacted_excerpt_names_the_fingerprint_instead() -> None:
    _, client = serve(Reply(404, json={"detail": f"no key {NEW_KEY_TEXT}"}))
    with client, pytest.raises(LangSmithError) as info:
        client.delete_service_key(KEY_ID)
    assert NEW_KEY.fingerprint in str(info.value)
