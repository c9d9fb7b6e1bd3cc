"""A stand-in for Google's OIDC token issuer, for the Pub/Sub push verifier's tests.

``OidcIssuer`` holds RSA-2048 keys with self-signed certificates and serves them as
Google does (``{kid: pem}`` with ``Cache-Control: public, max-age=3600``) on a free
loopback port, counting fetches; ``token`` signs RS256 ID tokens shaped like those a push
subscription with ``oidc_token`` sends. Nothing here prints a key or a token.
"""

from __future__ import annotations

import datetime
import enum
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

GOOGLE_ISSUER = "https://accounts.google.com"


class _Default(enum.Enum):
    KID = "the signing key's own kid"  # ``token(kid=...)`` not given


@dataclass(frozen=True)
class _Key:
    kid: str
    private_pem: bytes
    cert_pem: str

    @classmethod
    def new(cls) -> _Key:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(secrets.token_hex(20), private_pem, _self_signed(key))

    def signer(self, kid: str | None) -> crypt.RSASigner:
        signer: crypt.RSASigner = crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
            self.private_pem, key_id=kid
        )
        return signer


def _self_signed(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oidc-test-issuer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class OidcIssuer:
    """Google's signing certificates on ``certs_url`` and the tokens they verify.

    Attributes a test may set: ``cache_control`` (``None``: no header) and ``failure``
    (an HTTP status with a non-JSON body instead of the certificates).
    """

    def __init__(self) -> None:
        self._key = _Key.new()
        self._other = _Key.new()  # never served: what a forger signs with
        self._served: dict[str, str] = {self._key.kid: self._key.cert_pem}
        self._lock = threading.Lock()
        self.fetches = 0
        self.cache_control: str | None = "public, max-age=3600"
        self.failure: int | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> OidcIssuer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def certs_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/certs"

    @property
    def kid(self) -> str:
        """The current signing key's id."""
        return self._key.kid

    def stop(self) -> None:
        """Shut the server down; a fetch afterwards is refused (connection refused)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def rotate(self) -> str:
        """Serve a new key next to the old ones and sign with it from now on; its kid."""
        key = _Key.new()
        with self._lock:
            self._served[key.kid] = key.cert_pem
            self._key = key
        return key.kid

    def token(
        self,
        audience: str,
        email: str,
        /,
        *,
        kid: str | _Default | None = _Default.KID,
        alg: str | None = None,
        signer: str = "current",
        **overrides: Any,
    ) -> str:
        """An RS256 ID token as Pub/Sub sends it.

        Args:
            audience: The ``aud`` claim.
            email: The ``email`` claim (the push service account); ``email=`` in
                ``overrides`` replaces or removes it.
            kid: The header's ``kid`` (``None``: no kid); default the signing key's.
            alg: A header ``alg`` to claim instead of RS256 (still RSA-signed).
            signer: ``"current"`` (a served key) or ``"other"`` (a key never served).
            **overrides: Claims to set; a value of ``None`` removes the claim.
        """
        key = self._key if signer == "current" else self._other
        # A forgery names the kid of a key the verifier trusts.
        key_id = self._key.kid if isinstance(kid, _Default) else kid
        header = {"alg": alg} if alg else None
        encoded: bytes = jwt.encode(  # type: ignore[no-untyped-call]
            key.signer(key_id), self._claims(audience, email, overrides), header
        )
        return encoded.decode()

    def forged_token(self, audience: str, email: str, **overrides: Any) -> str:
        """A token naming the current kid but signed by a key that is not served."""
        return self.token(audience, email, signer="other", **overrides)

    @staticmethod
    def _claims(audience: str, email: str, overrides: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": GOOGLE_ISSUER,
            "aud": audience,
            "email": email,
            "email_verified": True,
            "sub": "1234567890",
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def _body(self) -> tuple[int, bytes, str | None]:
        with self._lock:
            self.fetches += 1
            if self.failure is not None:
                return self.failure, b"<html>oops</html>", None
            return 200, json.dumps(self._served).encode(), self.cache_control

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/certs":
                    self.send_error(404)
                    return
                status, body, cache_control = issuer._body()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                if cache_control is not None:
                    self.send_header("Cache-Control", cache_control)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output quiet

        return Handler
