"""``langsmith-bridge gcp-emulator``: the Secret Manager fake as a standalone local server,
reached by the real client."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import grpc
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
    SecretManagerServiceGrpcTransport,
)

BRIDGE = Path(sys.executable).with_name("langsmith-bridge")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_cli_serves_a_secret_manager_the_real_client_uses() -> None:
    port = free_port()
    server = subprocess.Popen(
        [str(BRIDGE), "gcp-emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert server.stdout is not None
        assert "listening on 127.0.0.1:" in server.stdout.readline().decode()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        client = SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=channel)
        )
        secret = {"replication": {"automatic": {}}}
        created = client.create_secret(
            parent="projects/p", secret_id="s", secret=secret, timeout=10
        )
        assert created.name == "projects/p/secrets/s"
        assert [s.name for s in client.list_secrets(parent="projects/p")] == [created.name]
        channel.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()
