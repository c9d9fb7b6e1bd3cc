"""The plugin process: go-plugin's handshake, the gRPC server, and the process's lifecycle.

The host (OpenBao, through hashicorp/go-plugin) execs us with a magic cookie and its protocol
versions in the environment, reads one line from our stdout, and dials the socket it names:

    1|5|unix|<socket>|grpc|<our certificate: DER, unpadded standard base64>

With AutoMTLS (``PLUGIN_CLIENT_CERT`` set) that socket is a TLS relay (``tls.py``) in front of a
plaintext grpcio server on a second socket; both live in a 0700 directory of our own, removed on
exit. In metadata mode (no certificate) the grpcio socket is advertised directly (h2c).

Nothing but that line is ever written to stdout; logs are hclog JSON lines on stderr.
We exit on ``plugin.GRPCController/Shutdown``, on SIGTERM, and when our parent dies.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import grpc

from bridge.logs import RedactingFilter
from bridge.secrets import redact
from vault_plugin import broker, services, tls
from vault_plugin.contract import Host, Router, RouterFactory
from vault_plugin.wire import goplugin_pb2

BACKEND_COOKIE = ("VAULT_BACKEND_PLUGIN", "6669da05-b1c8-4f49-97d9-c8e5bed98e20")
DATABASE_COOKIE = "VAULT_DATABASE_PLUGIN"
PROTOCOL_VERSION = 5
CORE_PROTOCOL_VERSION = 1
PARENT_POLL_S = 0.5
STOP_GRACE_S = 2.0
HARD_EXIT_S = 5.0
DEFAULT_ROUTER = "vault_plugin.router:LangSmithRouter"

log = logging.getLogger("vault_plugin")


class HandshakeError(Exception):
    """The environment is not one we can serve; the message goes to stderr.

    ``direct``: we were run by hand (no cookie), so the line is plain text for a person; else
    the host ran us and gets an hclog error line it shows at ERROR.
    """

    def __init__(self, message: str, *, direct: bool = False) -> None:
        super().__init__(message)
        self.direct = direct


class HclogFormatter(logging.Formatter):
    """One hclog JSON object per line: ``@level``, ``@message``, ``@timestamp``, ``@module``."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        body: dict[str, object] = {
            "@level": {"WARNING": "warn", "CRITICAL": "error"}.get(
                record.levelname, record.levelname.lower()
            ),
            "@message": redact(record.getMessage()),
            "@timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "@module": record.name,
        }
        for key in ("backend_uuid", "handshake_s"):
            if hasattr(record, key):
                body[key] = getattr(record, key)
        if record.exc_text:
            body["exception"] = redact(record.exc_text)
        return json.dumps(body)


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(HclogFormatter())
    level = os.environ.get("LANGSMITH_PLUGIN_LOG_LEVEL", "info").upper()
    for name in ("vault_plugin", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level if name == "vault_plugin" else "WARNING")
        logger.propagate = False


def negotiate(env: Mapping[str, str]) -> bytes | None:
    """Check the cookie and protocol; return the host's certificate (PEM) or None (no TLS)."""
    if DATABASE_COOKIE in env:  # the host's type detection tries database plugins first
        raise HandshakeError("this is a secrets-engine plugin, not a database plugin")
    if env.get(BACKEND_COOKIE[0]) != BACKEND_COOKIE[1]:
        raise HandshakeError(
            "this binary is an OpenBao/Vault plugin; it is meant to be run by the server "
            "(bao plugin register ...), not directly",
            direct=True,
        )
    offered = [v.strip() for v in env.get("PLUGIN_PROTOCOL_VERSIONS", "").split(",")]
    if str(PROTOCOL_VERSION) not in offered:
        raise HandshakeError(
            f"the host offers plugin protocol versions {offered}; only {PROTOCOL_VERSION} is served"
        )
    if env.get("PLUGIN_MULTIPLEX_GRPC", "").lower() == "true":
        raise HandshakeError("broker multiplexing (PLUGIN_MULTIPLEX_GRPC) is not supported")
    cert = env.get("PLUGIN_CLIENT_CERT", "")
    if cert:
        return cert.encode("ascii")
    metadata = env.get("BAO_PLUGIN_METADATA_MODE", env.get("VAULT_PLUGIN_METADATA_MODE", ""))
    if metadata.lower() == "true":
        return None
    raise HandshakeError(
        "neither AutoMTLS (PLUGIN_CLIENT_CERT) nor metadata mode: the wrapped-token TLS "
        "bootstrap is not supported; enable AutoMTLS on the server"
    )


def _default_factory(host: Host, backend_uuid: str, config: Mapping[str, str]) -> Router:
    module, _, name = DEFAULT_ROUTER.partition(":")
    factory: RouterFactory = getattr(importlib.import_module(module), name)
    return factory(host, backend_uuid, config)


