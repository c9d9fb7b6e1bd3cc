"""The ``/_emulator/`` test hooks: clock, switches, key and run inspection, and reset.

``GET``/``POST`` ``/_emulator/clock``, ``/_emulator/faults``, ``/_emulator/auth`` (auth
cache delay, ``last_used_at`` granularity) and ``/_emulator/org`` (expiry caps);
``GET /_emulator/keys`` and ``GET /_emulator/runs`` (runs received); and
``POST /_emulator/reset``.

They need no key, answer only loopback clients, and are never delayed, failed or
rate-limited by the switches they control. Nothing they return carries a secret.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bridge.emulator.clock import EmulatorClock, isoformat
from bridge.emulator.faults import FaultInjector
from bridge.emulator.models import parse_body
from bridge.emulator.responses import ApiError, Request, Response, detail, validation_error
from bridge.emulator.state import EmulatorState
from bridge.emulator.switches import AuthSwitches, OrgLimits, Switch
from bridge.emulator.tracing import TraceStore


class ClockChange(BaseModel):
    """Body of ``POST /_emulator/clock``: exactly one of the two fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    advance_seconds: float | None = None
    now: datetime | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ClockChange:
        if (self.advance_seconds is None) == (self.now is None):
            raise ValueError("give exactly one of advance_seconds and now")
        return self


class FaultChange(BaseModel):
    """Body of ``POST /_emulator/faults``: the switches to change, plus an optional seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float | None = Field(default=None, ge=0)
    answer_delay_ms: float | None = Field(default=None, ge=0)
    fault_rate: float | None = Field(default=None, ge=0, le=1)
    fault_status: int | None = Field(default=None, ge=500, le=599)
    throttle_rate: float | None = Field(default=None, ge=0, le=1)
    retry_after_s: int | None = Field(default=None, ge=0)
    seed: int | None = None


class AuthChange(BaseModel):
    """Body of ``POST /_emulator/auth``: the switches to change (seconds, >= 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auth_cache_delay_s: float | None = Field(default=None, ge=0)
    last_used_granularity_s: float | None = Field(default=None, ge=0)


class OrgChange(BaseModel):
    """Body of ``POST /_emulator/org``: caps to change; ``null`` removes a cap, an
    absent field leaves it as it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_service_key_expiry_days: int | None = Field(default=None, ge=1)
    max_pat_expiry_days: int | None = Field(default=None, ge=1)


class Control:
    """Answers ``/_emulator/*``.

    Args:
        state: The store (for key inspection).
        clock: The emulator clock.
        faults: The fault switches.
        reset: Restores the bootstrap world.
        traces: The run counts.
        auth: The auth switches.
        org: The organization's expiry caps.
    """

    def __init__(
        self,
        state: EmulatorState,
        clock: EmulatorClock,
        faults: FaultInjector,
        reset: Callable[[], None],
        *,
        traces: TraceStore,
        auth: Switch[AuthSwitches],
        org: Switch[OrgLimits],
    ) -> None:
        self._state = state
        self._clock = clock
        self._faults = faults
        self._reset = reset
        self._traces = traces
        self._auth = auth
        self._org = org

    def handle(self, request: Request) -> Response:
        """The response to a control request; never raises."""
        try:
            if not ipaddress.ip_address(request.client_ip).is_loopback:
                raise detail(403, "The emulator control routes answer loopback clients only")
            return Response(200, self._dispatch(request))
        except ApiError as exc:
            return exc.response

    def _dispatch(self, request: Request) -> Any:
        match (request.method, request.route):
            case ("GET", "/_emulator/clock"):
                return {"now": isoformat(self._clock.now())}
            case ("POST", "/_emulator/clock"):
                return self._set_clock(parse_body(ClockChange, request.body))
            case ("GET", "/_emulator/faults"):
                return self._faults.switches.as_dict()
            case ("POST", "/_emulator/faults"):
                return self._set_faults(parse_body(FaultChange, request.body))
            case ("GET", "/_emulator/auth"):
                return self._auth.value.as_dict()
            case ("POST", "/_emulator/auth"):
                change = parse_body(AuthChange, request.body)
                return self._auth.configure(**change.model_dump(exclude_none=True)).as_dict()
            case ("GET", "/_emulator/org"):
                return self._org.value.as_dict()
            case ("POST", "/_emulator/org"):
                org = parse_body(OrgChange, request.body)
                changes = {name: getattr(org, name) for name in org.model_fields_set}
                return self._org.configure(**changes).as_dict()
            case ("GET", "/_emulator/keys"):
                return self._state.inspect_keys()
            case ("GET", "/_emulator/runs"):
                return self._traces.inspect()
            case ("POST", "/_emulator/reset"):
                self._reset()
                return {"reset": True}
        raise detail(404, "Not Found")

    def _set_clock(self, change: ClockChange) -> dict[str, str]:
        if change.now is not None:
            self._clock.set(change.now)
        elif change.advance_seconds is not None:
            self._clock.advance(change.advance_seconds)
        return {"now": isoformat(self._clock.now())}

    def _set_faults(self, change: FaultChange) -> dict[str, Any]:
        values = change.model_dump(exclude_none=True)
        seed = values.pop("seed", None)
        try:
            return self._faults.configure(seed=seed, **values).as_dict()
        except (ValueError, ValidationError) as exc:
            raise validation_error((["body"], str(exc), "value_error")) from exc
