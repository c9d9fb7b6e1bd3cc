"""Logging in to Vault / OpenBao by the methods platforms run, and renewing what it yields.

Each method turns what the deployment hands the bridge into a ``Token``:

* ``token``: a token in ``token_file`` or in the variable ``token_env`` (default
  ``VAULT_TOKEN``, then ``BAO_TOKEN``), looked up once (``auth/token/lookup-self``) to learn
  its TTL. A file is read again when the token is refused, so a Vault Agent sink that
  rewrites it is followed.
* ``approle``: ``role_id`` (or ``role_id_file``) and the secret id in ``secret_id_file``.
  With ``secret_id_wrapped`` the file holds a response-wrapping token: it is checked to
  have been made by ``auth/<mount>/role/<role>/secret-id`` (a token wrapping anything else
  is refused, as Vault Agent does) and unwrapped once; the secret id is kept in memory for
  later logins, since a wrapping token works only once.
* ``kubernetes`` and ``jwt``: the token file (the pod's service-account token, a CI or
  workload-identity token) sent with ``role``; read again at every login, as those files
  are rotated under the process.

Failures name the method and its mount: a file that cannot be read is a ``ConfigError``;
a login Vault refuses (or cannot answer) is a ``VaultAuthError``, retryable only when
Vault was unreachable, sealed or throttling. No token, secret id or JWT appears in either:
messages carry Vault's own error text, scrubbed of every credential this module has read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import hvac.exceptions
import requests

from bridge.config.vault import VaultAuth
from bridge.errors import BridgeError, ConfigError
from bridge.secrets import Secret
from providers.vault.errors import classify

MakeClient = Callable[[str], Any]
"""An hvac client of the auth namespace carrying the given token (``""``: none). hvac is
untyped; ``Any`` stays at this edge."""


class VaultAuthError(BridgeError):
    """Vault refused the bridge's login, or refused its token again right after one.

    Attributes:
        detail: The message without the method and mount.
        method: ``token``, ``approle``, ``kubernetes`` or ``jwt``.
        mount: The auth mount (``approle``, ``k8s-prod``, ...).
        namespace: The namespace the login happens in (``""``: the root).
    """

    def __init__(
        self, message: str, *, method: str, mount: str, namespace: str, retryable: bool = False
    ) -> None:
        super().__init__(f"{_where(method, mount, namespace)}: {message}")
        self.detail = message
        self.method = method
        self.mount = mount
        self.namespace = namespace
        self.retryable = retryable


def _where(method: str, mount: str, namespace: str) -> str:
    return f"vault auth {method} at auth/{mount}" + (
        f" (namespace {namespace})" if namespace else ""
    )


@dataclass(frozen=True)
class Token:
    """A Vault token and what the bridge knows of its life.

    Attributes:
        value: The token itself, masked.
        ttl: Seconds it had left at ``obtained`` (0: it never expires).
        increment: The TTL a renewal asks for (the login's lease, the token's creation TTL).
        renewable: Whether ``renew-self`` can extend it.
        capped: A renewal returned less than ``increment``: the token ends at its max TTL.
        obtained: ``time.monotonic()`` when ``ttl`` was read.
        from_login: The bridge created it by logging in (and revokes it when it closes).
    """

    value: Secret
    ttl: float
    increment: float
    renewable: bool
    obtained: float
    from_login: bool
    capped: bool = False

    def refresh_in(self, now: float) -> float | None:
        """Seconds until the token should be renewed (or replaced by a new login), which is
        when two thirds of its TTL have passed; ``None`` when nothing can be done for it."""
        if self.ttl <= 0 or not (self.from_login or (self.renewable and not self.capped)):
            return None
        return max(0.0, self.obtained + self.ttl * 2 / 3 - now)


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` is Vault refusing the token itself, or a policy (both answer 403
    ``permission denied``; ``lookup-self`` tells them apart)."""
    if isinstance(exc, hvac.exceptions.Forbidden | hvac.exceptions.Unauthorized):
        return True
    return isinstance(exc, hvac.exceptions.InvalidRequest) and "invalid token" in str(exc).lower()


