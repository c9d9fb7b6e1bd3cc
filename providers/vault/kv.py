"""The KV v2 calls the Vault adapters make, translated: hvac answers in, plain records out,
failures raised as one ``KvError`` carrying the ``errors.Failure`` and the API path that
failed. It decides nothing; each user (the target, the state backend) maps a ``KvError``
onto its own error tree.

The calls go through the hvac client's adapter (``Adapter``, the port: ``get`` and
``post``), not ``client.secrets.kv.v2``: the adapter still carries the login, namespace
and TLS, but the body of each request is exactly what is listed here. hvac's own
``update_metadata`` always sends ``delete_version_after = "0s"``, which would reset an
adopted secret's setting, and its ``read_secret_version`` reads a 404 of a deleted version
differently from a 404 of a missing one depending on a flag.

Vault's answers that matter (checked against OpenBao):

* a missing secret (or version) is a 404 with an empty ``errors`` list; a missing mount is
  a 404 ``no handler for route`` for a token that may see it, a 403 for one that may not;
* a read through a KV v1 mount of ``<mount>/metadata/<path>`` is a plain 404 too, so only
  ``sys/internal/ui/mounts/<mount>/<path>`` (what the ``bao kv`` commands ask) tells the
  mount's type and version; it answers any token with some capability under the path;
* ``cas`` on a data write must equal the secret's ``current_version`` (``0``: no version
  yet), else a 400 ``check-and-set parameter did not match``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from providers.vault.errors import SDK_ERRORS, Failure, classify

T = TypeVar("T")


class Adapter(Protocol):
    """The HTTP calls made (an hvac ``Adapter``, or a test's fake): a ``dict`` for a 200
    with a JSON body, another object (the response) for a 204; a failure raises."""

    def get(self, url: str, **kwargs: Any) -> Any: ...

    def post(self, url: str, **kwargs: Any) -> Any: ...


Send = Callable[[str, Callable[[Adapter], Any]], Any]
"""Runs one call on an authenticated adapter: ``send(what, call)``. ``what`` names it for
the login's own errors (``read secret/metadata/apps/x``); the connection may log in again
once and repeat ``call`` when the token itself was refused."""


class Caller(Protocol):
    """Runs an SDK call on the connection's authenticated client (``VaultClients.call``)."""

    def call(self, namespace: str | None, what: str, fn: Callable[[Any], T]) -> T: ...


def sender(clients: Caller, namespace: str | None) -> Send:
    """``Send`` through ``clients.call``: the client of ``namespace`` (``None``: the
    connection's default), logged in again once should Vault refuse the token."""

    def send(what: str, call: Callable[[Adapter], Any]) -> Any:
        return clients.call(namespace, f"vault {what}", lambda client: call(client.adapter))

    return send


class KvError(Exception):
    """A KV call failed.

    Attributes:
        failure: What Vault (or the transport) said, classified and redacted.
        action: What was being done, for messages ("read the metadata of").
        api_path: The API path called, without ``/v1/`` (``secret/data/apps/x``).
        capability: The policy capabilities the call needs (``read``, ``create or update``).
    """

    def __init__(self, failure: Failure, action: str, api_path: str, capability: str) -> None:
        super().__init__(f"{action} {api_path}: {failure.text}")
        self.failure = failure
        self.action = action
        self.api_path = api_path
        self.capability = capability

    def describe(self) -> str:
        """The failure for a person: what was being done, where, and (403) what it needs."""
        text, kind = tidy(self.failure.text), self.failure.kind
        if kind == "denied":
            return (
                f"permission denied to {self.action} {self.api_path}: the token's policies "
                f"must grant {self.capability} on it ({text})"
            )
        if kind in ("throttled", "unavailable"):
            what = "rate-limited" if kind == "throttled" else "unavailable"
            return f"Vault {what} ({self.action} {self.api_path}): {text}"
        return f"cannot {self.action} {self.api_path}: {text}"


@dataclass(frozen=True)
class VersionInfo:
    """One version in a secret's metadata."""

    created_time: str
    deletion_time: str  # "" unless deleted (soft: ``undelete`` brings it back)
    destroyed: bool

    @property
    def live(self) -> bool:
        return not self.destroyed and not self.deletion_time


@dataclass(frozen=True)
class Metadata:
    """A secret's metadata: its versions, its ``custom_metadata`` and its settings."""

    current_version: int  # 0 when the secret has no version yet
    versions: Mapping[int, VersionInfo] = field(default_factory=dict)
    custom_metadata: Mapping[str, str] = field(default_factory=dict)
    max_versions: int = 0  # 0: the mount's setting
    cas_required: bool = False

    @property
    def live_current(self) -> int | None:
        """The current version when a read of it returns data (not deleted nor destroyed)."""
        info = self.versions.get(self.current_version)
        return self.current_version if info is not None and info.live else None


@dataclass(frozen=True)
class Entry:
    """One version's data."""

    version: int
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Mount:
    """The mount a path lies in, as ``sys/internal/ui/mounts`` reports it."""

    path: str  # without its trailing slash
    type: str  # "kv", "transit", ...
    version: str | None  # KV's ``options.version``: "1" or "2"

    @property
    def kv_v2(self) -> bool:
        return self.type == "kv" and self.version == "2"


class Kv:
    """The KV v2 calls on one mount.

    Args:
        send: Runs each call on the connection's authenticated adapter; it may raise what
            the login raises (a ``BridgeError``), which passes through unchanged.
        mount: The mount's path, without slashes around it.
    """

    def __init__(self, send: Send, mount: str) -> None:
        self._send = send
        self.mount = mount.strip("/")

    def api_path(self, kind: str, path: str) -> str:
        """``<mount>/<kind>/<path>``: ``kind`` is ``data``, ``metadata`` or ``destroy``."""
        return f"{self.mount}/{kind}/{path.strip('/')}"

    def metadata(self, path: str) -> Metadata | None:
        """The secret's metadata; ``None`` when there is no secret at ``path``."""
        api = self.api_path("metadata", path)
        answer = self._call("get", api, "read the metadata of", "read", absent_ok=True)
        return None if answer is None else _metadata(_data(answer, api, "metadata"), api)

    def read(self, path: str, version: int | None = None) -> Entry | None:
        """The data of ``version`` (default: the current one); ``None`` when there is no
        such version, or it is deleted or destroyed."""
        api = self.api_path("data", path)
        query = f"?version={version}" if version is not None else ""
        answer = self._call("get", api + query, "read", "read", absent_ok=True)
        if answer is None:
            return None
        body = _data(answer, api, "data")
        data, meta = body.get("data"), body.get("metadata")
        if data is None:
            return None  # deleted or destroyed
        if not isinstance(data, dict) or not isinstance(meta, dict):
            raise _shape(api, "data")
        return Entry(_int(meta.get("version"), api), data)

    def write(self, path: str, data: Mapping[str, Any], *, cas: int) -> int:
        """Write a new version if ``cas`` is the current version (``0``: none yet); returns
        the new version's number.

        Raises:
            KvError: ``failure.kind == "conflict"`` when ``cas`` no longer matches.
        """
        api = self.api_path("data", path)
        body = {"options": {"cas": cas}, "data": dict(data)}
        answer = self._call("post", api, "write", "create or update", json=body)
        return _int(_data(answer, api, "data").get("version"), api)

    def write_metadata(
        self,
        path: str,
        *,
        custom_metadata: Mapping[str, str] | None = None,
        max_versions: int | None = None,
    ) -> None:
        """Set what is given and nothing else (``custom_metadata`` replaces the whole map;
        creates the metadata of a secret that has none yet)."""
        body: dict[str, Any] = {}
        if custom_metadata is not None:
            body["custom_metadata"] = dict(custom_metadata)
        if max_versions is not None:
            body["max_versions"] = max_versions
        if body:
            api = self.api_path("metadata", path)
            self._call("post", api, "write the metadata of", "create or update", json=body)

    def destroy(self, path: str, versions: Iterable[int]) -> None:
        """Destroy the data of ``versions`` for good (an absent one is no error)."""
        api = self.api_path("destroy", path)
        body = {"versions": sorted(set(versions))}
        self._call("post", api, "destroy versions of", "update", json=body)

    def mount_of(self, path: str) -> Mount | None:
        """The mount ``<mount>/<path>`` lies in; ``None`` when Vault shows none to this
        token (no such mount, or no capability anywhere under the path)."""
        api = f"sys/internal/ui/mounts/{self.mount}/{path.strip('/')}"
        try:
            answer = self._call("get", api, "look up the mount of", "read")
        except KvError as exc:
            if exc.failure.kind == "denied":  # "preflight capability check returned 403"
                return None
            raise
        body = _data(answer, api, "mount")
        options = body.get("options")
        version = options.get("version") if isinstance(options, dict) else None
        return Mount(
            path=str(body.get("path", "")).strip("/"),
            type=str(body.get("type", "")),
            version=str(version) if version is not None else None,
        )

    def capabilities(self, api_paths: Iterable[str]) -> dict[str, frozenset[str]] | None:
        """This token's capabilities on each path (``sys/capabilities-self``); ``None``
        when the token may not ask (a policy without the default one)."""
        paths = list(api_paths)
        try:
            answer = self._call(
                "post", "sys/capabilities-self", "ask", "update", json={"paths": paths}
            )
        except KvError as exc:
            if exc.failure.kind == "denied":
                return None
            raise
        body = _data(answer, "sys/capabilities-self", "capabilities")
        found = {}
        for path in paths:
            held = body.get(path)
            found[path] = frozenset(str(c) for c in held) if isinstance(held, list) else frozenset()
        return found

    def mount_problem(self, path: str, found: Mount | None) -> str | None:
        """Why ``found`` (``mount_of(path)``) is not this KV v2 mount, or ``None`` when it
        is: the one clear error of a missing mount, a path in another one, a KV v1 mount."""
        mount, where = self.mount, f"{self.mount}/{path.strip('/')}"
        if found is None:
            return (
                f"no mount {mount!r} is visible to this token: it does not exist, or the "
                f"token's policies grant nothing under {where}"
            )
        if found.path != mount:
            rest = where[len(found.path) :].strip("/")
            return (
                f"{mount!r} is not the mount of {where}: it lies in mount {found.path!r} "
                f"(set mount = {found.path!r}, path = {rest!r})"
            )
        if found.type != "kv":
            return f"mount {mount!r} is a {found.type!r} engine, not KV version 2"
        if not found.kv_v2:
            return (
                f"mount {mount!r} is KV version {found.version or 1}; KV version 2 is needed "
                f"(upgrade it: bao kv enable-versioning {mount})"
            )
        return None

    def lacking(self, needs: Mapping[str, Iterable[str]]) -> list[str]:
        """``"<capability> on <api path>"`` for each capability in ``needs`` this token's
        policies do not grant; empty also when the token may not ask."""
        held = self.capabilities(needs)
        if held is None:
            return []
        return [
            f"{capability} on {path}"
            for path, capabilities in needs.items()
            for capability in sorted(capabilities)
            if not _grants(held.get(path, frozenset()), capability)
        ]

    def _call(
        self,
        method: str,
        api: str,
        action: str,
        capability: str,
        *,
        absent_ok: bool = False,
        **kwargs: Any,
    ) -> Any:
        """One request; ``None`` for a 404 that means "nothing there" when ``absent_ok``."""
        url = "/v1/" + quote(api, safe="/?=")
        what = f"{action} {api}"
        try:
            return self._send(what, lambda adapter: getattr(adapter, method)(url, **kwargs))
        except SDK_ERRORS as exc:
            failure = classify(exc)
            if absent_ok and failure.kind == "not_found" and not getattr(exc, "errors", None):
                return None
            raise KvError(failure, action, api.partition("?")[0], capability) from exc


def tidy(text: str) -> str:
    """Vault's multi-error text (``1 error occurred:\n\t* permission denied\n\n``) on one
    line (``permission denied``)."""
    text = re.sub(r"^\s*\d+ errors? occurred:\s*", "", text)
    return re.sub(r"(?:^|\s*\n)\s*\*\s*", "; ", text.strip()).strip("; ")


def _grants(held: frozenset[str], capability: str) -> bool:
    return "root" in held or ("deny" not in held and capability in held)


def _data(answer: Any, api: str, what: str) -> dict[str, Any]:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict):
        raise _shape(api, what)
    return data


def _metadata(data: Mapping[str, Any], api: str) -> Metadata:
    versions = data.get("versions")
    if "current_version" not in data or not isinstance(versions, dict):
        raise _shape(api, "metadata")
    custom = data.get("custom_metadata") or {}
    return Metadata(
        current_version=_int(data.get("current_version"), api),
        versions={
            _int(number, api): VersionInfo(
                created_time=str(info.get("created_time") or ""),
                deletion_time=str(info.get("deletion_time") or ""),
                destroyed=bool(info.get("destroyed")),
            )
            for number, info in versions.items()
            if isinstance(info, dict)
        },
        custom_metadata={str(k): str(v) for k, v in custom.items()}
        if isinstance(custom, dict)
        else {},
        max_versions=_int(data.get("max_versions") or 0, api),
        cas_required=bool(data.get("cas_required")),
    )


def _int(value: Any, api: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _shape(api, "version number") from None


def _shape(api: str, what: str) -> KvError:
    """An answer that is not KV v2's: what a KV v1 mount gives for a v2 path."""
    failure = Failure("invalid", None, f"the answer is not KV v2 {what}")
    return KvError(failure, "read", api, "read")
