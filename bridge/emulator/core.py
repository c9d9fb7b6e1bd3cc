"""``Emulator``: a local LangSmith API server for integration tests and the demo."""

from __future__ import annotations

import ipaddress
import threading
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

from bridge.emulator.api import Api
from bridge.emulator.clock import EmulatorClock
from bridge.emulator.control import Control
from bridge.emulator.faults import FaultInjector, FaultSwitches, RateLimiter
from bridge.emulator.records import Seed
from bridge.emulator.server import EmulatorHTTPServer
from bridge.emulator.state import EmulatorState
from bridge.emulator.switches import AuthSwitches, OrgLimits, Switch
from bridge.emulator.tracing import TraceStore


def _loopback(host: str) -> str:
    """``host`` if it is an IPv4 loopback address (``localhost`` maps to 127.0.0.1)."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or address.version != 4 or not address.is_loopback:
        raise ValueError(f"the emulator binds loopback only, not {host!r}")
    return host


class Emulator:
    """A LangSmith API emulator serving over real sockets from a daemon thread.

    One organization with two workspaces (two projects each), the system roles, and an
    org-scoped Organization Admin service key whose secret is in ``bootstrap``.

    Args:
        host: A loopback IPv4 address to bind.
        port: The port; 0 picks a free one (see ``url``).
        latency_ms: Delay added to every API request.
        fault_rate: Fraction of API requests answered with ``fault_status``.
        fault_status: The 5xx status of injected faults.
        throttle_rate: Fraction of API requests answered with 429 and ``Retry-After``.
        rate_limit: Requests per key (per IP without a key) per window; 0 disables it.
        rate_window_s: The rate-limit window in seconds (on the emulator clock).
        seed: Seed for the fault draws, for repeatable failure sequences.
        clock: The clock to use; a fresh real-time ``EmulatorClock`` by default.
        auth_cache_delay_s: Seconds a deleted, revoked or expired key is still accepted,
            and a new key still refused (see ``AuthSwitches``).
        last_used_granularity_s: ``last_used_at`` moves at most this often per key.
        max_service_key_expiry_days: The organization's cap on service-key expiry.
        max_pat_expiry_days: The organization's cap on PAT expiry.

    Raises:
        ValueError: A switch is out of range or ``host`` is not loopback.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        fault_rate: float = 0.0,
        fault_status: int = 503,
        throttle_rate: float = 0.0,
        rate_limit: int = 1000,
        rate_window_s: float = 10.0,
        seed: int | None = None,
        clock: EmulatorClock | None = None,
        auth_cache_delay_s: float = 0.0,
        last_used_granularity_s: float = 0.0,
        max_service_key_expiry_days: int | None = None,
        max_pat_expiry_days: int | None = None,
    ) -> None:
        self._address = (_loopback(host), port)
        self.clock = clock or EmulatorClock()
        self.auth = Switch(AuthSwitches(auth_cache_delay_s, last_used_granularity_s))
        self.org = Switch(OrgLimits(max_service_key_expiry_days, max_pat_expiry_days))
        world = Seed.generate(self.clock.now())
        self.state = EmulatorState(world, self.clock, self.auth)
        self.traces = TraceStore(world, self.clock)
        switches = FaultSwitches(latency_ms, fault_rate, fault_status, throttle_rate)
        self.faults = FaultInjector(switches, seed)
        self.limiter = RateLimiter(rate_limit, rate_window_s, self.clock)
        control = Control(
            self.state,
            self.clock,
            self.faults,
            self.reset,
            traces=self.traces,
            auth=self.auth,
            org=self.org,
        )
        self.api = Api(
            self.state,
            self.faults,
            self.limiter,
            control,
            traces=self.traces,
            org=self.org,
            clock=self.clock,
        )
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns ``self``. Idempotent."""
        if self._server is None:
            self._server = EmulatorHTTPServer(self._address, self.api, self.clock)
            self._thread = threading.Thread(
                target=self._server.serve_until_stopped,
                name=f"langsmith-emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and release the port. Idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.stop_serving()
        if thread is not None:
            thread.join(timeout=5)
        server.close_connections()
        server.server_close()

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:1984`` (no ``/api/v1`` suffix)."""
        return f"http://{self._address[0]}:{self.port}"

    @property
    def bootstrap(self) -> dict[str, Any]:
        """What a client needs to start: endpoint, admin key, org, workspace and role ids.

        ``admin_key`` is the secret of an org-scoped Organization Admin service key.
        """
        seed = self.state.seed
        return {
            "endpoint": self.url,
            "admin_key": seed.admin_key,
            "admin_key_id": seed.admin_key_id,
            "organization_id": seed.organization_id,
            "workspace_ids": [ws.id for ws in seed.workspaces],
            "workspaces": [{"id": ws.id, "name": ws.name} for ws in seed.workspaces],
            "roles": {role.name: role.id for role in seed.roles},
        }

    def set_faults(
        self,
        *,
        latency_ms: float | None = None,
        answer_delay_ms: float | None = None,
        fault_rate: float | None = None,
        fault_status: int | None = None,
        throttle_rate: float | None = None,
        retry_after_s: int | None = None,
        seed: int | None = None,
    ) -> FaultSwitches:
        """Change the given switches (the rest stay) and optionally reseed the draws.

        Raises:
            ValueError: A value is out of range; nothing changes then.
        """
        changes = {
            name: value
            for name, value in {
                "latency_ms": latency_ms,
                "answer_delay_ms": answer_delay_ms,
                "fault_rate": fault_rate,
                "fault_status": fault_status,
                "throttle_rate": throttle_rate,
                "retry_after_s": retry_after_s,
            }.items()
            if value is not None
        }
        return self.faults.configure(seed=seed, **changes)

    def set_auth(
        self,
        *,
        auth_cache_delay_s: float | None = None,
        last_used_granularity_s: float | None = None,
    ) -> AuthSwitches:
        """Change the given auth switches (the rest stay).

        Raises:
            ValueError: A value is negative; nothing changes then.
        """
        changes = {
            name: value
            for name, value in {
                "auth_cache_delay_s": auth_cache_delay_s,
                "last_used_granularity_s": last_used_granularity_s,
            }.items()
            if value is not None
        }
        return self.auth.configure(**changes)

    def set_org(self, **caps: int | None) -> OrgLimits:
        """Set expiry caps by name (``max_service_key_expiry_days``,
        ``max_pat_expiry_days``); ``None`` removes a cap, an absent name keeps it.

        Raises:
            ValueError: A cap below 1 day; nothing changes then.
            TypeError: An unknown cap name.
        """
        return self.org.configure(**caps)

    def run_count(self, **where: str | None) -> int:
        """Shorthand for ``self.traces.run_count(...)``: runs received, optionally by
        ``workspace_id``, ``session`` (project name or id) or ``key_id``."""
        return self.traces.run_count(**where)

    def reset(self) -> None:
        """Restore the bootstrap world: same admin key and ids, no other keys, projects or
        runs, the constructor's switches (faults, auth, expiry caps) and seed, fresh
        rate-limit windows. The clock is not reset.
        """
        self.state.reset()
        self.traces.reset()
        self.faults.reset()
        self.auth.reset()
        self.org.reset()
        self.limiter.reset()

    def advance(self, delta: timedelta | float) -> None:
        """Shorthand for ``self.clock.advance(delta)``."""
        self.clock.advance(delta)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"Emulator({where})"
