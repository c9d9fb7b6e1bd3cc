"""The gRPC services the plugin serves to the host: go-plugin's (health, broker, controller,
stdio), OpenBao's ``pb.Backend``, the version and the multiplexing probe.

Every ``pb.Backend`` call answers; a router that raises is logged (redacted) and answered with
a generic internal error, never a crash of the process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator

import grpc
from google.protobuf import empty_pb2

import bridge
from bridge.secrets import redact
from vault_plugin import broker, translate
from vault_plugin.contract import ERR_INTERNAL, Router, RouterFactory
from vault_plugin.wire import (
    backend_pb2,
    backend_pb2_grpc,
    goplugin_pb2,
    goplugin_pb2_grpc,
    health_pb2,
    health_pb2_grpc,
    logical_pb2,
    logical_pb2_grpc,
    multiplexing_pb2,
    multiplexing_pb2_grpc,
)

log = logging.getLogger("vault_plugin")

BACKEND_TYPE_LOGICAL = 1  # logical.BackendType: a secrets engine
INTERNAL_MESSAGE = "internal error in the langsmith plugin; see the server log"
SERVING = health_pb2.HealthCheckResponse.SERVING


def _fail(what: str, exc: BaseException) -> str:
    """Log ``exc`` redacted (with its traceback) and return a message naming only its type."""
    log.error("%s failed: %s: %s", what, type(exc).__name__, redact(str(exc)), exc_info=exc)
    return f"{what} failed ({type(exc).__name__})"


class Health(health_pb2_grpc.HealthServicer):
    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        if request.service not in ("", "plugin"):
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=SERVING)


class Broker(goplugin_pb2_grpc.GRPCBrokerServicer):
    """Collects the host's ``ConnInfo`` offers; sends none (we broker nothing to the host)."""

    def __init__(self, offers: broker.Offers) -> None:
        self.offers = offers

    def StartStream(
        self, request_iterator: Iterable[goplugin_pb2.ConnInfo], context: grpc.ServicerContext
    ) -> Iterator[goplugin_pb2.ConnInfo]:
        for info in request_iterator:
            log.debug("broker offer %d on %s", info.service_id, info.network)
            self.offers.add(info)
        return
        yield  # a generator that never yields: the stream stays open until the host ends it


class Controller(goplugin_pb2_grpc.GRPCControllerServicer):
    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def Shutdown(
        self, request: goplugin_pb2.Empty, context: grpc.ServicerContext
    ) -> goplugin_pb2.Empty:
        log.info("shutdown requested by the host")
        self.stop.set()
        return goplugin_pb2.Empty()


