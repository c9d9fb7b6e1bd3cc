"""The ``SecretManagerServiceClient`` a target's endpoint needs: over an explicit insecure
gRPC channel with no credentials for a loopback fake, else TLS with the credentials of
``providers.gcp.credentials`` (Application Default Credentials, or the service account they
impersonate). The only module that builds one; ``GcpConnection`` keeps one per endpoint and
identity per process.
"""

from __future__ import annotations

from typing import Any

from bridge.config.gcp import GcpTarget
from providers.gcp.credentials import credentials


def client(target: GcpTarget) -> Any:
    """A new client for ``target``'s endpoint (``Any``: the SDK object, at the edge)."""
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
        SecretManagerServiceGrpcTransport,
    )

    if target.insecure:
        import grpc  # type: ignore[import-untyped,unused-ignore]

        # ``api_endpoint`` with anonymous credentials would still open TLS; only an
        # explicit channel speaks plain text (loopback only, checked by the config).
        assert target.endpoint is not None  # the config requires one with insecure
        channel = grpc.insecure_channel(target.endpoint)
        transport = SecretManagerServiceGrpcTransport(channel=channel)
        return SecretManagerServiceClient(transport=transport)
    from google.api_core.client_options import ClientOptions

    acting_as = credentials(target.impersonate_service_account)
    options = ClientOptions(api_endpoint=target.endpoint) if target.endpoint else None
    return SecretManagerServiceClient(credentials=acting_as, client_options=options)


def close(made: Any) -> None:
    """Close a client's transport (its gRPC channel)."""
    made.transport.close()
