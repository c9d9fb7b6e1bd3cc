"""Issue 9's "Done when", as one test, with the programs a platform team runs.

A config whose target is a Secret Manager secret (on the project's gRPC fake) and whose
state is GCS (on fake-gcs-server); the ``langsmith-bridge`` CLI in processes of its own:

1. ``run`` publishes a key that the official ``langsmith`` SDK, configured from
   ``versions/current`` alone (read with Google's own client), uses against the emulator;
   the secret the bridge created carries the rotation schedule it was given;
2. ``rotate`` moves ``current``; ``previous`` stays readable, its key working, while it
   waits for its consumer;
3. the consumer acknowledges (``ack --from-env``): the next ``run`` deletes the old key and
   disables its version;
4. ``langsmith-bridge gcp-push`` (functions-framework, a server process): a SECRET_ROTATE
   push, signed like Pub/Sub's, rotates the policy once though delivered twice, in turn
   and at once; a forged, unsigned or misdirected push is refused and rotates nothing.

No output of any program holds a key.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
    SecretManagerServiceGrpcTransport,
)
from google.cloud.secretmanager_v1.types import resources

from bridge.emulator import Emulator
from bridge.emulator.records import short_key
from bridge.payload import API_KEY
from providers.gcp.fake import FakeSecretManager
from tests.integration.test_vault_done_when import sdk_works
from tests.integration.test_vault_policies import live_bridge_keys
from tests.support.gcs import GcsServer
from tests.support.oidc import OidcIssuer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLI = Path(sys.executable).with_name("langsmith-bridge")
POLICY = "tracing-prod"
PROJECT = "demo-project"
PROJECT_NUMBER = "123456789012"  # Secret Manager's events name the project by number
SECRET = "langsmith-tracing-prod"
NAME = f"projects/{PROJECT}/secrets/{SECRET}"
TOPIC = f"projects/{PROJECT}/topics/langsmith-rotation"
AUDIENCE = "https://rotate-abc-uc.a.run.app/events"
PUSHER = "pusher@demo-project.iam.gserviceaccount.com"
STRANGER = "someone@other-project.iam.gserviceaccount.com"
State = resources.SecretVersion.State


@pytest.fixture
def fake_sm() -> Iterator[FakeSecretManager]:
    with FakeSecretManager() as fake:
        yield fake


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer() as made:
        yield made


def config(emu: Emulator, fake: FakeSecretManager, gcs: GcsServer, issuer: OidcIssuer) -> str:
    return f"""
[langsmith]
endpoint = "{emu.url}"
admin_key_env = "LANGSMITH_ADMIN_KEY"

[state]
backend = "gcs"
bucket = "{gcs.fresh_bucket()}"
endpoint = "{gcs.endpoint}"

[run]
verify_attempts = 1

[pubsub]
audience = "{AUDIENCE}"
service_account = "{PUSHER}"
certs_url = "{issuer.certs_url}"

[[policy]]
name = "{POLICY}"
default_workspace = "{emu.bootstrap["workspace_ids"][0]}"
consumers = ["api"]
ack = "explicit"
min_overlap = "0s"

  [[policy.target]]
  provider = "gcp"
  project = "{PROJECT}"
  secret = "{SECRET}"
  endpoint = "{fake.target}"
  insecure = true
  rotation_topic = "{TOPIC}"
  rotation_period = "30d"