class Stdio(goplugin_pb2_grpc.GRPCStdioServicer):
    """Kept open, sends nothing: we log on stderr, which the host reads directly."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def StreamStdio(
        self, request: empty_pb2.Empty, context: grpc.ServicerContext
    ) -> Iterator[goplugin_pb2.StdioData]:
        done = threading.Event()
        context.add_callback(done.set)
        while not done.wait(0.5) and not self.stop.is_set():
            pass
        return
        yield


class Version(logical_pb2_grpc.PluginVersionServicer):
    def Version(
        self, request: logical_pb2.Empty, context: grpc.ServicerContext
    ) -> logical_pb2.VersionReply:
        return logical_pb2.VersionReply(plugin_version=f"v{bridge.__version__}")


class Multiplexing(multiplexing_pb2_grpc.PluginMultiplexingServicer):
    def MultiplexingSupport(
        self, request: multiplexing_pb2.MultiplexingSupportRequest, context: grpc.ServicerContext
    ) -> multiplexing_pb2.MultiplexingSupportResponse:
        return multiplexing_pb2.MultiplexingSupportResponse(supported=False)


class Backend(backend_pb2_grpc.BackendServicer):
    """``pb.Backend``: Setup builds the router on the brokered host; the rest delegate to it."""

    def __init__(
        self, offers: broker.Offers, dial: broker.Dialer, make_router: RouterFactory
    ) -> None:
        self._offers = offers
        self._dial = dial
        self._make_router = make_router
        self._router: Router | None = None
        self._host: broker.BrokeredHost | None = None

    def Setup(
        self, request: backend_pb2.SetupArgs, context: grpc.ServicerContext
    ) -> backend_pb2.SetupReply:
        try:
            host = broker.connect(self._offers, request.broker_id, self._dial)
            self._router = self._make_router(host, request.backendUUID, dict(request.Config))
            self._host = host
        except Exception as exc:
            return backend_pb2.SetupReply(err=_fail("setup", exc))
        log.info("backend set up", extra={"backend_uuid": request.backendUUID})
        return backend_pb2.SetupReply()

    def _ready(self) -> Router:
        if self._router is None:
            raise RuntimeError("the backend was not set up")
        return self._router

    def HandleRequest(
        self, request: backend_pb2.HandleRequestArgs, context: grpc.ServicerContext
    ) -> backend_pb2.HandleRequestReply:
        try:
            plugin_request = translate.request_from_wire(request.request)
            response = self._ready().handle(plugin_request)
            return translate.reply_to_wire(response)
        except Exception as exc:
            _fail(f"{request.request.operation} request", exc)
            return translate.error_reply(ERR_INTERNAL, INTERNAL_MESSAGE)

    def SpecialPaths(
        self, request: backend_pb2.Empty, context: grpc.ServicerContext
    ) -> backend_pb2.SpecialPathsReply:
        try:
            return translate.paths_to_wire(self._ready().special_paths())
        except Exception as exc:
            _fail("special paths", exc)
            return backend_pb2.SpecialPathsReply()

    def HandleExistenceCheck(
        self, request: backend_pb2.HandleExistenceCheckArgs, context: grpc.ServicerContext
    ) -> backend_pb2.HandleExistenceCheckReply:
        try:
            found, exists = self._ready().existence(request.request.operation, request.request.path)
        except Exception as exc:
            _fail("existence check", exc)
            error = backend_pb2.ProtoError(err_type=ERR_INTERNAL, err_msg=INTERNAL_MESSAGE)
            return backend_pb2.HandleExistenceCheckReply(err=error)
        return backend_pb2.HandleExistenceCheckReply(check_found=found, exists=exists)

    def Cleanup(
        self, request: backend_pb2.Empty, context: grpc.ServicerContext
    ) -> backend_pb2.Empty:
        try:
            if self._router is not None:
                self._router.cleanup()
        except Exception as exc:
            _fail("cleanup", exc)
        if self._host is not None:
            self._host.close()
        return backend_pb2.Empty()

    def InvalidateKey(
        self, request: backend_pb2.InvalidateKeyArgs, context: grpc.ServicerContext
    ) -> backend_pb2.Empty:
        try:
            self._ready().invalidate(request.key)
        except Exception as exc:
            _fail("invalidate", exc)
        return backend_pb2.Empty()

    def Initialize(
        self, request: backend_pb2.InitializeArgs, context: grpc.ServicerContext
    ) -> backend_pb2.InitializeReply:
        return backend_pb2.InitializeReply()

    def Type(
        self, request: backend_pb2.Empty, context: grpc.ServicerContext
    ) -> backend_pb2.TypeReply:
        return backend_pb2.TypeReply(type=BACKEND_TYPE_LOGICAL)


def register(
    server: grpc.Server,
    stop: threading.Event,
    offers: broker.Offers,
    dial: broker.Dialer,
    make_router: RouterFactory,
) -> None:
    """Add every service the host dials to ``server``."""
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    goplugin_pb2_grpc.add_GRPCBrokerServicer_to_server(Broker(offers), server)
    goplugin_pb2_grpc.add_GRPCControllerServicer_to_server(Controller(stop), server)
    goplugin_pb2_grpc.add_GRPCStdioServicer_to_server(Stdio(stop), server)
    backend_pb2_grpc.add_BackendServicer_to_server(Backend(offers, dial, make_router), server)
    logical_pb2_grpc.add_PluginVersionServicer_to_server(Version(), server)
    multiplexing_pb2_grpc.add_PluginMultiplexingServicer_to_server(Multiplexing(), server)


__all__ = ["register"]