class Plugin:
    """One serving process: the private directory, the grpcio server and the TLS relays."""

    def __init__(self, host_cert: bytes | None, make_router: RouterFactory) -> None:
        base = os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or None
        self.parent = os.getppid()  # the host; checked from the very start
        self.dir = Path(tempfile.mkdtemp(prefix="lsb-plugin-", dir=base))  # 0700
        self.stop = threading.Event()
        self.offers = broker.Offers()
        self.host_cert = host_cert
        self.relay = tls.Relay() if host_cert is not None else None
        self.identity = tls.make_identity() if host_cert is not None else None
        self.plain = self.dir / "grpc.sock"
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="grpc"),
            options=broker.CHANNEL_OPTIONS[:2],
        )
        services.register(self.server, self.stop, self.offers, self._dial, make_router)
        self._dials = 0
        self._lock = threading.Lock()

    def start(self) -> str:
        """Serve, and return the handshake line."""
        if not self.server.add_insecure_port(f"unix:{self.plain}"):
            raise OSError("grpcio could not bind its private socket")
        self.server.start()
        self.plain.chmod(0o600)
        if self.relay is None or self.identity is None or self.host_cert is None:
            return f"{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|unix|{self.plain}|grpc|"
        advertised = self.dir / "plugin.sock"
        context = tls.server_context(self.identity, self.host_cert, self.dir)
        self.relay.terminate(advertised, context, self.plain)
        cert = base64.b64encode(self.identity.der).decode("ascii").rstrip("=")
        return f"{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|unix|{advertised}|grpc|{cert}"

    def _dial(self, info: goplugin_pb2.ConnInfo) -> Path:
        """A plaintext socket that reaches the host's offer (through a TLS relay with AutoMTLS)."""
        if self.relay is None or self.identity is None or self.host_cert is None:
            return Path(info.address)
        with self._lock:
            self._dials += 1
            listen = self.dir / f"broker-{info.service_id}-{self._dials}.sock"
        context = tls.client_context(self.identity, self.host_cert, self.dir)
        self.relay.originate(listen, context, info.address)
        return listen

    def wait(self) -> None:
        """Block until Shutdown, SIGTERM or the parent's death.

        Not stdin EOF: go-plugin hands us the host's own stdin, which for a server under a
        service manager (or ``bao server`` started with stdin from /dev/null) is at EOF at once.
        """
        while not self.stop.wait(PARENT_POLL_S):
            if os.getppid() != self.parent:
                log.info("the host process is gone; exiting")
                self.stop.set()

    def close(self) -> None:
        self.server.stop(STOP_GRACE_S).wait(STOP_GRACE_S + 1)
        if self.relay is not None:
            self.relay.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _install_signals(stop: threading.Event) -> None:
    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        # As go-plugin's servers do: a terminal's ^C reaches the whole process group, and
        # the host decides when its plugins stop.
        log.debug("interrupt ignored; the host stops its plugins")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_interrupt)


def _hard_exit_later(code: int) -> None:
    """If some thread still holds the interpreter after we are done, leave anyway."""
    timer = threading.Timer(HARD_EXIT_S, os._exit, args=(code,))
    timer.daemon = True
    timer.start()


def main(
    argv: Sequence[str] | None = None,
    make_router: RouterFactory | None = None,
    *,
    hard_exit: bool = True,
) -> int:
    """Serve one plugin process; return the exit code (0 after a clean stop, 1 on refusal).

    ``make_router`` defaults to ``vault_plugin.router:LangSmithRouter``, imported at ``Setup``.
    With ``hard_exit`` the process leaves ``HARD_EXIT_S`` after a stop even if a thread is stuck
    (never set it False in the plugin executable; only in-process tests need that).
    """
    del argv  # go-plugin passes only the path; nothing to parse
    started = datetime.now(UTC)
    configure_logging()
    try:
        host_cert = negotiate(os.environ)
    except HandshakeError as exc:
        if exc.direct:
            sys.stderr.write(f"langsmith plugin: {exc}\n")
            sys.stderr.flush()
        else:
            log.error("langsmith plugin: %s", exc)
        return 1
    plugin = Plugin(host_cert, make_router or _default_factory)
    code = 0
    try:
        _install_signals(plugin.stop)
        line = plugin.start()
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        elapsed = (datetime.now(UTC) - started).total_seconds()
        log.info("plugin serving (tls=%s)", host_cert is not None, extra={"handshake_s": elapsed})
        plugin.wait()
        log.info("plugin stopping")
    except Exception as exc:
        log.error("plugin failed: %s: %s", type(exc).__name__, redact(str(exc)), exc_info=exc)
        code = 1
    finally:
        plugin.close()
        if hard_exit:
            _hard_exit_later(code)
    return code


__all__ = ["HandshakeError", "main", "negotiate"]
