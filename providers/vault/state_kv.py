"""The KV v2 calls the Vault state backend makes, and how their failures become
``StateError`` s: the only module of the state backend that touches hvac.

Three calls, each about one entry of the state folder: read the latest version (with its
KV version number, the compare-and-swap token), write a new version with ``cas`` (always:
a mount with ``cas_required = true`` needs nothing else; ``cas = 0`` creates), and list a
folder. Before the first of them the mount is checked once through
``sys/internal/ui/mounts/<mount>/<folder>`` (what ``bao kv`` itself asks, answered for any
token with a capability under the folder): a KV v1 mount would take a KV v2 write as a
plain key named ``data/...`` and answer 204, so it is refused by name instead. When that
check is itself denied (Vault answers 403 for a missing mount too) the calls go ahead and
speak for themselves.

Errors (all ``StateError``, chained to hvac's or requests' exception)::

    StateError              403 (naming the operation and the API path), a missing mount,
    │                       a KV v1 mount, a request Vault refused
    └── StateUnavailable    429, 5xx, sealed or standby, unreachable, timed out (retryable)

plus ``CasMismatch``, internal: a write whose ``cas`` lost, which the store maps onto
``StateConflict``, a retry or ``LeaseHeld`` as the entry demands. No message carries a
token: Vault's text is redacted by ``errors.classify``, and anything shaped like a Vault
token is masked again here. A login that fails (the connection's ``VaultAuthError``) is a
``StateError`` too, naming the call it was for: ``StateUnavailable`` when Vault could not
answer it, so the engine retries.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from hvac.exceptions import VaultError

from bridge.config.vault import VaultStateSettings
from bridge.errors import StateError
from providers.vault.client import VaultAuthError, VaultClients
from providers.vault.errors import Failure, classify

__all__ = ["CasMismatch", "Entry", "StateKv", "StateUnavailable", "check_name"]

_SEGMENT = re.compile(r"[A-Za-z0-9_.:@-]+")
_SDK_ERRORS = (VaultError, requests.exceptions.RequestException)
_TOKEN = re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{20,}")  # service, batch, recovery
_NO_ROUTE = "no handler for route"  # Vault's 404 for a path no mount serves
_CAPABILITY = {"read": "read", "write": "create/update", "list": "list", "check": "read"}


class StateUnavailable(StateError):
    """Vault throttled the request (429), failed or is sealed (5xx), or could not be reached."""

    retryable = True


class CasMismatch(Exception):
    """A write's ``cas`` did not match the entry's current version. Internal: the store
    always maps it."""


@dataclass(frozen=True)
class Entry:
    """The latest version of an entry.

    Attributes:
        version: Its KV version: the ``cas`` of the next write.
        data: Its fields; ``None`` when that version was deleted or destroyed.
    """

    version: int
    data: dict[str, Any] | None


def check_name(name: str, what: str, *, nested: bool = False) -> str:
    """``name`` if it can be part of an entry's path (``nested``: as several segments).

    Vault would fold ``.``, ``..`` and empty segments away, so two names could share an
    entry, or a consumer's ack escape the one path its Vault policy grants: refused.

    Raises:
        StateError: naming what ``name`` is and why it cannot be used.
    """
    parts = name.split("/") if nested else [name]
    if not all(_SEGMENT.fullmatch(p) and p not in (".", "..") for p in parts):
        allowed = "slash-separated segments of" if nested else "one segment of"
        raise StateError(
            f"{what} name {name!r} cannot be part of a Vault state path: it must be {allowed} "
            "A-Z a-z 0-9 _ . : @ -, none of them '.' or '..'"
        )
    return name


class StateKv:
    """The state folder of one KV v2 mount, through the connection's shared clients.

    Args:
        settings: The mount, the folder and the namespace.
        clients: The process's authenticated clients; every call goes through their
            ``call``, so a token that expired is replaced once.
    """

    def __init__(self, settings: VaultStateSettings, clients: VaultClients) -> None:
        self.mount = settings.mount
        self.folder = settings.path
        self.namespace = settings.namespace
        self._clients = clients
        self._checked = False
        self._check_lock = threading.Lock()

    def where(self, path: str) -> str:
        """An entry's name in messages: ``<mount>/<folder>/<path>`` (and the namespace)."""
        inside = f" in namespace {self.namespace!r}" if self.namespace else ""
        return f"Vault KV {self.mount}/{self.folder}/{path}{inside}"

    def read(self, path: str) -> Entry | None:
        """The latest version of ``<folder>/<path>``; ``None`` if it never existed (or its
        metadata was deleted).

        Raises:
            StateError: the read failed (``StateUnavailable`` when retryable).
        """
        full = f"{self.folder}/{path}"
        response = self._call(
            "read",
            f"{self.mount}/data/{full}",
            lambda client: client.secrets.kv.v2.read_secret_version(
                full, mount_point=self.mount, raise_on_deleted_version=False
            ),
            absent_ok=True,
        )
        if response is None:
            return None
        body = _dict(_dict(response).get("data"))
        metadata = _dict(body.get("metadata"))
        version = metadata.get("version")
        if not isinstance(version, int):
            raise StateError(f"{self.where(path)}: Vault's answer has no KV v2 version")
        # Deleted and destroyed versions read as ``data: null`` (a ``deletion_time`` alone
        # may lie in the future, on a mount with ``delete_version_after``).
        data = body.get("data")
        return Entry(version, data if isinstance(data, dict) else None)

    def write(self, path: str, data: dict[str, Any], cas: int) -> int:
        """Write ``data`` as the next version of ``<folder>/<path>``, only if its current
        version is ``cas`` (``0``: only if it does not exist).

        Returns:
            The version written.

        Raises:
            CasMismatch: the entry's version is not ``cas``; nothing was written.
            StateError: the write failed (``StateUnavailable`` when retryable).
        """
        full = f"{self.folder}/{path}"
        response = self._call(
            f"write (cas={cas})",
            f"{self.mount}/data/{full}",
            lambda client: client.secrets.kv.v2.create_or_update_secret(
                full, data, cas=cas, mount_point=self.mount
            ),
        )
        version = _dict(_dict(response).get("data")).get("version")
        if not isinstance(version, int):
            raise StateError(f"{self.where(path)}: Vault's answer to a write has no KV version")
        return version

    def list(self, folder: str) -> list[str]:
        """The entries directly in the state's ``folder`` (not subfolders); ``[]`` if none."""
        full = f"{self.folder}/{folder}"
        response = self._call(
            "list",
            f"{self.mount}/metadata/{full}",
            lambda client: client.secrets.kv.v2.list_secrets(full, mount_point=self.mount),
            absent_ok=True,
        )
        keys = _dict(_dict(response).get("data")).get("keys")
        listed = keys if isinstance(keys, list) else []
        return [k for k in listed if isinstance(k, str) and not k.endswith("/")]

    # -- inside ------------------------------------------------------------------------

    def _call(
        self, operation: str, api_path: str, call: Callable[[Any], Any], *, absent_ok: bool = False
    ) -> Any:
        """``call(client)`` on a checked mount; with ``absent_ok`` a plain 404 (no such
        entry, as opposed to no such mount) is ``None``."""
        self._check_mount()
        return self._send(operation, api_path, call, _entry_absent if absent_ok else None)

    def _send(
        self,
        operation: str,
        api_path: str,
        call: Callable[[Any], Any],
        nothing: Callable[[Failure], bool] | None = None,
    ) -> Any:
        """``call(client)`` through the connection (which logs in again once should the
        token itself be refused), its failures mapped; ``None`` for those ``nothing``
        says mean no answer rather than a failure."""
        try:
            return self._clients.call(self.namespace, f"state {operation} {api_path}", call)
        except VaultAuthError as exc:  # the login itself failed: still a state failure
            text = _one_line(str(exc))
            if exc.retryable:
                message = f"Vault {operation} of {api_path}: {text}; retry later"
                raise StateUnavailable(message) from exc
            raise StateError(f"Vault {operation} of {api_path}: {text}") from exc
        except _SDK_ERRORS as exc:
            failure = classify(exc)
            if nothing is not None and nothing(failure):
                return None
            raise self._map(failure, operation, api_path) from exc

    def _map(self, failure: Failure, operation: str, api_path: str) -> Exception:
        text = _one_line(failure.text)
        inside = f" in namespace {self.namespace!r}" if self.namespace else ""
        where = f"Vault {operation} of {api_path}{inside}"
        if failure.kind == "conflict":
            return CasMismatch(where)
        if failure.retryable:
            status = failure.status or "no answer"
            return StateUnavailable(f"{where} failed ({status}: {text}); retry later")
        if failure.kind == "denied":
            needed = _CAPABILITY.get(operation.split(" ")[0], operation)
            return StateError(
                f"{where} was denied ({failure.status or 403}): the token's policies must "
                f"grant {needed!r} on {api_path} ({text})"
            )
        if failure.kind == "not_found":
            return StateError(f"{where}: no KV v2 mount {self.mount!r}; check state.mount ({text})")
        return StateError(f"{where} failed ({failure.status or 'error'}: {text})")

    def _check_mount(self) -> None:
        """Refuse a mount that is not KV v2, once per store (see the module docstring)."""
        with self._check_lock:
            if self._checked:
                return
            api_path = f"sys/internal/ui/mounts/{self.mount}/{self.folder}"
            # Denied (or no such mount: Vault answers 403 for both): the calls will say.
            answer = self._send(
                "check of the mount",
                api_path,
                lambda c: c.adapter.get(f"/v1/{api_path}"),
                _unanswered,
            )
            if answer is None:
                self._checked = True
                return
            found = _dict(_dict(answer).get("data"))
            kind, version = found.get("type"), _dict(found.get("options")).get("version")
            if kind not in ("kv", "generic") or str(version) != "2":
                raise StateError(
                    f"Vault mount {self.mount!r} is {kind or 'unknown'} version "
                    f"{version or '1'}, not KV version 2: the Vault state needs a KV v2 mount"
                )
            self._checked = True


def _entry_absent(failure: Failure) -> bool:
    return failure.kind == "not_found" and _NO_ROUTE not in failure.text


def _unanswered(failure: Failure) -> bool:
    return failure.kind in ("denied", "not_found")


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _one_line(text: str) -> str:
    """Vault's message on one line, with anything shaped like a Vault token masked."""
    return " ".join(_TOKEN.sub("<redacted token>", text).split()) or "no message"
