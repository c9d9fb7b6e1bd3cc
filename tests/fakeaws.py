"""Shared by every test that talks to moto: credentials that can only ever reach moto."""

from __future__ import annotations

import pytest

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