"""


class Programs:
    """The bridge's CLI in processes of its own, outputs kept for the no-secret check."""

    def __init__(self, emu: Emulator, folder: Path, config: Path) -> None:
        self.folder, self.config = folder, config
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(folder),
            "LANGSMITH_ADMIN_KEY": emu.bootstrap["admin_key"],
        }
        self.outputs: list[str] = []

    def bridge(self, *args: str, **env: str) -> str:
        done = subprocess.run(
            [str(CLI), "-c", str(self.config), *args],
            env={**self.env, **env},
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.outputs += [done.stdout, done.stderr]
        assert done.returncode == 0, done.stderr
        return done.stdout

    def waiting_for(self) -> list[list[str]]:
        found = json.loads(self.bridge("status", "--json"))
        entries = found["policies"] if isinstance(found, dict) else found
        (entry,) = [e for e in entries if e["name"] == POLICY]
        return [sorted(s["waiting_for"]) for s in entry["superseded"]]


class PushServer:
    """``langsmith-bridge gcp-push`` on a free loopback port, until stopped."""

    def __init__(self, programs: Programs) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log = programs.folder / "push.log"
        self._out = self.log.open("wb")
        self.process = subprocess.Popen(
            [str(CLI), "-c", str(programs.config), "gcp-push", "--port", str(self.port)],
            env={**programs.env, "THREADS": "8"},
            cwd=programs.folder,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError(f"gcp-push did not listen: {self.log.read_text()}")

    def push(self, body: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/", json.dumps(body).encode(), headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 - http on loopback
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read() or b"{}")

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._out.close()
        return self.log.read_text()


def rotate_message(message_id: str, sm: SecretManagerServiceClient) -> dict[str, Any]:
    """A push envelope as Pub/Sub delivers Secret Manager's SECRET_ROTATE."""
    secret = resources.Secret.to_json(sm.get_secret(name=NAME))
    return {
        "message": {
            "attributes": {
                "eventType": "SECRET_ROTATE",
                "secretId": f"projects/{PROJECT_NUMBER}/secrets/{SECRET}",
                "dataFormat": "JSON_API_V1",
            },
            "data": base64.b64encode(secret.encode()).decode(),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%f}789Z",  # nanoseconds
        },
        "subscription": f"projects/{PROJECT}/subscriptions/langsmith-rotation-push",
    }


def current(sm: SecretManagerServiceClient) -> tuple[int, dict[str, str]]:
    """``versions/current`` as a consumer reads it: its number and its fields."""
    answer = sm.access_secret_version(name=f"{NAME}/versions/current")
    return int(answer.name.rsplit("/", 1)[-1]), json.loads(answer.payload.data)


def mints(emu: Emulator) -> int:
    """How many keys the bridge has minted, deleted or not."""
    keys = emu.state.inspect_keys()
    return sum(1 for k in keys if "langsmith-bridge:" in (k["description"] or ""))


def test_done_when_secret_manager_target_gcs_state_and_secret_rotate_pushes(
    emulator: Emulator,
    fake_sm: FakeSecretManager,
    gcs: GcsServer,
    issuer: OidcIssuer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workspace = emulator.bootstrap["workspace_ids"][0]
    bridge_toml = tmp_path / "bridge.toml"
    bridge_toml.write_text(config(emulator, fake_sm, gcs, issuer))
    programs = Programs(emulator, tmp_path, bridge_toml)
    channel = grpc.insecure_channel(fake_sm.target)
    sm = SecretManagerServiceClient(transport=SecretManagerServiceGrpcTransport(channel=channel))

    # 1. run publishes a key the SDK uses, configured from versions/current alone.
    programs.bridge("run")
    number, first = current(sm)
    assert number == 1
    assert sdk_works(first, workspace, monkeypatch)
    secret = sm.get_secret(name=NAME)
    assert [t.name for t in secret.topics] == [TOPIC]
    assert secret.rotation.rotation_period.days == 30

    # 2. rotate moves current; previous stays readable and working while it waits.
    programs.bridge("rotate", POLICY)
    number, second = current(sm)
    assert number == 2 and second[API_KEY] != first[API_KEY]
    assert dict(sm.get_secret(name=NAME).version_aliases) == {"current": 2, "previous": 1}
    previous = json.loads(sm.access_secret_version(name=f"{NAME}/versions/previous").payload.data)
    assert previous == first
    assert sdk_works(first, workspace, monkeypatch) and sdk_works(second, workspace, monkeypatch)
    assert programs.waiting_for() == [["api"]]

    # 3. the consumer acknowledges: the next run revokes the old key, disables its version.
    said = programs.bridge(
        "ack", POLICY, "--consumer", "api", "--from-env", LANGSMITH_API_KEY=second[API_KEY]
    )
    assert f"{POLICY}: api acknowledged {short_key(second[API_KEY])}" in said
    programs.bridge("run")
    assert live_bridge_keys(emulator) == [short_key(second[API_KEY])]
    assert sm.get_secret_version(name=f"{NAME}/versions/1").state == State.DISABLED
    assert dict(sm.get_secret(name=NAME).version_aliases) == {"current": 2}
    assert not sdk_works(first, workspace, monkeypatch)
    assert programs.waiting_for() == []

    # 4. SECRET_ROTATE pushes: one rotation per message, however often it is delivered.
    server = PushServer(programs)
    try:
        token = issuer.token(AUDIENCE, PUSHER)
        refused = [
            server.push(rotate_message("m-forged", sm), issuer.forged_token(AUDIENCE, PUSHER)),
            server.push(rotate_message("m-none", sm), None),
            server.push(rotate_message("m-aud", sm), issuer.token("https://elsewhere", PUSHER)),
            server.push(rotate_message("m-who", sm), issuer.token(AUDIENCE, STRANGER)),
        ]
        assert [status for status, _ in refused] == [401] * 4
        assert mints(emulator) == 2

        before = mints(emulator)
        message = rotate_message("m-1", sm)
        answers = [server.push(message, token), server.push(message, token)]
        assert [(s, a["outcome"]) for s, a in answers] == [(200, "rotated"), (200, "duplicate")]
        assert answers[0][1]["rotation"] == answers[1][1]["rotation"]
        assert mints(emulator) == before + 1
        assert current(sm)[0] == 3

        message = rotate_message("m-2", sm)
        with ThreadPoolExecutor(max_workers=2) as pool:
            both = list(pool.map(lambda _: server.push(message, token), range(2)))
        assert sorted(a["outcome"] for _, a in both) == ["duplicate", "rotated"]
        assert mints(emulator) == before + 2
        assert current(sm)[0] == 4

        other = rotate_message("m-3", sm)
        other["message"]["attributes"]["eventType"] = "SECRET_VERSION_ADD"
        ignored = server.push(other, token)
        assert ignored == (200, {"outcome": "ignored", "event": "SECRET_VERSION_ADD"})
        assert mints(emulator) == before + 2
        newest = current(sm)[1]
        assert sdk_works(newest, workspace, monkeypatch)
    finally:
        programs.outputs.append(server.stop())
        channel.close()

    keys = [first[API_KEY], second[API_KEY], newest[API_KEY]]
    for output in programs.outputs:
        assert not any(key in output for key in keys)
