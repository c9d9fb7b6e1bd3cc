"""The state of the fake Secret Manager: secrets, their versions, aliases and etags.

Pure bookkeeping behind one lock, no gRPC server: every public method takes and returns
the client library's own message types (``google.cloud.secretmanager_v1.types``) and
raises ``FakeStatus`` with the status code the real service documents:

* NOT_FOUND for a missing secret or version, ALREADY_EXISTS for a secret id taken;
* FAILED_PRECONDITION for an etag that does not match (``UpdateSecret``, ``DeleteSecret``,
  enable/disable/destroy; ``AddSecretVersion`` takes none), for accessing a version that is
  not ENABLED and for changing the state of a DESTROYED one;
* INVALID_ARGUMENT for malformed names, ids, labels, aliases, masks, payloads and checksums.

``latest`` names the most recently created version, whatever its state, as the API
reference says; accessing it while that version is disabled therefore fails.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import google_crc32c
from google.cloud.secretmanager_v1.types import resources, service

from providers.gcp.fake.rules import (
    FakeStatus,
    apply,
    check_aliases,
    check_annotations,
    check_labels,
    check_rotation,
    paged,
    secret_filter,
    state_filter,
)

State = resources.SecretVersion.State
_T = TypeVar("_T")

MAX_PAYLOAD_BYTES = 64 * 1024
UPDATABLE_FIELDS = frozenset(
    {
        "labels",
        "annotations",
        "version_aliases",
        "topics",
        "rotation",
        "expire_time",
        "ttl",
        "version_destroy_ttl",
    }
)
_PROJECT = re.compile(r"^projects/([^/]+)$")
_SECRET = re.compile(r"^projects/([^/]+)/secrets/([^/]+)$")
_VERSION = re.compile(r"^projects/([^/]+)/secrets/([^/]+)/versions/([^/]+)$")
_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


@dataclass
class _Version:
    number: int
    message: resources.SecretVersion
    data: bytes
    crc32c: int


@dataclass
class _Secret:
    message: resources.Secret
    versions: dict[int, _Version] = field(default_factory=dict)
    next_number: int = 1


def _now() -> datetime:
    return datetime.now(UTC)  # proto-plus turns it into a Timestamp


def _crc32c(data: bytes) -> int:
    return int(google_crc32c.value(data))


def _copy_secret(secret: resources.Secret) -> resources.Secret:
    copy: resources.Secret = resources.Secret.deserialize(resources.Secret.serialize(secret))
    return copy


def _copy_version(version: resources.SecretVersion) -> resources.SecretVersion:
    copy: resources.SecretVersion = resources.SecretVersion.deserialize(
        resources.SecretVersion.serialize(version)
    )
    return copy


class SecretStore:
    """Every secret of every project, safe to call from many server threads at once."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._secrets: dict[str, _Secret] = {}
        self._etags = itertools.count(1)

    # -- etags ------------------------------------------------------------------------

    def _etag(self) -> str:
        # Quoted like the real service's; unique per store so a stale one never matches.
        return f'"{time.time_ns():x}{next(self._etags):04x}"'

    @staticmethod
    def _check_etag(given: str, current: str, what: str) -> None:
        if given and given != current:
            raise FakeStatus("FAILED_PRECONDITION", f"The etag of {what} does not match.")

    # -- lookups ----------------------------------------------------------------------

    def _secret(self, name: str) -> _Secret:
        if not _SECRET.match(name):
            raise FakeStatus("INVALID_ARGUMENT", f"Invalid secret name {name!r}.")
        record = self._secrets.get(name)
        if record is None:
            raise FakeStatus("NOT_FOUND", f"Secret [{name}] not found or has no versions.")
        return record

    def _version(self, name: str) -> tuple[_Secret, _Version]:
        match = _VERSION.match(name)
        if not match:
            raise FakeStatus("INVALID_ARGUMENT", f"Invalid secret version name {name!r}.")
        record = self._secret(name.rsplit("/versions/", 1)[0])
        number = self._resolve(record, match.group(3))
        version = record.versions.get(number) if number is not None else None
        if version is None:
            raise FakeStatus("NOT_FOUND", f"Secret version [{name}] not found.")
        return record, version

    @staticmethod
    def _resolve(record: _Secret, ref: str) -> int | None:
        if ref == "latest":
            return max(record.versions, default=None)
        if ref.isdigit():
            return int(ref)
        alias = record.message.version_aliases.get(ref)
        return int(alias) if alias is not None else None

    # -- secrets ----------------------------------------------------------------------

    def create_secret(self, request: service.CreateSecretRequest) -> resources.Secret:
        """``CreateSecret``: a secret with no versions; replication is required."""
        if not _PROJECT.match(request.parent):
            raise FakeStatus("INVALID_ARGUMENT", f"Invalid parent {request.parent!r}.")
        if not _SECRET_ID.match(request.secret_id):
            raise FakeStatus("INVALID_ARGUMENT", f"Invalid secret id {request.secret_id!r}.")
        secret = _copy_secret(request.secret)
        if "replication" not in secret or not (
            "automatic" in secret.replication or "user_managed" in secret.replication
        ):
            raise FakeStatus("INVALID_ARGUMENT", "Secret.replication is required.")
        check_labels(secret.labels)
        check_annotations(secret.annotations)
        check_rotation(secret, _now())
        if secret.version_aliases:
            raise FakeStatus("INVALID_ARGUMENT", "A new secret has no versions to alias.")
        name = f"{request.parent}/secrets/{request.secret_id}"
        with self._lock:
            if name in self._secrets:
                raise FakeStatus("ALREADY_EXISTS", f"Secret [{name}] already exists.")
            secret.name = name
            secret.create_time = _now()  # type: ignore[assignment,unused-ignore]
            secret.etag = self._etag()
            self._secrets[name] = _Secret(message=secret)
            return _copy_secret(secret)

    def get_secret(self, request: service.GetSecretRequest) -> resources.Secret:
        """``GetSecret``."""
        with self._lock:
            return _copy_secret(self._secret(request.name).message)

    def update_secret(self, request: service.UpdateSecretRequest) -> resources.Secret:
        """``UpdateSecret``: the fields in ``update_mask``, if ``secret.etag`` still matches."""
        paths = list(request.update_mask.paths)
        if not paths:
            raise FakeStatus("INVALID_ARGUMENT", "update_mask is required.")
        bad = [path for path in paths if path not in UPDATABLE_FIELDS]
        if bad:
            raise FakeStatus("INVALID_ARGUMENT", f"Cannot update field(s) {', '.join(bad)}.")
        with self._lock:
            record = self._secret(request.secret.name)
            current = record.message
            self._check_etag(request.secret.etag, current.etag, f"secret {current.name}")
            updated = _copy_secret(current)
            for path in paths:
                apply(updated, request.secret, path)
            check_labels(updated.labels)
            check_annotations(updated.annotations)
            if "rotation" in paths:
                check_rotation(updated, _now())
            check_aliases(record.versions, updated.version_aliases)
            updated.etag = self._etag()
            record.message = updated
            return _copy_secret(updated)

    def delete_secret(self, request: service.DeleteSecretRequest) -> None:
        """``DeleteSecret``: the secret and all its versions, if ``etag`` still matches."""
        with self._lock:
            record = self._secret(request.name)
            self._check_etag(request.etag, record.message.etag, f"secret {request.name}")
            del self._secrets[request.name]

    def list_secrets(self, request: service.ListSecretsRequest) -> service.ListSecretsResponse:
        """``ListSecrets`` of a project, in creation order, filtered and paged."""
        if not _PROJECT.match(request.parent):
            raise FakeStatus("INVALID_ARGUMENT", f"Invalid parent {request.parent!r}.")
        matches = secret_filter(request.filter)
        with self._lock:
            found = [
                _copy_secret(record.message)
                for name, record in self._secrets.items()
                if name.startswith(request.parent + "/secrets/") and matches(record.message)
            ]
        page, token = paged(found, request.page_size, request.page_token)
        return service.ListSecretsResponse(
            secrets=page, next_page_token=token, total_size=len(found)
        )

    # -- versions ---------------------------------------------------------------------

    def add_secret_version(
        self, request: service.AddSecretVersionRequest
    ) -> resources.SecretVersion:
        """``AddSecretVersion``: a new ENABLED version; no etag; the checksum verified."""
        data = bytes(request.payload.data)
        if len(data) > MAX_PAYLOAD_BYTES:
            raise FakeStatus("INVALID_ARGUMENT", "Secret payload is larger than 64 KiB.")
        given = "data_crc32c" in request.payload
        if given and request.payload.data_crc32c != _crc32c(data):
            raise FakeStatus("INVALID_ARGUMENT", "Checksum mismatch: data_crc32c.")
        with self._lock:
            record = self._secret(request.parent)
            number = record.next_number
            record.next_number += 1
            message = resources.SecretVersion(
                name=f"{request.parent}/versions/{number}",
                create_time=_now(),
                state=State.ENABLED,
                etag=self._etag(),
                client_specified_payload_checksum=given,
            )
            record.versions[number] = _Version(number, message, data, _crc32c(data))
            return _copy_version(message)

    def get_secret_version(
        self, request: service.GetSecretVersionRequest
    ) -> resources.SecretVersion:
        """``GetSecretVersion`` by number, ``latest`` or alias; the name is canonical."""
        with self._lock:
            return _copy_version(self._version(request.name)[1].message)

    def access_secret_version(
        self, request: service.AccessSecretVersionRequest
    ) -> service.AccessSecretVersionResponse:
        """``AccessSecretVersion``: the payload of an ENABLED version, with its crc32c."""
        with self._lock:
            _, version = self._version(request.name)
            state = version.message.state
            if state != State.ENABLED:
                raise FakeStatus(
                    "FAILED_PRECONDITION",
                    f"Secret version [{version.message.name}] is in {State(state).name} state.",
                )
            payload = resources.SecretPayload(data=version.data, data_crc32c=version.crc32c)
            return service.AccessSecretVersionResponse(name=version.message.name, payload=payload)

    def list_secret_versions(
        self, request: service.ListSecretVersionsRequest
    ) -> service.ListSecretVersionsResponse:
        """``ListSecretVersions``, newest first; ``filter`` understands ``state:STATE``."""
        states = state_filter(request.filter)
        with self._lock:
            record = self._secret(request.parent)
            found = [
                _copy_version(version.message)
                for number, version in sorted(record.versions.items(), reverse=True)
                if states is None or version.message.state in states
            ]
        page, token = paged(found, request.page_size, request.page_token)
        return service.ListSecretVersionsResponse(
            versions=page, next_page_token=token, total_size=len(found)
        )

    def enable_secret_version(
        self, request: service.EnableSecretVersionRequest
    ) -> resources.SecretVersion:
        """``EnableSecretVersion``, if ``etag`` still matches."""
        return self._transition(request.name, request.etag, State.ENABLED)

    def disable_secret_version(
        self, request: service.DisableSecretVersionRequest
    ) -> resources.SecretVersion:
        """``DisableSecretVersion``, if ``etag`` still matches."""
        return self._transition(request.name, request.etag, State.DISABLED)

    def destroy_secret_version(
        self, request: service.DestroySecretVersionRequest
    ) -> resources.SecretVersion:
        """``DestroySecretVersion``: the payload is gone for good."""
        return self._transition(request.name, request.etag, State.DESTROYED)

    def _transition(self, name: str, etag: str, target: int) -> resources.SecretVersion:
        with self._lock:
            _, version = self._version(name)
            message = version.message
            self._check_etag(etag, message.etag, f"secret version {message.name}")
            if message.state == State.DESTROYED:
                raise FakeStatus(
                    "FAILED_PRECONDITION", f"Secret version [{message.name}] is destroyed."
                )
            message.state = State(target)
            if target == State.DESTROYED:
                message.destroy_time = _now()  # type: ignore[assignment,unused-ignore]
                version.data = b""
            # The etag changes even when the state does not (documented).
            message.etag = self._etag()
            return _copy_version(message)
