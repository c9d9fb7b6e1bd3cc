"""The provider contract's one fixture: every scenario runs against every entry of ``FACTORIES``.

Adding a provider is one entry: a factory that receives the pytest request (to reach the
fixtures its store needs: a temporary folder, moto, an OpenBao server, the gRPC fake) and the
policy the provider acts for, and yields ``(provider, tamper)``. ``tamper`` is the store seen
from outside the bridge: what an operator, another tool or another policy could do to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from bridge.config.targets import AwsTarget, FileTarget, GcpTarget, VaultTarget
from bridge.config.vault import VaultSettings
from bridge.payload import Format, Payload, encode
from bridge.provider import Provider
from providers import Connections
from tests.support.aws import fake_aws_environment

POLICY = "contract-policy"


class Tamper(Protocol):
    """Out-of-band access to the one target a contract provider writes."""

    def write_foreign(self, env: Mapping[str, str]) -> None:
        """Make ``env`` the target's content, without any bridge ownership marker."""
        ...

    def write_owned_by(self, payload: Payload) -> None:
        """Write ``payload`` as the bridge acting for ``payload.policy`` would have."""
        ...

    def delete(self) -> None:
        """Remove the target and everything it holds."""
        ...

    def snapshot(self) -> Hashable:
        """An opaque value that changes whenever anything writes the target; ``None`` if absent."""
        ...


@dataclass(frozen=True)
class Target:
    """What each contract scenario gets: a provider for ``policy`` and its store's tamper."""

    provider: Provider
    tamper: Tamper
    policy: str
    connections: Connections  # what opened ``provider``; the scenario may close it


Opened = tuple[Provider, Tamper, Connections]
ProviderFactory = Callable[[pytest.FixtureRequest, str], contextlib.AbstractContextManager[Opened]]


