"""Shared by every test that talks to moto or maps botocore errors: credentials that can
only ever reach moto, a moto server on loopback, and botocore's ``ClientError``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import httpx
import pytest
from botocore.exceptions import ClientError

REGION = "us-east-1"


def fake_aws_environment(monkeypatch: pytest.MonkeyPatch, region: str = REGION) -> None:
    """Credentials and a region that can only ever reach moto, never a real account."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


def client_error(
    code: str, operation: str = "PutItem", status: int = 400, message: str = ""
) -> ClientError:
    """The ``ClientError`` botocore raises when AWS answers ``status`` with error ``code``
    to ``operation`` (an API name such as ``GetSecretValue``)."""
    response = {
        "Error": {"Code": code, "Message": message or f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


@contextlib.contextmanager
def serve_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A loopback moto server on a free port (its URL), reached with credentials that can
    only ever reach moto; its data is reset and it is stopped on exit."""
    from moto.server import ThreadedMotoServer  # heavy: only for the tests that serve it

    fake_aws_environment(monkeypatch)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # never route loopback via a proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    werkzeug = logging.getLogger("werkzeug")  # one line per request otherwise
    monkeypatch.setattr(werkzeug, "level", logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        yield url
    finally:
        try:  # moto's backends live in this process: leave nothing to later tests
            httpx.post(f"{url}/moto-api/reset", timeout=10.0, trust_env=False)
        finally:
            server.stop()
