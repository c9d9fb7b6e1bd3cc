"""Authentication of Pub/Sub push requests: the OIDC token Google attaches to each push.

A push subscription with ``oidc_token`` sends ``Authorization: Bearer <JWT>``, an ID token
Google signs (RS256) for the subscription's service account. ``PushVerifier.verify``
accepts a request only when all of these hold, in this order:

* the header is ``Bearer <token>`` and the token is at most 4096 characters (a cap, so a
  huge header costs nothing to refuse);
* the token is a well-formed JWT whose header names ``alg`` exactly ``RS256`` (never
  ``none`` or an HMAC the attacker picks) and a ``kid``;
* the ``kid`` is one of Google's current signing certificates (``certs_url``), and the
  signature, ``iat``/``exp`` (30 s of clock skew) and ``aud`` (the configured audience)
  check out (google-auth's ``jwt.decode`` does that cryptography);
* ``iss`` is Google's, ``email`` is the configured push service account (compared
  case-insensitively) and ``email_verified`` is true.

The certificates are fetched with ``requests`` and cached for the ``max-age`` Google
sends, clamped to [60 s, 24 h] (1 h without one). A ``kid`` not in the cache triggers one
refetch (Google rotates its keys), but at most once per 30 s, so forged tokens cannot
make the bridge hammer Google. A failure to fetch or parse the certificates raises
``ProviderUnavailable`` (retryable: the caller answers 503 and Pub/Sub retries); every
other failure raises ``RequestRefused``, whose message says why for the log and never
carries the token (google-auth's own messages may, so they are not chained).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from google.auth import crypt, jwt
from google.auth import exceptions as google_exceptions

from bridge.config.gcp import PubsubPushSettings
from bridge.errors import ProviderUnavailable, RequestRefused

MAX_TOKEN_CHARS = 4096
CLOCK_SKEW_SECONDS = 30
REFETCH_INTERVAL = 30.0  # the least time between two fetches an unknown kid may cause
MIN_MAX_AGE, DEFAULT_MAX_AGE, MAX_MAX_AGE = 60.0, 3600.0, 86400.0
ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
# google-auth's messages for what ``jwt.decode`` refuses, by prefix -> the reason logged.
_DECODE_REASONS = (
    ("Could not verify token signature", "bad signature"),
    ("Token expired", "token expired"),
    ("Token used too early", "token issued in the future"),
    ("Token has wrong audience", "wrong audience"),
    ("Token does not contain required claim", "iat or exp claim missing"),
    ("Certificate key type does not match", "signing key is not RSA"),
)


class PushVerifier:
    """Checks the OIDC token Pub/Sub attaches to a push.

    Args:
        settings: Who may push: the audience, the service account, where the certs are.
        timeout: Seconds to wait for the certificates endpoint.
        clock: Monotonic seconds, for the cache and the refetch limit (tests move it).
    """

    def __init__(
        self,
        settings: PubsubPushSettings,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._timeout = timeout
        self._clock = clock
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._certs: dict[str, str] = {}
        self._expires_at = -math.inf
        self._fetched_at = -math.inf

    def verify(self, authorization: str | None) -> str:
        """The verified caller's email. Raises RequestRefused / ProviderUnavailable."""
        token = _bearer_token(authorization)
        kid = _key_id(token)
        claims = _decode(token, self._cert_for(kid), self._settings.audience)
        return self._check_identity(claims)

    def _check_identity(self, claims: Mapping[str, Any]) -> str:
        if claims.get("iss") not in ISSUERS:
            raise RequestRefused("token not issued by Google (iss)")
        email = claims.get("email")
        if not isinstance(email, str) or email.casefold() != self._expected_email:
            raise RequestRefused("token is not the push service account's (email)")
        if claims.get("email_verified") is not True:
            raise RequestRefused("token's email is not verified (email_verified)")
        return email

    @property
    def _expected_email(self) -> str:
        return self._settings.service_account.casefold()

    def _cert_for(self, kid: str) -> dict[str, str]:
        """``{kid: pem}`` from the cache, refreshing it when stale or when ``kid`` is new
        (then at most once per ``REFETCH_INTERVAL``)."""
        with self._lock:
            now = self._clock()
            if now >= self._expires_at or (
                kid not in self._certs and now - self._fetched_at >= REFETCH_INTERVAL
            ):
                self._refresh(now)
            pem = self._certs.get(kid)
        if pem is None:
            raise RequestRefused(f"unknown signing key id {kid[:64]!r}")
        return {kid: pem}

    def _refresh(self, now: float) -> None:
        self._fetched_at = now  # a failed fetch counts too: it is no less load on Google
        certs, max_age = self._fetch()
        self._certs = certs
        self._expires_at = now + max_age

    def _fetch(self) -> tuple[dict[str, str], float]:
        try:
            response = self._session.get(
                self._settings.certs_url, timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise self._unavailable(
                f"cannot fetch the certificates ({type(exc).__name__})"
            ) from exc
        if response.status_code != 200:
            raise self._unavailable(f"certificates endpoint answered HTTP {response.status_code}")
        try:
            certs = _parse_certs(response.json())
        except ValueError as exc:
            raise self._unavailable(f"unusable certificates: {exc}") from exc
        return certs, _max_age(response.headers.get("Cache-Control"))

    def _unavailable(self, message: str) -> ProviderUnavailable:
        return ProviderUnavailable(
            message, provider="gcp", operation="verify push", reference=self._settings.certs_url
        )


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise RequestRefused("no Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise RequestRefused("Authorization is not 'Bearer <token>'")
    if len(token) > MAX_TOKEN_CHARS:
        raise RequestRefused(f"token longer than {MAX_TOKEN_CHARS} characters")
    if not _JWT_SHAPE.fullmatch(token):
        raise RequestRefused("malformed JWT (not three base64url segments)")
    return token


def _key_id(token: str) -> str:
    """The header's ``kid``, once its ``alg`` is known to be RS256."""
    try:
        header = jwt.decode_header(token)  # type: ignore[no-untyped-call]
    except (google_exceptions.GoogleAuthError, ValueError, TypeError):
        raise RequestRefused("malformed JWT (undecodable header or payload)") from None
    alg = header.get("alg")
    if alg != "RS256":
        raise RequestRefused(f"wrong alg {str(alg)[:16]!r} (only RS256)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise RequestRefused("JWT header has no kid")
    return kid


def _decode(token: str, certs: dict[str, str], audience: str) -> Mapping[str, Any]:
    """Signature, ``iat``/``exp`` and ``aud``, checked by google-auth."""
    try:
        claims = jwt.decode(  # type: ignore[no-untyped-call]
            token, certs=certs, audience=audience, clock_skew_in_seconds=CLOCK_SKEW_SECONDS
        )
    except (google_exceptions.GoogleAuthError, ValueError, TypeError) as exc:
        raise RequestRefused(_decode_reason(exc)) from None
    if not isinstance(claims, Mapping):
        raise RequestRefused("malformed JWT (claims are not an object)")
    return claims


def _decode_reason(exc: Exception) -> str:
    text = str(exc)
    for prefix, reason in _DECODE_REASONS:
        if text.startswith(prefix):
            return reason
    return f"token refused by google-auth ({type(exc).__name__})"


def _parse_certs(body: object) -> dict[str, str]:
    """``{kid: pem}``, each a certificate google-auth can load; else ValueError."""
    if not isinstance(body, dict) or not body:
        raise ValueError("not a non-empty JSON object")
    certs: dict[str, str] = {}
    for kid, pem in body.items():
        if not isinstance(kid, str) or not isinstance(pem, str):
            raise ValueError("a key id or certificate is not a string")
        try:
            crypt.RSAVerifier.from_string(pem)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError) as exc:
            raise ValueError(f"certificate {kid[:64]!r} does not load") from exc
        certs[kid] = pem
    return certs


def _max_age(cache_control: str | None) -> float:
    """Seconds to keep the certificates: ``max-age`` clamped to [60 s, 24 h], else 1 h."""
    match = _MAX_AGE.search(cache_control or "")
    if match is None:
        return DEFAULT_MAX_AGE
    return min(max(float(match.group(1)), MIN_MAX_AGE), MAX_MAX_AGE)
