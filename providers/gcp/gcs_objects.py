"""The GCS calls the state backend makes, and how their failures become ``StateError`` s:
the only module of the state backend that touches ``google.cloud.storage``.

Three calls, each about one object under the state prefix: read (the bytes and the
object's generation, the compare-and-swap token), write with ``if_generation_match``
(always: ``0`` creates, so nothing is ever overwritten blindly), and list names. Deletes
are never made: fake-gcs-server ignores ``ifGenerationMatch`` on deletes (see
``tests/integration/test_gcs_state.py``), and a conditional overwrite serves every need.
The client library's own retries are off (``retry=None``): retries belong to the engine,
and a resent conditional write that lost its response would come back as a 412.

Errors (all ``StateError``, chained to the library's exception)::

    StateError              403 (naming the operation and the object), 404 on the bucket,
    │                       any other refusal
    └── StateUnavailable    429, 5xx, unreachable, timed out, credentials not to be had
                            (retryable)

plus ``GenerationMismatch``, internal: a write whose precondition failed (412), which the
store maps onto ``StateConflict``, a retry or ``LeaseHeld``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import google.cloud.storage as storage
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials

from bridge.config.gcp import GcsStateSettings
from bridge.errors import StateError
from providers.gcp.credentials import credentials

__all__ = ["GcsObjects", "GenerationMismatch", "StateUnavailable", "Stored", "check_name", "client"]

TIMEOUT_S = 10.0
_SEGMENT = re.compile(r"[A-Za-z0-9_.:@-]+")
_UNAVAILABLE = (
    gexc.TooManyRequests,
    gexc.ServerError,
    gexc.RetryError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    auth_exc.TransportError,
    auth_exc.RefreshError,
    auth_exc.DefaultCredentialsError,
    ConnectionError,
    TimeoutError,
)


class StateUnavailable(StateError):
    """GCS throttled the request (429), failed (5xx), or could not be reached."""

    retryable = True


class GenerationMismatch(Exception):
    """A write's ``if_generation_match`` did not hold (412). Internal: the store maps it."""


@dataclass(frozen=True)
class Stored:
    """An object as read: its bytes and its generation (the next write's precondition)."""

    generation: int
    data: bytes


def client(settings: GcsStateSettings) -> Any:
    """A ``storage.Client``: on ``endpoint`` when one is set (tests, emulators), anonymous
    there unless a service account is impersonated; Application Default Credentials
    otherwise (the metadata server on Cloud Run and GKE, ``GOOGLE_APPLICATION_CREDENTIALS``),
    or the ``impersonate_service_account`` they act as.

    Raises:
        StateUnavailable: no default credentials could be found or fetched.
    """
    account = settings.impersonate_service_account
    try:
        if settings.endpoint:
            anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
            return storage.Client(
                project=settings.project or "<none>",
                credentials=credentials(account) if account else anonymous,
                client_options={"api_endpoint": settings.endpoint},
            )
        if account:
            return storage.Client(project=settings.project, credentials=credentials(account))
        return storage.Client(project=settings.project)
    except _UNAVAILABLE as exc:
        raise StateUnavailable(f"no Google credentials for the GCS state: {exc}") from exc


def check_name(name: str, what: str, *, nested: bool = False) -> str:
    """``name`` if it can be part of an object name (``nested``: as several segments).

    ``.``, ``..`` and empty segments would let two names share an object, or a consumer's
    ack escape the one object its IAM condition grants: refused.

    Raises:
        StateError: naming what ``name`` is and why it cannot be used.
    """
    parts = name.split("/") if nested else [name]
    if not all(_SEGMENT.fullmatch(p) and p not in (".", "..") for p in parts):
        allowed = "slash-separated segments of" if nested else "one segment of"
        raise StateError(
            f"{what} name {name!r} cannot be part of a GCS state object name: it must be "
            f"{allowed} A-Z a-z 0-9 _ . : @ -, none of them '.' or '..'"
        )
    return name


class GcsObjects:
    """The objects under the state prefix of one bucket, through a shared client.

    Args:
        settings: The bucket and the prefix.
        storage_client: A ``google.cloud.storage.Client`` (the connection's; not closed here).
    """

    def __init__(self, settings: GcsStateSettings, storage_client: Any) -> None:
        self.bucket_name = settings.bucket
        self.prefix = settings.prefix.strip("/")
        self._bucket: Any = storage_client.bucket(settings.bucket)

    def name(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def where(self, path: str) -> str:
        """The object's ``gs://`` address, for messages."""
        return f"gs://{self.bucket_name}/{self.name(path)}"

    def read(self, path: str) -> Stored | None:
        """The object at ``path`` under the prefix, or ``None`` if there is none."""
        blob = self._bucket.blob(self.name(path))
        with self._mapped("read", path):
            try:
                data = blob.download_as_bytes(retry=None, timeout=TIMEOUT_S)
            except gexc.NotFound:
                return None
        return Stored(int(blob.generation), bytes(data))

    def write(self, path: str, data: bytes, *, generation: int) -> int:
        """Write ``data`` if the object's generation is still ``generation`` (``0``: if it
        does not exist). Returns the new generation.

        Raises:
            GenerationMismatch: the precondition failed.
        """
        blob = self._bucket.blob(self.name(path))
        with self._mapped("write", path):
            try:
                blob.upload_from_string(
                    data,
                    content_type="application/json",
                    if_generation_match=generation,
                    retry=None,
                    timeout=TIMEOUT_S,
                )
            except gexc.PreconditionFailed as exc:
                raise GenerationMismatch(self.where(path)) from exc
        return int(blob.generation)

    def list(self, folder: str) -> list[str]:
        """The names (relative to ``folder``, without ``.json``) of the objects in it."""
        start = self.name(folder) + "/"
        with self._mapped("list", folder + "/"):
            blobs = self._bucket.list_blobs(prefix=start, retry=None, timeout=TIMEOUT_S)
            names = [str(blob.name) for blob in blobs]
        return [n[len(start) : -len(".json")] for n in names if n.endswith(".json")]

    @contextlib.contextmanager
    def _mapped(self, operation: str, path: str) -> Iterator[None]:
        """Turn the library's failures of ``operation`` on ``path`` into ``StateError`` s.
        The messages name the object and the status, never a body (it may echo content)."""
        where = self.where(path)
        try:
            yield
        except GenerationMismatch:
            raise
        except gexc.Forbidden as exc:
            raise StateError(
                f"GCS refused to {operation} {where} (403): grant the bridge's service "
                "account access to it"
            ) from exc
        except gexc.NotFound as exc:
            raise StateError(
                f"GCS cannot {operation} {where} (404): does bucket {self.bucket_name!r} exist?"
            ) from exc
        except _UNAVAILABLE as exc:
            raise StateUnavailable(
                f"GCS could not {operation} {where} ({_status(exc)}); retry later"
            ) from exc
        except gexc.GoogleAPICallError as exc:
            raise StateError(f"GCS refused to {operation} {where} ({_status(exc)})") from exc


def _status(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return f"HTTP {int(code)}" if isinstance(code, int) else type(exc).__name__
