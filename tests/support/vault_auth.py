"""What the Vault auth tests stand in for: a JWT issuer, the Kubernetes TokenReview API,
and a TLS server that requires client certificates.

* ``JwtSigner`` signs RS256 JWTs with a fresh RSA key (``cryptography``); its public key
  goes into a jwt auth mount's ``jwt_validation_pubkeys``.
* ``token_review_server`` answers ``POST /apis/authentication.k8s.io/v1/tokenreviews`` on
  127.0.0.1 as the Kubernetes API server does for OpenBao's kubernetes auth plugin: the
  plugin sends ``spec.token`` (and ``spec.audiences``, the token's own), with the token
  itself as bearer when no ``token_reviewer_jwt`` is configured, and checks that
  ``status.user`` (``system:serviceaccount:<ns>:<name>``, uid) matches the token's claims.
* ``bao_mtls_server``: a second dev server with an extra listener that requires a client
  certificate signed by a CA of the test's own (``tls_files``).
* ``Kv``, ``AppRole``, ``child_token``: what a test sets up with the root client to log
  in and read something (mounts of random names, so tests sharing a server never meet).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hvac
import hvac.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.vault import BAO, BaoServer, _free_port, _wait_ready

if TYPE_CHECKING:
    from providers.vault.client import VaultClients

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwtSigner:
    """RS256 JWTs signed by a key of its own."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(4)

    @property
    def public_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, claims: dict[str, Any], *, lifetime_s: int = 600) -> str:
        now = int(time.time())
        body = {"iat": now, "nbf": now - 5, "exp": now + lifetime_s, **claims}
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"


@dataclass(frozen=True)
class ServiceAccount:
    namespace: str
    name: str
    uid: str = field(default_factory=lambda: secrets.token_hex(8))

    def token(self, signer: JwtSigner, audience: str = "https://kubernetes.default.svc") -> str:
        """A projected service-account token, as the kubelet mounts it."""
        return signer.sign(
            {
                "iss": "https://kubernetes.default.svc",
                "sub": f"system:serviceaccount:{self.namespace}:{self.name}",
                "aud": [audience],
                "kubernetes.io": {
                    "namespace": self.namespace,
                    "serviceaccount": {"name": self.name, "uid": self.uid},
                },
            }
        )


@dataclass
class TokenReviews:
    """The fake API server's state: the tokens it knows and the reviews it answered."""

    url: str
    accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    reviews: list[dict[str, Any]] = field(default_factory=list)

    def issue(self, account: ServiceAccount, signer: JwtSigner) -> str:
        token = account.token(signer)
        self.accounts[token] = account
        return token


def _review(state: TokenReviews, bearer: str, request: dict[str, Any]) -> dict[str, Any]:
    spec = request.get("spec", {})
    account = state.accounts.get(spec.get("token", ""))
    status: dict[str, Any] = {"authenticated": False}
    # The plugin, without a reviewer JWT, authenticates with the token under review.
    if account is not None and bearer == spec.get("token"):
        status = {
            "authenticated": True,
            "user": {
                "username": f"system:serviceaccount:{account.namespace}:{account.name}",
                "uid": account.uid,
                "groups": ["system:serviceaccounts"],
            },
            "audiences": spec.get("audiences") or [],
        }
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": spec,
        "status": status,
    }