# -- file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileTamper:
    path: Path
    format: Format

    def write_foreign(self, env: Mapping[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(encode(env, self.format), encoding="utf-8")

    def write_owned_by(self, payload: Payload) -> None:
        self.write_foreign(payload.reveal_env())

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def snapshot(self) -> Hashable:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return None
        return (self.path.read_bytes(), status.st_ino, status.st_mtime_ns, status.st_mode)


@contextlib.contextmanager
def file_target(request: pytest.FixtureRequest, policy: str, *, fmt: Format) -> Iterator[Opened]:
    folder: Path = request.getfixturevalue("tmp_path")
    config = FileTarget.model_validate(
        {"provider": "file", "path": folder / "out" / f"{policy}.{fmt}", "format": fmt}
    )
    with Connections() as connections:
        yield connections.open(config, policy), FileTamper(config.path, fmt), connections


# -- aws -------------------------------------------------------------------------------

AWS_REGION = "us-east-1"


@dataclass(frozen=True)
class AwsTamper:
    """An operator with the AWS console: plain Secrets Manager calls, no bridge code."""

    client: Any  # a boto3 Secrets Manager client
    secret_id: str

    def write_foreign(self, env: Mapping[str, str]) -> None:
        text = encode(env, "json")
        if self._exists():
            self.client.put_secret_value(SecretId=self.secret_id, SecretString=text)
        else:
            self.client.create_secret(Name=self.secret_id, SecretString=text)

    def write_owned_by(self, payload: Payload) -> None:
        tags = [
            {"Key": "langsmith-bridge:managed", "Value": "true"},
            {"Key": "langsmith-bridge:policy", "Value": payload.policy},
        ]
        text = encode(payload.reveal_env(), "json")
        if self._exists():
            self.client.tag_resource(SecretId=self.secret_id, Tags=tags)
            self.client.put_secret_value(SecretId=self.secret_id, SecretString=text)
        else:
            self.client.create_secret(Name=self.secret_id, SecretString=text, Tags=tags)

    def delete(self) -> None:
        self.client.delete_secret(SecretId=self.secret_id, ForceDeleteWithoutRecovery=True)

    def snapshot(self) -> Hashable:
        """Every version with its labels, and the tags."""
        if not self._exists():
            return None
        listed = self.client.list_secret_version_ids(
            SecretId=self.secret_id, IncludeDeprecated=True
        )
        versions = sorted(
            (v["VersionId"], tuple(sorted(v.get("VersionStages", [])))) for v in listed["Versions"]
        )
        tags = self.client.describe_secret(SecretId=self.secret_id).get("Tags", [])
        return tuple(versions), tuple(sorted((t["Key"], t["Value"]) for t in tags))

    def _exists(self) -> bool:
        try:
            self.client.describe_secret(SecretId=self.secret_id)
        except self.client.exceptions.ResourceNotFoundException:
            return False
        return True


@contextlib.contextmanager
def aws_target(request: pytest.FixtureRequest, policy: str) -> Iterator[Opened]:
    import boto3
    from moto import mock_aws

    fake_aws_environment(request.getfixturevalue("monkeypatch"))
    config = AwsTarget.model_validate(
        {"provider": "aws", "secret_id": f"langsmith/{policy}", "region": AWS_REGION}
    )
    with mock_aws(), Connections() as connections:
        provider = connections.open(config, policy)
        client = boto3.client("secretsmanager", region_name=AWS_REGION)
        try:
            yield provider, AwsTamper(client, config.secret_id), connections
        finally:
            client.close()


# -- vault -----------------------------------------------------------------------------

VAULT_OWNER = ("langsmith-bridge:managed", "langsmith-bridge:policy")


@dataclass(frozen=True)
class VaultTamper:
    """An operator with ``bao kv``: plain KV v2 calls with the root token, no bridge code."""

    client: Any  # an hvac client
    mount: str
    path: str

    def write_foreign(self, env: Mapping[str, str]) -> None:
        self._kv.create_or_update_secret(self.path, secret=dict(env), mount_point=self.mount)

    def write_owned_by(self, payload: Payload) -> None:
        managed, policy = VAULT_OWNER
        custom = {managed: "true", policy: payload.policy}
        self.client.adapter.post(
            f"/v1/{self.mount}/metadata/{self.path}", json={"custom_metadata": custom}
        )
        self.write_foreign(payload.reveal_env())

    def delete(self) -> None:
        self._kv.delete_metadata_and_all_versions(self.path, mount_point=self.mount)

    def snapshot(self) -> Hashable:
        """Every version with its state, the custom metadata and the settings."""
        import hvac.exceptions

        try:
            meta = self._kv.read_secret_metadata(self.path, mount_point=self.mount)["data"]
        except hvac.exceptions.InvalidPath:
            return None
        versions = sorted((n, tuple(sorted(v.items()))) for n, v in meta["versions"].items())
        custom = tuple(sorted((meta.get("custom_metadata") or {}).items()))
        return tuple(versions), custom, meta["current_version"], meta["max_versions"]

    @property
    def _kv(self) -> Any:
        return self.client.secrets.kv.v2


@contextlib.contextmanager
def vault_target(request: pytest.FixtureRequest, policy: str) -> Iterator[Opened]:
    bao = request.getfixturevalue("bao")
    mount = bao.fresh_mount()
    config = VaultTarget.model_validate(
        {"provider": "vault", "mount": mount, "path": f"apps/{policy}/langsmith"}
    )
    settings = VaultSettings.model_validate({"address": bao.address})
    options = {"vault": {"settings": settings, "environ": {"VAULT_TOKEN": bao.root_token}}}
    root = bao.root()
    with Connections(options) as connections:
        try:
            yield (
                connections.open(config, policy),
                VaultTamper(root, mount, config.path),
                connections,
            )
        finally:
            root.adapter.close()


# -- gcp -------------------------------------------------------------------------------

GCP_PROJECT = "demo-project"


@dataclass(frozen=True)
class GcpTamper:
    """An operator with ``gcloud secrets``: plain Secret Manager RPCs, no bridge code."""

    client: Any  # a SecretManagerServiceClient on the fake
    name: str  # projects/P/secrets/S

    def write_foreign(self, env: Mapping[str, str]) -> None:
        """A new version made what ``versions/current`` reads (created unlabelled)."""
        self._write(encode(env, "json"), labels=None)

    def write_owned_by(self, payload: Payload) -> None:
        from providers.gcp.sm_calls import POLICY_ANNOTATION, owner_labels

        labels = owner_labels(payload.policy)
        annotations = {POLICY_ANNOTATION: payload.policy}
        self._write(encode(payload.reveal_env(), "json"), labels, annotations)

    def delete(self) -> None:
        self.client.delete_secret(request={"name": self.name})

    def snapshot(self) -> Hashable:
        """The secret's etag, labels, annotations and aliases, and every version's state."""
        from google.api_core.exceptions import NotFound

        try:
            secret = self.client.get_secret(request={"name": self.name})
        except NotFound:
            return None
        versions = self.client.list_secret_versions(request={"parent": self.name})
        return (
            secret.etag,
            tuple(sorted(secret.labels.items())),
            tuple(sorted(secret.annotations.items())),
            tuple(sorted(secret.version_aliases.items())),
            tuple(sorted((v.name, int(v.state), v.etag) for v in versions)),
        )

    def _write(
        self,
        text: str,
        labels: Mapping[str, str] | None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        from google.api_core.exceptions import NotFound

        try:
            secret = self.client.get_secret(request={"name": self.name})
        except NotFound:
            project, _, secret_id = self.name.removeprefix("projects/").partition("/secrets/")
            secret = self.client.create_secret(
                request={
                    "parent": f"projects/{project}",
                    "secret_id": secret_id,
                    "secret": {"replication": {"automatic": {}}},
                }
            )
        version = self.client.add_secret_version(
            request={"parent": self.name, "payload": {"data": text.encode()}}
        )
        number = int(version.name.rsplit("/", 1)[-1])
        aliases = dict(secret.version_aliases)
        if "current" in aliases:
            aliases["previous"] = aliases["current"]
        aliases["current"] = number
        update: dict[str, Any] = {"name": self.name, "version_aliases": aliases}
        paths = ["version_aliases"]
        if labels is not None:
            update["labels"] = {**secret.labels, **labels}
            update["annotations"] = {**secret.annotations, **(annotations or {})}
            paths += ["labels", "annotations"]
        self.client.update_secret(request={"secret": update, "update_mask": {"paths": paths}})


@contextlib.contextmanager
def gcp_target(request: pytest.FixtureRequest, policy: str) -> Iterator[Opened]:
    import grpc
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
        SecretManagerServiceGrpcTransport,
    )

    from providers.gcp.fake import FakeSecretManager

    with FakeSecretManager() as fake:
        config = GcpTarget.model_validate(
            {
                "provider": "gcp",
                "project": GCP_PROJECT,
                "secret": f"langsmith-{policy}",
                "endpoint": fake.target,
                "insecure": True,
            }
        )
        channel = grpc.insecure_channel(fake.target)
        client = SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=channel)
        )
        try:
            with Connections() as connections:
                yield connections.open(config, policy), GcpTamper(client, config.name), connections
        finally:
            channel.close()


# -- the table -------------------------------------------------------------------------


FACTORIES: dict[str, ProviderFactory] = {
    "file-dotenv": lambda request, policy: file_target(request, policy, fmt="dotenv"),
    "file-json": lambda request, policy: file_target(request, policy, fmt="json"),
    "aws": aws_target,
    "vault": vault_target,
    "gcp": gcp_target,
}


@pytest.fixture(params=sorted(FACTORIES))
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A fresh, absent target in each registered store, with a provider acting for ``POLICY``."""
    with FACTORIES[request.param](request, POLICY) as (provider, tamper, connections):
        yield Target(provider=provider, tamper=tamper, policy=POLICY, connections=connections)
