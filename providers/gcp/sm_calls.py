"""One secret's Secret Manager calls, translated: proto messages in, ``SecretView`` and
``Stored`` out, ``google.api_core`` failures raised as ``ProviderError``. It decides nothing;
``secret_manager`` does.

The port (``SecretManagerPort``) lists the only RPCs made. Every call passes ``retry=None``
and a timeout, so the engine's retry policy is the only retry loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exceptions
from google.cloud.secretmanager_v1.types import resources, service

from bridge.config.gcp import POLICY_ANNOTATION, GcpTarget
from bridge.errors import (
    ProviderAccessDenied,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderThrottled,
    ProviderUnavailable,
)
from bridge.payload import Stored, decode
from bridge.secrets import redact

MANAGED_LABEL = "managed-by"
MANAGED_VALUE = "langsmith-bridge"
POLICY_LABEL = "langsmith-bridge-policy"

CURRENT = "current"
PREVIOUS = "previous"

TIMEOUT = 30.0
"""Seconds per call; the client's own retries are off (``retry=None``)."""

LIST_PAGE = 100

SECRET_MANAGER_PERMISSIONS: tuple[str, ...] = (
    "secretmanager.secrets.create",
    "secretmanager.secrets.get",
    "secretmanager.secrets.update",
    "secretmanager.versions.add",
    "secretmanager.versions.access",
    "secretmanager.versions.get",
    "secretmanager.versions.list",
    "secretmanager.versions.disable",
    "secretmanager.versions.destroy",
)
"""The IAM permissions the calls of ``SecretManagerPort`` need."""

Ownership = Literal["ours", "unowned", "theirs"]


class SecretManagerPort(Protocol):
    """The Secret Manager RPCs the provider makes; ``SecretManagerServiceClient`` fits."""

    def get_secret(
        self, *, request: service.GetSecretRequest, retry: None, timeout: float
    ) -> resources.Secret: ...

    def create_secret(
        self, *, request: service.CreateSecretRequest, retry: None, timeout: float
    ) -> resources.Secret: ...

    def update_secret(
        self, *, request: service.UpdateSecretRequest, retry: None, timeout: float
    ) -> resources.Secret: ...

    def add_secret_version(
        self, *, request: service.AddSecretVersionRequest, retry: None, timeout: float
    ) -> resources.SecretVersion: ...

    def access_secret_version(
        self, *, request: service.AccessSecretVersionRequest, retry: None, timeout: float
    ) -> service.AccessSecretVersionResponse: ...

    def get_secret_version(
        self, *, request: service.GetSecretVersionRequest, retry: None, timeout: float
    ) -> resources.SecretVersion: ...

    def list_secret_versions(
        self, *, request: service.ListSecretVersionsRequest, retry: None, timeout: float
    ) -> Iterable[resources.SecretVersion]: ...

    def disable_secret_version(
        self, *, request: service.DisableSecretVersionRequest, retry: None, timeout: float
    ) -> resources.SecretVersion: ...

    def destroy_secret_version(
        self, *, request: service.DestroySecretVersionRequest, retry: None, timeout: float
    ) -> resources.SecretVersion: ...


def policy_label(policy: str) -> str:
    """``policy`` as a label value (lowercase ``[a-z0-9_-]``, at most 63 characters): as it
    is when it already is one, else a readable prefix and a hash of the exact name."""
    if re.fullmatch(r"[a-z0-9_-]{1,63}", policy):
        return policy
    readable = re.sub(r"[^a-z0-9_-]", "-", policy.lower())[:50]
    return f"{readable}-{hashlib.sha256(policy.encode()).hexdigest()[:12]}"


def owner_labels(policy: str) -> dict[str, str]:
    return {MANAGED_LABEL: MANAGED_VALUE, POLICY_LABEL: policy_label(policy)}


@dataclass(frozen=True)
class SecretView:
    """A ``GetSecret`` answer, reduced to what the provider decides on."""

    etag: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    aliases: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, secret: resources.Secret) -> SecretView:
        return cls(
            etag=str(secret.etag),
            labels=dict(secret.labels),
            annotations=dict(secret.annotations),
            aliases={alias: str(number) for alias, number in secret.version_aliases.items()},
        )

    @property
    def tagged_policy(self) -> str | None:
        """The policy the secret is labelled for: the exact name when annotated."""
        return self.annotations.get(POLICY_ANNOTATION) or self.labels.get(POLICY_LABEL)

    def ownership(self, policy: str) -> Ownership:
        labelled = self.labels.get(POLICY_LABEL)
        annotated = self.annotations.get(POLICY_ANNOTATION)
        if labelled is None and annotated is None:
            return "unowned"
        if labelled not in (None, policy_label(policy)) or annotated not in (None, policy):
            return "theirs"
        managed = self.labels.get(MANAGED_LABEL) == MANAGED_VALUE
        return "ours" if managed and labelled is not None else "unowned"

    @property
    def current(self) -> str | None:
        return self.aliases.get(CURRENT)