class Authenticator:
    """Obtains and renews tokens as one ``[vault.auth]`` section says.

    Args:
        auth: The section.
        environ: Where ``token_env`` is looked up (the wiring's, never ``os.environ``).
        namespace: The namespace the login happens in (``""``: the root).
    """

    def __init__(self, auth: VaultAuth, environ: Mapping[str, str], namespace: str) -> None:
        self.auth = auth
        self.namespace = namespace
        self._environ = environ
        # Every credential read (the role id too: half an AppRole login), scrubbed from text.
        self._seen: set[str] = {auth.role_id} if auth.role_id else set()
        self._unwrapped: tuple[str, Secret] | None = None  # (wrapping token, secret id)

    @property
    def method(self) -> str:
        return self.auth.method

    @property
    def mount(self) -> str:
        return self.auth.mount_path

    @property
    def logs_in(self) -> bool:
        """Whether a new token can be had by logging in (not so for a given token)."""
        return self.auth.method != "token"

    def error(self, message: str, *, retryable: bool = False) -> VaultAuthError:
        return VaultAuthError(
            self.scrub(message),
            method=self.method,
            mount=self.mount,
            namespace=self.namespace,
            retryable=retryable,
        )

    def scrub(self, text: str) -> str:
        """``text`` without any credential this authenticator has read."""
        for value in sorted(self._seen, key=len, reverse=True):
            text = text.replace(value, "<redacted>")
        return text

    def login(self, make: MakeClient) -> Token:
        """A token, by the configured method.

        Raises:
            ConfigError: a credential file or variable is missing or empty.
            VaultAuthError: Vault refused the login or could not be reached.
        """
        auth = self.auth
        if auth.method == "token":
            return self._given_token(make)
        if auth.method == "approle":
            body = {"role_id": self._role_id(), "secret_id": self._secret_id(make)}
        else:
            assert auth.jwt_path is not None  # the model defaults it for kubernetes
            body = {"role": auth.role or "", "jwt": self._read(auth.jwt_path, "jwt_file")}
        try:
            response = make("").adapter.post(f"/v1/auth/{self.mount}/login", json=body)
            granted = response["auth"]
        except Exception as exc:
            raise self._failed("login", exc) from exc
        ttl = float(granted.get("lease_duration") or 0)
        return Token(
            value=Secret(self._remember(str(granted["client_token"]))),
            ttl=ttl,
            increment=ttl,
            renewable=bool(granted.get("renewable")),
            obtained=time.monotonic(),
            from_login=True,
        )

    def renew(self, token: Token, make: MakeClient) -> Token:
        """``token`` renewed by ``renew-self``; ``capped`` when Vault granted less than asked.

        Raises:
            VaultAuthError: Vault refused the renewal or could not be reached.
        """
        try:
            response = make(token.value.reveal()).auth.token.renew_self(
                increment=f"{round(token.increment)}s"
            )
            ttl = float(response["auth"]["lease_duration"])
        except Exception as exc:
            raise self._failed("renew-self", exc) from exc
        return replace(
            token,
            ttl=ttl,
            obtained=time.monotonic(),
            renewable=bool(response["auth"].get("renewable")),
            capped=ttl + 1 < token.increment,
        )

    def lookup(self, token: Token, make: MakeClient) -> bool:
        """Whether Vault still accepts ``token`` (``False`` only when it says it does not)."""
        try:
            make(token.value.reveal()).auth.token.lookup_self()
        except Exception as exc:
            return not refused(exc)
        return True

    def revoke(self, token: Token, make: MakeClient) -> None:
        """Revoke a token the bridge logged in for (a short-lived run leaves no lease)."""
        if token.from_login:
            make(token.value.reveal()).auth.token.revoke_self()

    def _given_token(self, make: MakeClient) -> Token:
        value, source = self._token_value()
        try:
            data = make(value).auth.token.lookup_self()["data"]
        except Exception as exc:
            if refused(exc):
                raise self.error(
                    f"the token from {source} was refused by lookup-self: it is expired, "
                    "revoked, or lacks the default policy"
                ) from exc
            raise self._failed("lookup-self", exc) from exc
        ttl = float(data.get("ttl") or 0)
        return Token(
            value=Secret(value),
            ttl=ttl,
            increment=float(data.get("creation_ttl") or ttl),
            renewable=bool(data.get("renewable")),
            obtained=time.monotonic(),
            from_login=False,
        )

    def _token_value(self) -> tuple[str, str]:
        auth = self.auth
        if auth.token_file is not None:
            return self._read(auth.token_file, "token_file"), str(auth.token_file)
        names = [auth.token_env]
        if "token_env" not in auth.model_fields_set:
            names.append("BAO_TOKEN")  # as the bao CLI reads it
        for name in names:
            value = self._environ.get(name, "").strip()
            if value:
                return self._remember(value), name
        raise self._config(f"token_env: {' or '.join(names)} is not set")

    def _role_id(self) -> str:
        if self.auth.role_id_file is not None:
            return self._read(self.auth.role_id_file, "role_id_file")
        return self._remember(self.auth.role_id or "")

    def _secret_id(self, make: MakeClient) -> str:
        assert self.auth.secret_id_file is not None  # the model requires it for approle
        content = self._read(self.auth.secret_id_file, "secret_id_file")
        if not self.auth.secret_id_wrapped:
            return content
        if self._unwrapped is not None and self._unwrapped[0] == content:
            return self._unwrapped[1].reveal()  # a wrapping token works once: keep its content
        self._check_wrapping(content, make)
        try:
            data = make(content).sys.unwrap()["data"]
            secret_id = self._remember(str(data["secret_id"]))
        except Exception as exc:
            raise self._failed(
                f"unwrapping the secret id in {self.auth.secret_id_file}", exc
            ) from exc
        self._unwrapped = (content, Secret(secret_id))
        return secret_id

    def _check_wrapping(self, wrapping_token: str, make: MakeClient) -> None:
        """Refuse a wrapping token Vault did not make for this mount's secret ids: whoever
        could swap the file could otherwise hand the bridge a secret id of their own."""
        try:
            info = make("").adapter.post("/v1/sys/wrapping/lookup", json={"token": wrapping_token})[
                "data"
            ]
        except Exception as exc:
            raise self._failed(
                f"looking up the wrapping token in {self.auth.secret_id_file}", exc
            ) from exc
        path = str(info.get("creation_path", ""))
        if not re.fullmatch(rf"auth/{re.escape(self.mount)}/role/[^/]+/secret-id", path):
            raise self.error(
                f"the wrapping token in {self.auth.secret_id_file} was made by {path!r}, not "
                f"by auth/{self.mount}/role/<role>/secret-id; refused"
            )

    def _read(self, path: Path, field: str) -> str:
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise self._config(f"{field}: cannot read {path}: {exc.strerror}") from None
        if not value:
            raise self._config(f"{field}: {path} is empty")
        return self._remember(value)

    def _remember(self, value: str) -> str:
        self._seen.add(value)
        return value

    def _config(self, message: str) -> ConfigError:
        return ConfigError(f"vault.auth ({self.method} at auth/{self.mount}): {message}")

    def _failed(self, doing: str, exc: BaseException) -> VaultAuthError:
        if isinstance(exc, requests.exceptions.SSLError):
            return self.error(f"{doing}: TLS failed (check ca_cert, client_cert): {exc}")
        if isinstance(exc, KeyError | TypeError):
            return self.error(f"{doing}: unexpected answer from Vault (no {exc})")
        failure = classify(exc)
        status = f" (HTTP {failure.status})" if failure.status else ""
        verb = "failed" if failure.retryable else "refused"
        return self.error(f"{doing} {verb}{status}: {failure.text}", retryable=failure.retryable)
