"""The LangSmith routes: authentication, scoping, permissions and the handlers.

Every route answers under ``/api/v1/<route>`` and under the bare ``/<route>`` the
official SDK uses; the HTTP layer strips the prefix before ``Api.handle`` sees it.
Checks run in FastAPI's order: authentication and scope (401/403) first, then
parameter and body validation (422), then the lookup (404).

This module holds the key-management and read-only routes; ``api_tokens`` adds the
personal access tokens and ``api_tracing`` the SDK's ingest routes, under the very
same authentication (both register themselves when this module is imported).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bridge.emulator import views
from bridge.emulator.clock import EmulatorClock, utc
from bridge.emulator.control import Control
from bridge.emulator.faults import FaultInjector, RateLimiter
from bridge.emulator.models import (
    APIKeyCreateRequest,
    APIKeyUpdateRequest,
    ServiceKeysQuery,
    WorkspacesQuery,
    parse_body,
    parse_query,
    parse_uuid,
)
from bridge.emulator.records import KeyKind, KeyRecord, KeyRuleError
from bridge.emulator.responses import (
    ApiError,
    Request,
    Response,
    detail,
    invalid_token,
    too_many_requests,
    validation_error,
)
from bridge.emulator.state import EmulatorState
from bridge.emulator.switches import OrgLimits, Switch
from bridge.emulator.tracing import TraceStore

log = logging.getLogger(__name__)

Scope = Literal["public", "org", "workspace"]
WORKSPACE_KEY_DEFAULT = {"description": "Default API key", "read_only": False}


@dataclass(frozen=True)
class Call:
    """A request that passed authentication and scoping.

    Attributes:
        request: The request.
        params: Path parameters by name.
        key: The authenticated key; ``None`` on public routes.
        workspace_id: The resolved workspace, for workspace routes.
    """

    request: Request
    params: dict[str, str]
    key: KeyRecord | None
    workspace_id: str | None

    @property
    def caller(self) -> KeyRecord:
        """The authenticated key; only called by routes that require one."""
        assert self.key is not None
        return self.key

    @property
    def workspace(self) -> str:
        """The resolved workspace id; only called by workspace routes."""
        assert self.workspace_id is not None
        return self.workspace_id


Handler = Callable[["Api", Call], Any]  # returns the 200 body, or a whole ``Response``


@dataclass(frozen=True)
class Route:
    """One method and path template, its scope, and its handler."""

    method: str
    pattern: re.Pattern[str]
    scope: Scope
    handler: Handler


def _compile(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


class Api:
    """Answers LangSmith requests from the state, after the test switches had their say.

    Args:
        state: The store of keys and the organization.
        faults: Latency and injected failures.
        limiter: The per-key (or per-IP) rate limit.
        control: The ``/_emulator`` test hooks, which skip faults and limits.
        traces: Tracing projects and run counts.
        org: The organization's key-expiry caps.
        clock: The emulator clock.
    """

    routes: list[Route] = []

    def __init__(
        self,
        state: EmulatorState,
        faults: FaultInjector,
        limiter: RateLimiter,
        control: Control,
        *,
        traces: TraceStore,
        org: Switch[OrgLimits],
        clock: EmulatorClock,
    ) -> None:
        self.state = state
        self.faults = faults
        self.limiter = limiter
        self.control = control
        self.traces = traces
        self.org = org
        self.clock = clock

    @classmethod
    def route(cls, method: str, template: str, scope: Scope) -> Callable[[Handler], Handler]:
        """Register a handler for ``method`` on ``template`` (``{name}`` marks a parameter)."""

        def register(handler: Handler) -> Handler:
            cls.routes.append(Route(method, _compile(template), scope, handler))
            return handler

        return register

    def handle(self, request: Request) -> Response:
        """The response to one request; never raises."""
        if request.route == "/_emulator" or request.route.startswith("/_emulator/"):
            return self.control.handle(request)
        try:
            return self._handle(request)
        except ApiError as exc:
            return exc.response
        except Exception:
            log.exception("emulator route failed: %s %s", request.method, request.route)
            return Response(500, {"detail": "Internal Server Error"})

    def _handle(self, request: Request) -> Response:
        switches = self.faults.switches
        if switches.latency_ms:
            time.sleep(switches.latency_ms / 1000)
        outcome = self.faults.draw()
        if outcome == "fault":
            return Response(switches.fault_status, {"detail": "Injected fault"})
        if outcome == "throttle":
            return too_many_requests(switches.retry_after_s)
        retry_after = self.limiter.hit(self._identity(request))
        if retry_after is not None:
            return too_many_requests(retry_after)
        route, params = self._match(request)
        call = self._authorize(request, route, params)
        result = route.handler(self, call)
        if switches.answer_delay_ms:
            time.sleep(switches.answer_delay_ms / 1000)
        return result if isinstance(result, Response) else Response(200, result)

    @staticmethod
    def _identity(request: Request) -> str:
        key = request.header("x-api-key")
        if key is None:
            return f"ip:{request.client_ip}"
        return "key:" + hashlib.sha256(key.encode()).hexdigest()

    def _match(self, request: Request) -> tuple[Route, dict[str, str]]:
        path_matched = False
        for route in self.routes:
            match = route.pattern.match(request.route)
            if match is None:
                continue
            path_matched = True
            if route.method == request.method:
                return route, match.groupdict()
        if path_matched:
            raise detail(405, "Method Not Allowed")
        raise detail(404, "Not Found")

    def _authorize(self, request: Request, route: Route, params: dict[str, str]) -> Call:
        if route.scope == "public":
            return Call(request, params, None, None)
        raw_key = request.header("x-api-key")
        key = self.state.authenticate(raw_key) if raw_key else None
        if key is None:
            raise invalid_token()
        org = request.header("x-organization-id")
        if org is not None and org.lower() != self.state.organization_id:
            raise detail(403, "X-Organization-Id does not match this key's organization")
        workspace = self._workspace(request, key) if route.scope == "workspace" else None
        return Call(request, params, key, workspace)

    def _workspace(self, request: Request, key: KeyRecord) -> str:
        tenant = request.header("x-tenant-id")
        if tenant is None:
            if key.kind == "pat":  # a PAT falls back to its default, else the first workspace
                return key.default_workspace_id or self.state.seed.workspaces[0].id
            if key.workspace_ids is None:
                raise ApiError(
                    403,
                    {
                        "error": "org_scoped_key_requires_workspace",
                        "detail": "This API key is organization-scoped: send X-Tenant-Id "
                        "to choose the workspace.",
                    },
                )
            return key.workspace_ids[0]
        tenant = tenant.lower()
        if self.state.workspace(tenant) is None or not key.reaches(tenant):
            raise detail(403, "This API key cannot access the requested workspace")
        return tenant

    # -- helpers used by the handlers -----------------------------------------------------

    def require_org_admin(self, call: Call) -> None:
        """403 unless the caller is an Organization Admin."""
        if not self.state.is_org_admin(call.caller):
            raise detail(403, "Organization Admin role required to manage service keys")

    def require_workspace_admin(self, call: Call) -> None:
        """403 unless the caller administers the resolved workspace."""
        if not self.state.can_admin_workspace(call.caller, call.workspace):
            raise detail(403, "Workspace Admin role required to manage API keys")

    def check_expiry_cap(self, kind: KeyKind, body: APIKeyCreateRequest) -> None:
        """400 if the body's ``expires_at`` breaks the organization's cap for ``kind``
        (see ``OrgLimits.refusal`` for the emulator's reading of the cap)."""
        expires_at = utc(body.expires_at) if body.expires_at else None
        reason = self.org.value.refusal(kind, expires_at, self.clock.now())
        if reason is not None:
            raise detail(400, reason)

    def create_key(self, body: APIKeyCreateRequest, workspaces: list[str] | None) -> Any:
        """Mint a service key from a validated body; rule violations become 422, an
        expiry beyond the organization's cap 400."""
        self.check_expiry_cap("service", body)
        try:
            record, key = self.state.create_key(
                description=body.description,
                read_only=body.read_only,
                expires_at=utc(body.expires_at) if body.expires_at else None,
                workspace_ids=workspaces,
                role_id=str(body.role_id) if body.role_id else None,
                org_role_id=str(body.org_role_id) if body.org_role_id else None,
            )
        except KeyRuleError as exc:
            raise validation_error((["body", exc.field], str(exc), "value_error")) from exc
        return views.created_key_view(self.state, record, key)


route = Api.route


@route("GET", "/info", "public")
def get_info(api: Api, call: Call) -> Any:
    return views.info_view()


@route("GET", "/orgs/current/service-keys", "org")
def list_service_keys(api: Api, call: Call) -> Any:
    api.require_org_admin(call)
    query = parse_query(ServiceKeysQuery, call.request.query)
    wanted = [str(ws) for ws in query.workspace_ids] or None
    return [views.key_view(api.state, r) for r in api.state.live_keys(wanted)]


@route("POST", "/orgs/current/service-keys", "org")
def create_service_key(api: Api, call: Call) -> Any:
    api.require_org_admin(call)
    body = parse_body(APIKeyCreateRequest, call.request.body)
    workspaces = [str(ws) for ws in body.workspaces] if body.workspaces is not None else None
    return api.create_key(body, workspaces)


@route("DELETE", "/orgs/current/service-keys/{api_key_id}", "org")
def delete_service_key(api: Api, call: Call) -> Any:
    api.require_org_admin(call)
    record = api.state.delete_key(parse_uuid("api_key_id", call.params["api_key_id"]))
    if record is None:
        raise detail(404, "API key not found")
    return views.key_view(api.state, record)


@route("PATCH", "/orgs/current/service-keys/{api_key_id}", "org")
def update_service_key(api: Api, call: Call) -> Any:
    api.require_org_admin(call)
    key_id = parse_uuid("api_key_id", call.params["api_key_id"])
    body = parse_body(APIKeyUpdateRequest, call.request.body)
    try:
        record = api.state.update_roles(
            key_id,
            role_id=str(body.role_id) if body.role_id else None,
            org_role_id=str(body.org_role_id) if body.org_role_id else None,
        )
    except KeyRuleError as exc:
        raise validation_error((["body", exc.field], str(exc), "value_error")) from exc
    if record is None:
        raise detail(404, "API key not found")
    return views.key_view(api.state, record)


@route("GET", "/api-key", "workspace")
def list_workspace_keys(api: Api, call: Call) -> Any:
    api.require_workspace_admin(call)
    return [views.key_view(api.state, r) for r in api.state.workspace_keys(call.workspace)]


@route("POST", "/api-key", "workspace")
def create_workspace_key(api: Api, call: Call) -> Any:
    api.require_workspace_admin(call)
    body = parse_body(APIKeyCreateRequest, call.request.body, default=WORKSPACE_KEY_DEFAULT)
    return api.create_key(body, [call.workspace])


@route("DELETE", "/api-key/{api_key_id}", "workspace")
def delete_workspace_key(api: Api, call: Call) -> Any:
    api.require_workspace_admin(call)
    key_id = parse_uuid("api_key_id", call.params["api_key_id"])
    record = api.state.delete_key(key_id, workspace_id=call.workspace)
    if record is None:
        raise detail(404, "API key not found")
    return views.key_view(api.state, record)


@route("GET", "/workspaces", "org")
def list_workspaces(api: Api, call: Call) -> Any:
    parse_query(WorkspacesQuery, call.request.query)
    return [
        views.workspace_view(api.state, ws, call.caller)
        for ws in api.state.workspaces_for(call.caller)
    ]


@route("GET", "/workspaces/{workspace_id}", "org")
def get_workspace(api: Api, call: Call) -> Any:
    workspace_id = parse_uuid("workspace_id", call.params["workspace_id"])
    parse_query(WorkspacesQuery, call.request.query)
    ws = api.state.workspace(workspace_id)
    if ws is None or not call.caller.reaches(ws.id):
        raise detail(404, "Workspace not found")
    return views.workspace_view(api.state, ws, call.caller)


@route("GET", "/orgs/current", "org")
def get_organization(api: Api, call: Call) -> Any:
    return views.organization_view(api.state, call.caller)


@route("GET", "/orgs/current/info", "org")
def get_organization_info(api: Api, call: Call) -> Any:
    return views.organization_info_view(api.state, call.caller, api.org.value)


@route("GET", "/orgs/current/roles", "org")
def list_roles(api: Api, call: Call) -> Any:
    return [
        {
            "id": role.id,
            "name": role.name,
            "display_name": role.display_name,
            "access_scope": role.access_scope,
        }
        for role in api.state.seed.roles
    ]


# The other route modules register on ``Api.routes`` as they load; they import this
# module, so they are loaded last.
from bridge.emulator import api_tokens, api_tracing  # noqa: E402, F401