class SecretCalls:
    """The RPCs on one secret, each translated into the error tree.

    Args:
        target: The secret's address and creation settings.
        policy: The policy its ownership labels name.
        connect: Gives the shared client on first use.
        provider: The provider name for errors.
        reference: The target's address for errors.
    """

    def __init__(
        self,
        target: GcpTarget,
        policy: str,
        connect: Callable[[], SecretManagerPort],
        provider: str,
        reference: str,
    ) -> None:
        self.target = target
        self.policy = policy
        self.name = target.name
        self._connect = connect
        self._provider = provider
        self.reference = reference

    @property
    def _client(self) -> SecretManagerPort:
        return self._connect()

    # -- secrets -----------------------------------------------------------------------

    def get(self, operation: str) -> SecretView | None:
        """The secret's metadata, or ``None`` when there is no such secret."""
        request = service.GetSecretRequest(name=self.name)
        with self.translating(operation, "GetSecret", absent_ok=True):
            return SecretView.of(
                self._client.get_secret(request=request, retry=None, timeout=TIMEOUT)
            )
        return None

    def create(self, operation: str) -> SecretView:
        """A new secret with no version, labelled as this policy's."""
        secret = resources.Secret(
            replication=self._replication(),
            labels={**self.target.labels, **owner_labels(self.policy)},
            annotations={POLICY_ANNOTATION: self.policy},
        )
        if self.target.rotation_topic and self.target.rotation_period:
            # Secret Manager then publishes SECRET_ROTATE to the topic every period, and
            # ``langsmith-bridge gcp-push`` rotates on it: GCP drives the schedule.
            secret.topics = [resources.Topic(name=self.target.rotation_topic)]
            secret.rotation = resources.Rotation(
                next_rotation_time=datetime.now(UTC) + self.target.rotation_period,
                rotation_period=self.target.rotation_period,
            )
        request = service.CreateSecretRequest(
            parent=f"projects/{self.target.project}", secret_id=self.target.secret, secret=secret
        )
        try:
            with self.translating(operation, "CreateSecret"):
                created = self._client.create_secret(request=request, retry=None, timeout=TIMEOUT)
        except ProviderConflict:
            seen = self.get(operation)  # created meanwhile (ALREADY_EXISTS): judge that one
            if seen is None:
                raise
            return seen
        return SecretView.of(created)

    def update(
        self,
        view: SecretView,
        operation: str,
        *,
        aliases: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> SecretView:
        """Replace the given maps, if the secret's etag is still ``view.etag``."""
        secret = resources.Secret(name=self.name, etag=view.etag)
        paths = []
        if aliases is not None:
            secret.version_aliases = {alias: int(number) for alias, number in aliases.items()}
            paths.append("version_aliases")
        if labels is not None:
            secret.labels = dict(labels)
            paths.append("labels")
        if annotations is not None:
            secret.annotations = dict(annotations)
            paths.append("annotations")
        request = service.UpdateSecretRequest(secret=secret, update_mask={"paths": paths})
        with self.translating(operation, "UpdateSecret"):
            return SecretView.of(
                self._client.update_secret(request=request, retry=None, timeout=TIMEOUT)
            )

    def _replication(self) -> resources.Replication:
        target = self.target
        if target.replication == "automatic":
            cmek = None
            if target.kms_key_name:
                cmek = resources.CustomerManagedEncryption(kms_key_name=target.kms_key_name)
            return resources.Replication(
                automatic=resources.Replication.Automatic(customer_managed_encryption=cmek)
            )
        replicas = [
            resources.Replication.UserManaged.Replica(
                location=replica.location,
                customer_managed_encryption=(
                    resources.CustomerManagedEncryption(kms_key_name=replica.kms_key_name)
                    if replica.kms_key_name
                    else None
                ),
            )
            for replica in target.replication
        ]
        return resources.Replication(
            user_managed=resources.Replication.UserManaged(replicas=replicas)
        )

    # -- versions ----------------------------------------------------------------------

    def add(self, text: str, operation: str) -> str:
        """A new version holding ``text`` (its checksum sent along); returns its number."""
        import google_crc32c

        data = text.encode("utf-8")
        payload = resources.SecretPayload(data=data, data_crc32c=int(google_crc32c.value(data)))
        request = service.AddSecretVersionRequest(parent=self.name, payload=payload)
        with self.translating(operation, "AddSecretVersion"):
            version = self._client.add_secret_version(request=request, retry=None, timeout=TIMEOUT)
        return version_number(str(version.name))

    def access(self, ref: str, operation: str) -> tuple[str, bytes] | None:
        """The number and data of version ``ref`` (a number, an alias or ``latest``), or
        ``None`` when there is no such secret or version."""
        request = service.AccessSecretVersionRequest(name=f"{self.name}/versions/{ref}")
        with self.translating(operation, "AccessSecretVersion", absent_ok=True):
            answer = self._client.access_secret_version(
                request=request, retry=None, timeout=TIMEOUT
            )
            return version_number(str(answer.name)), bytes(answer.payload.data)
        return None

    def state(self, number: str, operation: str) -> resources.SecretVersion | None:
        """Version ``number``'s metadata, or ``None`` when there is none."""
        request = service.GetSecretVersionRequest(name=f"{self.name}/versions/{number}")
        with self.translating(operation, "GetSecretVersion", absent_ok=True):
            return self._client.get_secret_version(request=request, retry=None, timeout=TIMEOUT)
        return None

    def enabled(self, operation: str) -> list[str]:
        """The numbers of the secret's ENABLED versions, newest first (few: retired
        versions are disabled); empty when there is no such secret."""
        request = service.ListSecretVersionsRequest(
            parent=self.name, filter="state:ENABLED", page_size=LIST_PAGE
        )
        numbers: list[int] = []
        with self.translating(operation, "ListSecretVersions", absent_ok=True):
            versions = self._client.list_secret_versions(
                request=request, retry=None, timeout=TIMEOUT
            )
            numbers = [int(version_number(str(v.name))) for v in versions]
        return [str(n) for n in sorted(numbers, reverse=True)]

    def disable(self, version: resources.SecretVersion, operation: str) -> resources.SecretVersion:
        """Disable ``version`` if its etag is still the one read; returns it as now."""
        request = service.DisableSecretVersionRequest(name=version.name, etag=version.etag)
        with self.translating(operation, "DisableSecretVersion"):
            return self._client.disable_secret_version(request=request, retry=None, timeout=TIMEOUT)

    def destroy(self, version: resources.SecretVersion, operation: str) -> None:
        request = service.DestroySecretVersionRequest(name=version.name, etag=version.etag)
        with self.translating(operation, "DestroySecretVersion"):
            self._client.destroy_secret_version(request=request, retry=None, timeout=TIMEOUT)

    # -- errors ------------------------------------------------------------------------

    def error(self, kind: type[ProviderError], operation: str, message: str) -> ProviderError:
        return kind(
            redact(message), provider=self._provider, operation=operation, reference=self.reference
        )

    @contextlib.contextmanager
    def translating(self, operation: str, call: str, *, absent_ok: bool = False) -> Iterator[None]:
        """Raise a Google API failure from the block as a ``ProviderError`` naming ``call``;
        with ``absent_ok`` a NOT_FOUND ends the block quietly instead."""
        try:
            yield
        except gexc.NotFound as exc:
            if absent_ok:
                return
            raise self._translated(exc, operation, call) from exc
        except gexc.GoogleAPICallError as exc:
            raise self._translated(exc, operation, call) from exc
        except auth_exceptions.DefaultCredentialsError as exc:
            message = f"{call} on {self.name}: no Application Default Credentials were found"
            raise self.error(ProviderAccessDenied, operation, message) from exc

    def _translated(self, exc: gexc.GoogleAPICallError, operation: str, call: str) -> ProviderError:
        kind, what = _kind(exc)
        if kind is ProviderConflict and call == "AccessSecretVersion":
            what = "found the version not enabled (disabled or destroyed)"
        code = getattr(exc.grpc_status_code, "name", None) or str(exc.code)
        detail = str(exc.message or "")[:300]
        message = f"{call} on {self.name} {what} ({code}: {detail})"
        return self.error(kind, operation, message)


def _kind(exc: gexc.GoogleAPICallError) -> tuple[type[ProviderError], str]:
    if isinstance(exc, gexc.FailedPrecondition | gexc.Aborted | gexc.AlreadyExists):
        return ProviderConflict, "failed a precondition (a stale etag: changed meanwhile)"
    if isinstance(exc, gexc.PermissionDenied | gexc.Unauthenticated):
        return ProviderAccessDenied, "was denied to the bridge's identity"
    if isinstance(exc, gexc.NotFound):
        return ProviderNotFound, "found no such resource (is the project right?)"
    if isinstance(exc, gexc.ResourceExhausted | gexc.TooManyRequests):
        return ProviderThrottled, "was throttled (quota exhausted)"
    if isinstance(exc, gexc.ServiceUnavailable | gexc.DeadlineExceeded | gexc.InternalServerError):
        return ProviderUnavailable, "could not be served"
    return ProviderError, "failed"


def version_number(name: str) -> str:
    """``projects/P/secrets/S/versions/N`` -> ``N``."""
    return name.rsplit("/", 1)[-1]


def payload_of(data: bytes, number: str) -> tuple[Stored | None, str | None]:
    """A version's data as a payload, or why it is none (never quoting the data)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    try:
        env = decode(text, "json")
    except ValueError as exc:  # PayloadFormatError
        return None, str(exc)
    return Stored.from_env(env, version=number), None
