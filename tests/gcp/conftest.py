"""The fake Secret Manager on a free loopback port, and the real client reaching it."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
    SecretManagerServiceGrpcTransport,
)

from providers.gcp.fake import FakeSecretManager

PROJECT = "projects/demo-project"


@pytest.fixture
def fake_sm() -> Iterator[FakeSecretManager]:
    """A fresh fake per test, so no state or fault leaks between tests."""
    with FakeSecretManager() as fake:
        yield fake


@pytest.fixture
def sm_client(fake_sm: FakeSecretManager) -> Iterator[SecretManagerServiceClient]:
    """The official client over an insecure channel given as an explicit gRPC transport."""
    channel = grpc.insecure_channel(fake_sm.target)
    client = SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(channel=channel)
    )
    yield client
    channel.close()
