"""The plugin's certificate and its TLS termination, done with Python's ``ssl`` (OpenSSL).

grpcio's bundled BoringSSL does not offer the ``ecdsa_secp521r1_sha512`` signature algorithm,
so the host never presents its P-521 AutoMTLS certificate to a grpcio TLS server (see
``shared/vault/PLUGIN-FACTS.md``). Instead every TLS hop is a byte relay on an asyncio loop
of its own, and grpcio speaks plaintext HTTP/2 to it over a unix socket in the plugin's
private 0700 directory:

* ``Relay.terminate``: host --TLS--> advertised socket --plain--> grpcio server;
* ``Relay.originate``: grpcio channel --plain--> private socket --TLS--> host's broker socket.

HTTP/2 multiplexes every stream over one connection, so a relay only copies bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import secrets
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("vault_plugin.tls")

HANDSHAKE_TIMEOUT_S = 10.0
CHUNK = 256 * 1024
VALIDITY = datetime.timedelta(days=365 * 30)  # the host's own is ~30 years; we live minutes


@dataclass(frozen=True)
class Identity:
    """A self-signed certificate (its own root) and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes = b""

    def __repr__(self) -> str:  # never show the key
        return f"Identity(cert={len(self.cert_pem)} bytes)"

    @property
    def der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.cert_pem).public_bytes(
            serialization.Encoding.DER
        )


def make_identity(
    curve: ec.EllipticCurve | None = None, organization: str = "langsmith-bridge"
) -> Identity:
    """A fresh self-signed ECDSA certificate for ``localhost``, usable as server and client.

    Shape as go-plugin's own (``mtls.go``): CA, SAN DNS ``localhost``, EKU serverAuth and
    clientAuth, valid from a little in the past. P-256 unless told (the host's Go TLS takes
    it; grpcio is never on this certificate's path).
    """
    key = ec.generate_private_key(curve or ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256() if isinstance(key.curve, ec.SECP256R1) else hashes.SHA512())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Identity(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _load_identity(context: ssl.SSLContext, identity: Identity, private_dir: Path) -> None:
    """``load_cert_chain`` wants files: write them 0600 in the private dir, load, unlink."""
    path = private_dir / f"id-{secrets.token_hex(4)}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(identity.key_pem + identity.cert_pem)
        context.load_cert_chain(path)
    finally:
        path.unlink(missing_ok=True)


def _base(
    purpose: ssl.Purpose, identity: Identity, peer_pem: bytes, private_dir: Path
) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose, cadata=peer_pem.decode("ascii"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    context.verify_mode = ssl.CERT_REQUIRED
    _load_identity(context, identity, private_dir)
    return context


def server_context(identity: Identity, client_ca_pem: bytes, private_dir: Path) -> ssl.SSLContext:
    """TLS >= 1.2, ALPN h2, a client certificate required and verified against ``client_ca_pem``."""
    return _base(ssl.Purpose.CLIENT_AUTH, identity, client_ca_pem, private_dir)


def client_context(identity: Identity, server_ca_pem: bytes, private_dir: Path) -> ssl.SSLContext:
    """Our certificate as the client's; only ``server_ca_pem`` trusted; hostname checked."""
    context = _base(ssl.Purpose.SERVER_AUTH, identity, server_ca_pem, private_dir)
    context.check_hostname = True
    return context


Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class Relay:
    """An asyncio loop on a daemon thread that runs any number of unix-socket byte relays."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.AbstractServer] = []
        self._thread = threading.Thread(target=self._run, name="tls-relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def terminate(self, listen: Path, context: ssl.SSLContext, target: Path) -> None:
        """Accept TLS on ``listen`` (0600) and relay each connection to plaintext ``target``."""

        def opener() -> Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
            return asyncio.open_unix_connection(target, limit=CHUNK)

        self._listen(listen, opener, context)

    def originate(
        self, listen: Path, context: ssl.SSLContext, target: str, server_hostname: str = "localhost"
    ) -> None:
        """Accept plaintext on ``listen`` (0600); relay each connection over TLS to ``target``."""

        def opener() -> Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
            return asyncio.open_unix_connection(
                target,
                ssl=context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
                limit=CHUNK,
            )

        self._listen(listen, opener, None)

    def _listen(self, listen: Path, opener: Opener, context: ssl.SSLContext | None) -> None:
        async def start() -> asyncio.AbstractServer:
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                # Cancelled only by ``stop``. Python 3.11's asyncio.streams calls
                # ``task.exception()`` on a cancelled handler task and logs the CancelledError
                # as an error, so the handler ends normally instead.
                with contextlib.suppress(asyncio.CancelledError):
                    await _relay(reader, writer, opener)

            return await asyncio.start_unix_server(
                handle,
                path=listen,
                ssl=context,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if context else None,
                limit=CHUNK,
            )

        server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=10)
        listen.chmod(0o600)
        self._servers.append(server)

    def stop(self) -> None:
        """Close the listeners (open connections die with the process)."""

        async def close() -> None:
            for server in self._servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for server in self._servers:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(server.wait_closed(), 1)

        if self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=2)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()


async def _relay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opener: Opener
) -> None:
    try:
        peer_reader, peer_writer = await opener()
    except (TimeoutError, OSError, ssl.SSLError) as exc:
        log.warning("relay: cannot reach the other side: %s", type(exc).__name__)
        writer.close()
        return
    try:
        await asyncio.gather(_pipe(reader, peer_writer), _pipe(peer_reader, writer))
    finally:
        for each in (writer, peer_writer):
            each.close()
        for each in (writer, peer_writer):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(each.wait_closed(), 1)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close if the transport can (plain unix can, TLS cannot:
    the whole TLS connection closes, with close_notify)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        else:
            writer.close()
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
        writer.close()


__all__ = ["Identity", "Relay", "client_context", "make_identity", "server_context"]
