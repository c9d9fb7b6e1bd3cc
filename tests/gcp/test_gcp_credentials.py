"""Service-account impersonation for the GCP stores, against a loopback IAM Credentials
``generateAccessToken`` endpoint: what the bridge asks for (as the ambient identity, the
cloud-platform scope for an hour), what it acts with (the token IAM issued), and that two
identities never share a client. No token it is given or issued shows in a repr or a log.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import google.auth
import pytest
import requests
from google.auth import exceptions as auth_exc
from google.auth import impersonated_credentials
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import credentials as oauth2

from bridge.config.gcp import GcpTarget, GcsStateSettings
from providers.gcp import GcpConnection
from providers.gcp.credentials import LIFETIME_S, SCOPES, credentials
from providers.gcp.gcs_objects import StateUnavailable, client

pytestmark = pytest.mark.integration

WRITER = "bridge-writer@demo-project.iam.gserviceaccount.com"
READER = "bridge-reader@demo-project.iam.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_CALL = re.compile(r"^/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken$")


@dataclass
class Seen:
    """One request the fake answered."""

    path: str
    authorization: str | None
    body: dict[str, Any]


@dataclass
class FakeIam:
    """IAM Credentials' ``generateAccessToken`` (and an echo of ``Authorization`` on any
    other path) on a free loopback port; ``status`` other than 200 refuses every call."""

    base: str
    seen: list[Seen] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    status: int = 200

    def endpoint(self, account: str) -> str:
        return f"{self.base}/v1/projects/-/serviceAccounts/{account}:generateAccessToken"

    def answer(self, path: str, authorization: str | None, body: bytes) -> tuple[int, bytes]:
        if not _CALL.match(path):
            return 200, json.dumps({"authorization": authorization}).encode()
        self.seen.append(Seen(path, authorization, json.loads(body or b"{}")))
        if self.status != 200:
            return self.status, b'{"error": {"code": 403, "status": "PERMISSION_DENIED"}}'
        token = f"ya29.impersonated-{secrets.token_urlsafe(16)}"
        self.issued.append(token)
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 200, json.dumps({"accessToken": token, "expireTime": expires}).encode()


def _handler(fake: FakeIam) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, body: bytes = b"") -> None:
            status, data = fake.answer(self.path, self.headers.get("Authorization"), body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self._reply(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def do_GET(self) -> None:
            self._reply()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fake_iam() -> Iterator[FakeIam]:
    fake = FakeIam("")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def source_token(monkeypatch: pytest.MonkeyPatch) -> str:
    """The ambient identity's token: ``google.auth.default`` answers with it (and a project)."""
    token = f"source-token-{secrets.token_urlsafe(16)}"
    ambient = oauth2.Credentials(token=token)  # type: ignore[no-untyped-call]

    def default(scopes: Any = None, **_: Any) -> tuple[Any, str]:
        return ambient, "demo-project"

    monkeypatch.setattr(google.auth, "default", default)
    return token


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


Shown = Callable[..., None]


@pytest.fixture
def never_shown(caplog: pytest.LogCaptureFixture) -> Shown:
    """Checks that no given token is in the logs (all of them, at DEBUG) or the given texts."""
    caplog.set_level(logging.DEBUG)

    def check(*texts: str, tokens: list[str]) -> None:
        shown = "\n".join([caplog.text, *texts])
        for token in tokens:
            assert token not in shown

    return check


def gcp_target(account: str | None, endpoint: str = "127.0.0.1:1") -> GcpTarget:
    return GcpTarget.model_validate(
        {
            "provider": "gcp",
            "project": "demo-project",
            "secret": "langsmith-alpha",
            "endpoint": endpoint,
            "impersonate_service_account": account,
        }
    )


def gcs_settings(account: str | None, **extra: object) -> GcsStateSettings:
    return GcsStateSettings.model_validate(
        {
            "backend": "gcs",
            "bucket": "bridge-state",
            "project": "demo-project",
            "impersonate_service_account": account,
            **extra,
        }
    )


def acts_as(made: Any, account: str) -> bool:
    return (
        isinstance(made, impersonated_credentials.Credentials)
        and made.service_account_email == account
    )


# -- the credentials --------------------------------------------------------------------


def test_without_impersonation_the_ambient_credentials_are_returned_as_they_are(
    source_token: str,
) -> None:
    ambient, _project = google.auth.default()

    assert credentials(None) is ambient


