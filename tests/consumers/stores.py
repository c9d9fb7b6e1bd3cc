"""Where the consumers' test keeps its targets and its state: files in the test's folder
(``FileStores``), or Google Secret Manager secrets on the in-process gRPC fake and the
state in a bucket of the session's fake-gcs-server (``GcpStores``).

The test is the same for both; a ``Stores`` gives it the lines of the bridge's config
that name the stores, loses the state between two runs, and shows, in-process only
(no key leaves this module but as a ``Served`` the caller looks up and drops), what
each target serves now and which stored state holds anything key-shaped.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bridge.payload import API_KEY, decode
from bridge.secrets import KEY_PATTERN

if TYPE_CHECKING:
    from providers.gcp.fake import FakeSecretManager
    from tests.consumers.fleet import PolicySpec
    from tests.support.gcs import GcsServer

GCP_PROJECT = "demo-project"
GCS_PREFIX = "langsmith-bridge/state"  # the backend's default, written out
SETTLE_S = 0.05  # a killed run's last request, already sent, lands within this
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def secrets_in(text: str) -> int:
    return len(KEY_PATTERN.findall(text))


def secrets_in_tree(folder: Path) -> dict[str, int]:
    """File name -> key-shaped strings in it, for every file under ``folder`` that has any."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        count = secrets_in(path.read_text(encoding="utf-8", errors="replace"))
        if count:
            found[str(path.relative_to(folder))] = count
    return found


@dataclass(frozen=True)
class Served:
    """One key a target hands out now: ``current`` is what a consumer reads; the others
    (Secret Manager versions still ENABLED) can be read by number or as ``latest``."""

    where: str  # e.g. "out/tracing.env" or "projects/p/secrets/s/versions/3"
    key: str
    current: bool

    def __repr__(self) -> str:  # never the key
        return f"Served({self.where!r}, current={self.current})"


class Stores(Protocol):
    """The targets and the state of one variant of the test."""

    kind: str
    every_s: int  # run.every: a rotating run must fit in it, process start included

    def target_toml(self, policy: PolicySpec) -> str:
        """The policy's ``target`` entry: one TOML inline table."""
        ...

    def state_toml(self) -> str:
        """The ``[state]`` section."""
        ...

    def lose_state(self) -> dict[str, int]:
        """Delete the whole state between two runs; the key-shaped strings found in it."""
        ...

    def served(self, policy: PolicySpec) -> list[Served]:
        """Every key the policy's target hands out now (the current one first)."""
        ...

    def state_secrets(self) -> dict[str, int]:
        """Where the state holds key-shaped strings, and how many."""
        ...

    def settle(self, pid: int) -> int:
        """After the bridge process ``pid`` was SIGKILLed: expire the leases it left, as
        time would; how many."""
        ...

    def leases_held(self, pid: int) -> int:
        """The unexpired leases the (ended) bridge process ``pid`` still holds."""
        ...

    def close(self) -> None: ...


class FileStores:
    """File targets (``PolicySpec.target``, relative to ``root``), the state a SQLite file
    under ``root/state``."""

    kind = "file"
    every_s = 3  # a rotating run takes ~2.4 s (its verification waits out the auth cache)

    def __init__(self, root: Path) -> None:
        self.root = root

    def target_toml(self, policy: PolicySpec) -> str:
        return f'{{ provider = "file", path = "{policy.target}", format = "{policy.format}" }}'

    def state_toml(self) -> str:
        return '[state]\nbackend = "file"\npath = "state/bridge-state.db"\n'

    def lose_state(self) -> dict[str, int]:
        """The database, write-ahead log and locks. The folder is renamed away before it
        is deleted, so a consumer acknowledging at that instant writes either to the old
        database or to a new one, never to a mix of both."""
        state = self.root / "state"
        lost = self.root / f"state.lost-{time.monotonic_ns()}"
        state.rename(lost)
        found = secrets_in_tree(lost)
        shutil.rmtree(lost)
        return found

    def served(self, policy: PolicySpec) -> list[Served]:
        path = self.root / policy.target
        if not path.exists():
            return []
        text = path.read_text(encoding="utf-8")
        key = decode(text, "json" if policy.format == "json" else "dotenv").get(API_KEY, "")
        return [Served(policy.target, key, True)] if key else []

    def state_secrets(self) -> dict[str, int]:
        folder = self.root / "state"
        return secrets_in_tree(folder) if folder.exists() else {}

    def settle(self, pid: int) -> int:
        return 0  # the file backend's leases end with the process that holds them

    def leases_held(self, pid: int) -> int:
        return 0

    def close(self) -> None:
        pass


