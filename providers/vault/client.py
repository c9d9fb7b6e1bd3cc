"""One login per process, and one hvac client per namespace on it, kept logged in.

``VaultClients`` (one per ``VaultConnection``, so one per Vault address per process) logs
in on first use, by the method ``[vault.auth]`` names (``providers.vault.auth``), in the
auth namespace (``auth.namespace``, else ``[vault] namespace``). Every namespace's client
carries that one token and shares one HTTP session: a target never causes a login.

Staying logged in:

* **Renewal** runs on one daemon thread per login, started only when the token has a TTL.
  It renews the token (``renew-self``) when two thirds of its TTL have passed, and logs in
  again instead when renewal is impossible (not renewable, or capped at its max TTL).
  A thread, not renewal on use, because ``serve`` and a long run can sit idle past a
  short TTL; a Lambda frozen between invocations just renews late, and ``call`` covers
  a token that died meanwhile. ``close`` stops the thread and revokes a token the bridge
  logged in for, so short-lived runs do not pile up leases.
* **Refused tokens.** Vault answers 403 ``permission denied`` both for a token that
  expired or was revoked and for a path the token's policies do not allow. ``call`` tells
  them apart with ``lookup-self``: a dead token logs in once more (re-reading the token
  file or variable for ``method = "token"``) and the call runs again; a policy denial is
  re-raised untouched, for the adapter to classify as any other hvac error.

The API for adapters::

    clients.call(ns, "kv read secret/apps/x", lambda c: c.secrets.kv.v2.read_secret_version(...))

runs the function with the namespace's authenticated client and returns its result. A
refused token is handled as above; if the fresh token is refused too, ``VaultAuthError``
(naming the method, the mount and ``what``) is raised. Everything else ``fn`` raises
propagates unchanged. ``client(namespace)`` still returns the client itself (logging in
on first use), for code that does not need the retry; its token is updated in place by
renewals and new logins, so holding on to it is safe.

TLS: ``ca_cert`` verifies the server, ``client_cert``/``client_key`` are presented to it;
hvac is handed them explicitly, so it never falls back to ``VAULT_CACERT``,
``VAULT_CLIENT_CERT`` or ``~/.vault-token`` from the process environment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import hvac
import requests

from bridge.config.vault import VaultSettings
from bridge.errors import ConfigError
from bridge.logs import event
from providers.vault.auth import Authenticator, Token, VaultAuthError, refused

__all__ = ["VaultAuthError", "VaultClients", "tls_arguments"]

T = TypeVar("T")
log = logging.getLogger("bridge.vault")

_RETRY_S = 5.0  # after a failed renewal, the next attempt (capped by the token's life)
_JOIN_S = 2.0


def tls_arguments(settings: VaultSettings) -> dict[str, Any]:
    """``verify`` and ``cert`` for hvac: the configured CA bundle (else the system's) and
    the client certificate pair (``False``: none, so hvac does not look for one itself).

    Raises:
        ConfigError: a configured file does not exist.
    """
    for name in ("ca_cert", "client_cert", "client_key"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"vault.{name}: {path} does not exist")
    cert = (
        (str(settings.client_cert), str(settings.client_key))
        if settings.client_cert and settings.client_key
        else False
    )
    return {"verify": str(settings.ca_cert) if settings.ca_cert else True, "cert": cert}


class VaultClients:
    """The authenticated hvac clients of one Vault server, one per namespace, one login.

    Args:
        settings: The ``[vault]`` section.
        environ: Where ``auth.token_env`` is looked up (the wiring's mapping).
    """

    def __init__(self, settings: VaultSettings, environ: Mapping[str, str]) -> None:
        self.settings = settings
        home = _namespace(settings.auth.namespace or settings.namespace)
        self._auth = Authenticator(settings.auth, environ, home)
        self._home = home
        self._state = threading.Lock()  # quick: the clients, the token, the generation
        self._login_lock = threading.Lock()  # slow: one login or renewal at a time
        self._session_lock = threading.Lock()
        self._session: requests.Session | None = None
        self._tls: dict[str, Any] = {}
        self._clients: dict[str, Any] = {}
        self._token: Token | None = None
        self._generation = 0  # bumped by every new token, so a re-login happens once
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def client(self, namespace: str | None = None) -> Any:
        """The authenticated client for ``namespace`` (default: the section's).

        Raises:
            ConfigError: no address, a missing TLS or credential file.
            VaultAuthError: the login was refused.
        """
        token, _ = self._current()
        key = _namespace(namespace or self.settings.namespace)
        with self._state:
            if key not in self._clients:
                token = self._token or token  # the newest, should a login have just happened
                self._clients[key] = self._hvac(key, token.value.reveal())
            return self._clients[key]

    def call(self, namespace: str | None, what: str, fn: Callable[[Any], T]) -> T:
        """``fn(client)`` for ``namespace``, logging in again once if the token is refused.

        Args:
            namespace: The target's namespace (``None``: the section's).
            what: The operation, for the error (``kv read secret/apps/x``); no secrets.
            fn: The SDK call, given the namespace's authenticated client.

        Raises:
            VaultAuthError: the login failed, or a fresh token was refused too.
            Exception: whatever ``fn`` raises otherwise, unchanged.
        """
        client = self.client(namespace)
        token, generation = self._current()
        try:
            return fn(client)
        except Exception as exc:
            # The token this call may have used: if Vault still takes it, a policy said no.
            if not refused(exc) or self._auth.lookup(token, self._make):
                raise
            event(log, "vault_token_refused", logging.WARNING, what=what, **self._fields())
        try:
            self._relogin(generation)
        except VaultAuthError as exc:
            raise self._auth.error(
                f"{what}: the token was refused, and logging in again failed: {exc.detail}",
                retryable=exc.retryable,
            ) from exc
        try:
            return fn(client)
        except Exception as exc:
            if refused(exc) and not self._alive():
                raise self._auth.error(f"{what}: refused a fresh token too") from exc
            raise

    def close(self) -> None:
        """Stop renewing, revoke a token the bridge logged in for, close the session. Safe
        to call twice; a later use logs in afresh."""
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(_JOIN_S)
        with self._login_lock:
            with self._state:
                token, self._token, self._clients = self._token, None, {}
            if token is not None and token.from_login and self._session is not None:
                try:
                    self._auth.revoke(token, self._make)
                except Exception as exc:  # it expires anyway; closing must not fail
                    event(log, "vault_revoke_failed", logging.DEBUG, error=self._text(exc))
            with self._session_lock:
                session, self._session = self._session, None
            self._stop = threading.Event()
        if session is not None:
            session.close()

    # -- logging in ----------------------------------------------------------------------

    def _current(self) -> tuple[Token, int]:
        with self._state:
            if self._token is not None:
                return self._token, self._generation
        with self._login_lock:
            if self._token is None:
                self._install(self._login(), new=True)
        with self._state:
            assert self._token is not None
            return self._token, self._generation

    def _login(self) -> Token:
        if not self.settings.address:
            raise ConfigError("vault: no address; set [vault] address or VAULT_ADDR")
        token = self._auth.login(self._make)
        event(log, "vault_login", ttl=token.ttl, renewable=token.renewable, **self._fields())
        return token

    def _relogin(self, stale: int) -> None:
        """A new token, unless another thread got one since generation ``stale``."""
        with self._login_lock:
            with self._state:
                if self._generation != stale or self._token is None:
                    return
                dead = self._token
            token = self._login()
            if token.value == dead.value:  # method = "token": its source still holds it
                raise self._auth.error("its source still holds the refused token")
            self._install(token, new=True)

    def _install(self, token: Token, *, new: bool) -> None:
        """Make ``token`` the one every client carries (called under ``_login_lock``)."""
        with self._state:
            self._token = token
            if new:
                self._generation += 1
                for client in self._clients.values():
                    client.token = token.value.reveal()
        if token.refresh_in(time.monotonic()) is not None and (
            self._renewer is None or not self._renewer.is_alive()
        ):
            self._renewer = threading.Thread(
                target=self._renew_loop, name="vault-token-renewer", daemon=True
            )
            self._renewer.start()

    def _alive(self) -> bool:
        with self._state:
            token = self._token
        return token is not None and self._auth.lookup(token, self._make)

    # -- renewal -------------------------------------------------------------------------

    def _renew_loop(self) -> None:
        stop = self._stop  # this login's: ``close`` replaces it for the next one
        delay = self._next_refresh()
        while delay is not None and not stop.wait(delay):
            try:
                self._refresh()
            except Exception as exc:
                fields = {"error": self._text(exc), **self._fields()}
                if not getattr(exc, "retryable", True):
                    # Refused for good: stop; ``call`` logs in again (or says why not).
                    event(log, "vault_renew_stopped", logging.WARNING, **fields)
                    return
                event(log, "vault_renew_failed", logging.WARNING, **fields)
                delay = self._retry_delay()
            else:
                delay = self._next_refresh()

    def _next_refresh(self) -> float | None:
        with self._state:
            token = self._token
        return None if token is None else token.refresh_in(time.monotonic())

    def _retry_delay(self) -> float:
        with self._state:
            token = self._token
        if token is None:
            return _RETRY_S
        left = token.obtained + token.ttl - time.monotonic()
        return max(0.5, min(_RETRY_S, left / 3))

    def _refresh(self) -> None:
        """Renew the token; log in again when it cannot be renewed (or re-read a given
        token's source, which a Vault Agent may have rewritten)."""
        with self._login_lock:
            with self._state:
                token = self._token
            if token is None:
                return
            if token.renewable and not token.capped:
                try:
                    renewed = self._auth.renew(token, self._make)
                except VaultAuthError as exc:
                    if exc.retryable:
                        raise
                else:
                    self._install(renewed, new=False)
                    level = logging.WARNING if renewed.capped else logging.DEBUG
                    event(
                        log,
                        "vault_token_renewed",
                        level,
                        ttl=renewed.ttl,
                        capped=renewed.capped,
                        **self._fields(),
                    )
                    return
            fresh = self._login()
            if fresh.value != token.value:
                self._install(fresh, new=True)

    # -- clients -------------------------------------------------------------------------

    def _make(self, token: str) -> Any:
        """A client of the auth namespace carrying ``token`` (for logins, renewals)."""
        return self._hvac(self._home, token)

    def _hvac(self, namespace: str, token: str) -> Any:
        with self._session_lock:
            if self._session is None:
                self._tls = tls_arguments(self.settings)
                self._session = requests.Session()
                # On the session too: hvac prefers a session's (default) verify to its own.
                self._session.verify = self._tls["verify"]
                self._session.cert = self._tls["cert"] or None
            session = self._session
        return hvac.Client(
            url=self.settings.address,
            token=token,  # never None: hvac would read VAULT_TOKEN or ~/.vault-token itself
            namespace=namespace or None,
            timeout=self.settings.timeout.total_seconds(),
            session=session,
            **self._tls,
        )

    def _fields(self) -> dict[str, Any]:
        return {"method": self._auth.method, "mount": self._auth.mount, "namespace": self._home}

    def _text(self, exc: BaseException) -> str:
        return self._auth.scrub(str(exc) or type(exc).__name__)


def _namespace(value: str | None) -> str:
    return (value or "").strip("/")
