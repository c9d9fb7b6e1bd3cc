"""A local Secret Manager: an in-process gRPC fake of
``google.cloud.secretmanager.v1.SecretManagerService`` (Google ships no emulator).

It serves the client library's own message types on a loopback port, models version
states, ``latest``, aliases, etags, labels, annotations and replication, and takes
injected faults and latency. Tests start it with ``FakeSecretManager()``; developers run
``python -m providers.gcp.fake --port PORT``. The real client reaches it through an explicit
``SecretManagerServiceGrpcTransport(channel=grpc.insecure_channel(fake.target))``.

Modules: ``store`` (state and semantics), ``faults`` (switches), ``server`` (gRPC).
"""

from __future__ import annotations

from providers.gcp.fake.faults import Faults
from providers.gcp.fake.rules import FakeStatus
from providers.gcp.fake.server import SERVICE_NAME, FakeSecretManager
from providers.gcp.fake.store import SecretStore

__all__ = ["SERVICE_NAME", "FakeSecretManager", "FakeStatus", "Faults", "SecretStore"]