class GcpStores:
    """Secret Manager targets (one secret per policy, ``langsmith-<policy>``) on ``sm``,
    reached over loopback by the bridge and the consumers alike; the state under
    ``GCS_PREFIX`` in a fresh bucket of ``gcs``. The test reads them with the official
    clients: ``SecretManagerServiceClient`` over an insecure channel, ``storage.Client``."""

    kind = "gcp"
    every_s = 4  # ~1 s more than with files: each run imports the Google clients, and
    # every state operation is an HTTP round trip to the bucket

    def __init__(self, gcs: GcsServer, sm: FakeSecretManager) -> None:
        import grpc
        from google.cloud.secretmanager_v1 import SecretManagerServiceClient
        from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
            SecretManagerServiceGrpcTransport,
        )

        self.gcs = gcs
        self.sm = sm
        self.bucket_name = gcs.fresh_bucket()
        self._storage = gcs.client()
        self._channel = grpc.insecure_channel(sm.target)
        self._client: Any = SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=self._channel)
        )

    @staticmethod
    def secret_id(policy: PolicySpec) -> str:
        return f"langsmith-{policy.name}"

    def secret_name(self, policy: PolicySpec) -> str:
        return f"projects/{GCP_PROJECT}/secrets/{self.secret_id(policy)}"

    def target_toml(self, policy: PolicySpec) -> str:
        return (
            f'{{ provider = "gcp", project = "{GCP_PROJECT}", secret = "{self.secret_id(policy)}",'
            f' endpoint = "{self.sm.target}", insecure = true }}'
        )

    def state_toml(self) -> str:
        return (
            f'[state]\nbackend = "gcs"\nbucket = "{self.bucket_name}"\n'
            f'prefix = "{GCS_PREFIX}"\nendpoint = "{self.gcs.endpoint}"\n'
        )

    def _blobs(self, prefix: str | None) -> list[Any]:
        bucket = self._storage.bucket(self.bucket_name)
        return list(self._storage.list_blobs(bucket, prefix=prefix))

    def lose_state(self) -> dict[str, int]:
        """Every object under the prefix, one by one, as an operator emptying it would: a
        consumer acknowledging meanwhile may write its ack object again, into the new,
        empty state (what ``FileStores`` allows for too)."""
        from google.api_core import exceptions as gexc

        found = {}
        for blob in self._blobs(f"{GCS_PREFIX}/"):
            try:
                text = blob.download_as_bytes().decode("utf-8", errors="replace")
                blob.delete()
            except gexc.NotFound:
                continue
            if count := secrets_in(text):
                found[blob.name] = count
        return found

    def served(self, policy: PolicySpec) -> list[Served]:
        from google.api_core import exceptions as gexc
        from google.cloud.secretmanager_v1.types import resources

        name = self.secret_name(policy)
        try:
            current = self._client.access_secret_version(name=f"{name}/versions/current")
        except gexc.NotFound:
            current = None
        found = []
        if current is not None:
            found.append(Served(current.name, self._key_in(current), True))
        for version in self._client.list_secret_versions(parent=name):
            if version.state != resources.SecretVersion.State.ENABLED:
                continue
            if current is not None and version.name == current.name:
                continue
            access = self._client.access_secret_version(name=version.name)
            found.append(Served(version.name, self._key_in(access), False))
        return [s for s in found if s.key]

    @staticmethod
    def _key_in(access: Any) -> str:
        text = bytes(access.payload.data).decode("utf-8", errors="replace")
        return decode(text, "json").get(API_KEY, "")

    def state_secrets(self) -> dict[str, int]:
        found = {}
        for blob in self._blobs(None):  # the whole bucket, not only the prefix
            if count := secrets_in(blob.download_as_bytes().decode("utf-8", errors="replace")):
                found[blob.name] = count
        return found

    def _leases_of(self, pid: int) -> list[tuple[Any, Any]]:
        """The unexpired leases ``pid`` holds: (blob, lease)."""
        from google.api_core import exceptions as gexc

        from providers.gcp import gcs_layout as layout

        held = []
        for blob in self._blobs(f"{GCS_PREFIX}/{layout.LEASES}/"):
            try:
                lease = layout.read_lease(layout.decode(blob.download_as_bytes()))
            except gexc.NotFound:
                continue
            unexpired = lease.expires_ms > time.time() * 1000
            if lease.holder and unexpired and lease.owner.endswith(f":{pid}"):
                held.append((blob, lease))
        return held

    def settle(self, pid: int) -> int:
        """A lease object outlives its holder: a killed run's would block its policies
        for ``lease_ttl``. Rewritten with the same holder and an expiry in the past, with
        ``if_generation_match`` on the generation read (``tests/crash/test_sigkill_gcp``)."""
        from google.api_core import exceptions as gexc

        from providers.gcp import gcs_layout as layout

        expired = 0
        time.sleep(SETTLE_S)
        for _ in range(3):  # a request of the dead runner may still land: read again
            left = self._leases_of(pid)
            for blob, lease in left:
                document = layout.encode(layout.lease_document(lease.holder, EPOCH))
                try:
                    blob.upload_from_string(
                        document,
                        content_type="application/json",
                        if_generation_match=blob.generation,
                    )
                    expired += 1
                except gexc.PreconditionFailed:
                    pass
            if not left:
                break
            time.sleep(SETTLE_S)
        return expired

    def leases_held(self, pid: int) -> int:
        return len(self._leases_of(pid))

    def close(self) -> None:
        self._channel.close()