@contextlib.contextmanager
def token_review_server() -> Iterator[TokenReviews]:
    """A TokenReview endpoint on a free loopback port, stopped when the block exits."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if self.path != REVIEW_PATH:
                self._answer(404, {"kind": "Status", "status": "Failure", "code": 404})
                return
            state.reviews.append(request)
            self._answer(201, _review(state, bearer, request))

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the reviews are recorded instead

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = TokenReviews(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def tls_files(folder: Path) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def write(stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> Path:
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (folder / f"{stem}-key.pem").write_bytes(key_pem)
        (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return folder / f"{stem}.pem"

    def builder(subject: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder("langsmith-bridge test CA", ca_key)
        .issuer_name(name("langsmith-bridge test CA"))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca_key, ca)
    for stem, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = builder(stem, key).issuer_name(ca.subject)
        cert = cert.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if stem == "server":
            cert = cert.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        write(stem, key, cert.sign(ca_key, hashes.SHA256()))
    return TlsFiles(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server-key.pem",
        client_cert=folder / "client.pem",
        client_key=folder / "client-key.pem",
    )


@contextlib.contextmanager
def bao_mtls_server(folder: Path) -> Iterator[tuple[BaoServer, str, TlsFiles]]:
    """A dev server (plain listener, for the root client) plus a listener at the returned
    ``https://`` address that requires a client certificate signed by ``tls.ca``."""
    tls = tls_files(folder)
    plain, secure, cluster = _free_port(), _free_port(), _free_port()
    config = folder / "tls.hcl"
    config.write_text(
        f"""listener "tcp" {{
  address = "127.0.0.1:{secure}"
  cluster_address = "127.0.0.1:{cluster}"
  tls_cert_file = "{tls.server_cert}"
  tls_key_file = "{tls.server_key}"
  tls_client_ca_file = "{tls.ca}"
  tls_require_and_verify_client_cert = true
}}
""",
        encoding="utf-8",
    )
    token, log = f"root-{secrets.token_hex(8)}", folder / "bao-tls.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(BAO),
                "server",
                "-dev",
                f"-config={config}",
                "-dev-no-store-token",
                f"-dev-root-token-id={token}",
                f"-dev-listen-address=127.0.0.1:{plain}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},
        )
    server = BaoServer(f"http://127.0.0.1:{plain}", token, process)
    try:
        _wait_ready(server, log)
        yield server, f"https://127.0.0.1:{secure}", tls
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- what the tests log in to ------------------------------------------------------------


def _suffix() -> str:
    return secrets.token_hex(4)


class Kv:
    """A fresh KV v2 mount holding one secret, and a policy that may read it."""

    def __init__(self, bao: BaoServer, namespace: str | None = None) -> None:
        self.mount = f"kv-{_suffix()}"
        self.policy = f"read-{self.mount}"
        root = bao.root(namespace)
        root.sys.enable_secrets_engine("kv", path=self.mount, options={"version": "2"})
        root.secrets.kv.v2.create_or_update_secret(
            path="app", secret={"k": "v"}, mount_point=self.mount
        )
        rule = f'path "{self.mount}/data/*" {{ capabilities = ["read"] }}'
        root.sys.create_or_update_policy(self.policy, rule)

    def read(self, clients: VaultClients, namespace: str | None = None) -> str:
        def get(client: Any) -> str:
            answer = client.secrets.kv.v2.read_secret_version(
                path="app", mount_point=self.mount, raise_on_deleted_version=True
            )
            return str(answer["data"]["data"]["k"])

        return clients.call(namespace, f"kv read {self.mount}/app", get)


class AppRole:
    """An approle mount of its own with role ``bridge`` granted ``policy``."""

    def __init__(
        self, bao: BaoServer, policy: str, namespace: str | None = None, **role: Any
    ) -> None:
        self.mount = f"approle-{_suffix()}"
        self.root = bao.root(namespace)
        self.root.sys.enable_auth_method("approle", path=self.mount)
        self.root.auth.approle.create_or_update_approle(
            "bridge", token_policies=[policy], mount_point=self.mount, **role
        )
        answer = self.root.auth.approle.read_role_id("bridge", mount_point=self.mount)
        self.role_id = str(answer["data"]["role_id"])

    def secret_id(self) -> str:
        answer = self.root.auth.approle.generate_secret_id("bridge", mount_point=self.mount)
        return str(answer["data"]["secret_id"])

    def wrapped_secret_id(self) -> str:
        answer = self.root.auth.approle.generate_secret_id(
            "bridge", mount_point=self.mount, wrap_ttl="120s"
        )
        return str(answer["wrap_info"]["token"])

    def auth(self, secret_file: Path, **more: Any) -> dict[str, Any]:
        return {
            "method": "approle",
            "mount": self.mount,
            "role_id": self.role_id,
            "secret_id_file": str(secret_file),
            **more,
        }


def child_token(bao: BaoServer, policy: str, **options: Any) -> str:
    created = bao.root().auth.token.create(policies=[policy], **options)
    return str(created["auth"]["client_token"])


def alive(bao: BaoServer, token: str) -> bool:
    try:
        hvac.Client(url=bao.address, token=token).auth.token.lookup_self()
    except hvac.exceptions.Forbidden:
        return False
    return True