def test_impersonation_asks_iam_as_the_ambient_identity_for_cloud_platform_for_an_hour(
    fake_iam: FakeIam, source_token: str, http: requests.Session, never_shown: Shown
) -> None:
    made = credentials(WRITER, iam_endpoint=fake_iam.endpoint(WRITER))

    made.refresh(Request(session=http))

    [call] = fake_iam.seen
    assert call.path == f"/v1/projects/-/serviceAccounts/{WRITER}:generateAccessToken"
    assert call.authorization == f"Bearer {source_token}"
    assert call.body["scope"] == [CLOUD_PLATFORM] == list(SCOPES)
    assert call.body["lifetime"] == f"{LIFETIME_S}s" == "3600s"
    assert made.token == fake_iam.issued[0]
    assert made.valid and made.expiry > datetime.now(UTC).replace(tzinfo=None)
    never_shown(repr(made), tokens=[source_token, made.token])


def test_a_request_refreshes_on_its_own_and_carries_the_impersonated_token(
    fake_iam: FakeIam, source_token: str, never_shown: Shown
) -> None:
    made = credentials(READER, iam_endpoint=fake_iam.endpoint(READER))

    with AuthorizedSession(made) as session:
        echoed = session.get(f"{fake_iam.base}/echo", timeout=5).json()
        session.get(f"{fake_iam.base}/echo", timeout=5)

    [issued] = fake_iam.issued  # one refresh, reused for the second request
    assert echoed == {"authorization": f"Bearer {issued}"}
    assert fake_iam.seen[0].path.endswith(f"/{READER}:generateAccessToken")
    never_shown(repr(made), repr(session), tokens=[source_token, issued])


def test_a_refused_impersonation_fails_without_showing_the_ambient_token(
    fake_iam: FakeIam, source_token: str, http: requests.Session, never_shown: Shown
) -> None:
    fake_iam.status = 403
    made = credentials(WRITER, iam_endpoint=fake_iam.endpoint(WRITER))

    with pytest.raises(auth_exc.RefreshError) as raised:
        made.refresh(Request(session=http))

    assert fake_iam.seen and not made.valid
    never_shown(str(raised.value), repr(raised.value), tokens=[source_token])


# -- the clients ------------------------------------------------------------------------


@pytest.fixture
def connection() -> Iterator[GcpConnection]:
    opened = GcpConnection()
    yield opened
    opened.close()


def test_each_impersonated_account_has_its_own_secret_manager_client_on_one_endpoint(
    connection: GcpConnection, source_token: str, never_shown: Shown
) -> None:
    writer = connection.secret_manager_client(gcp_target(WRITER))
    reader = connection.secret_manager_client(gcp_target(READER))
    ambient = connection.secret_manager_client(gcp_target(None))

    assert len({id(writer), id(reader), id(ambient)}) == 3
    assert connection.secret_manager_client(gcp_target(WRITER)) is writer
    assert acts_as(writer.transport._credentials, WRITER)
    assert acts_as(reader.transport._credentials, READER)
    assert not isinstance(ambient.transport._credentials, impersonated_credentials.Credentials)
    never_shown(repr(writer), repr(reader), repr(connection), tokens=[source_token])


def test_each_impersonated_account_has_its_own_storage_client(
    connection: GcpConnection, source_token: str, never_shown: Shown
) -> None:
    writer = connection.storage_client(gcs_settings(WRITER))
    reader = connection.storage_client(gcs_settings(READER))

    assert writer is not reader
    assert connection.storage_client(gcs_settings(WRITER)) is writer
    never_shown(repr(writer), repr(reader), repr(connection), tokens=[source_token])


def test_the_gcs_client_acts_as_the_impersonated_account(
    source_token: str, never_shown: Shown
) -> None:
    made = client(gcs_settings(WRITER))

    assert acts_as(made._credentials, WRITER)
    assert made.project == "demo-project"
    never_shown(repr(made), repr(made._credentials), tokens=[source_token])


def test_on_an_endpoint_the_gcs_client_is_anonymous_unless_it_impersonates(
    source_token: str,
) -> None:
    endpoint = "http://127.0.0.1:4443"

    anonymous = client(gcs_settings(None, endpoint=endpoint))
    impersonating = client(gcs_settings(WRITER, endpoint=endpoint))

    assert isinstance(anonymous._credentials, AnonymousCredentials)
    assert acts_as(impersonating._credentials, WRITER)


def test_impersonating_without_ambient_credentials_leaves_the_gcs_state_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def default(scopes: Any = None, **_: Any) -> tuple[Any, str]:
        raise auth_exc.DefaultCredentialsError("no ADC here")

    monkeypatch.setattr(google.auth, "default", default)

    with pytest.raises(StateUnavailable, match="no Google credentials") as raised:
        client(gcs_settings(WRITER))
    assert raised.value.retryable
