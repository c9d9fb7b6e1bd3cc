"""Personal access token routes (API.md §4.3, §4.4), registered on ``Api``.

PATs belong to a user; the emulated organization has one, an Organization Admin, and
every PAT is theirs. Whether a service key may manage PATs is UNCONFIRMED (API.md
§8.5). The emulator lets a PAT manage its user's tokens and, so that a test can start
from the bootstrap key, also an Organization Admin service key; any other key gets 403.

Revocation (newest docs only) answers 204 with no body, and 404 as RFC 7807
``ProblemDetails``, as those docs show.
"""

from __future__ import annotations

from typing import Any

from bridge.emulator import views
from bridge.emulator.api import Api, Call
from bridge.emulator.clock import utc
from bridge.emulator.models import (
    APIKeyCreateRequest,
    ServiceKeysQuery,
    parse_body,
    parse_query,
    parse_uuid,
)
from bridge.emulator.records import KeyRecord, KeyRuleError
from bridge.emulator.responses import ApiError, Response, detail, validation_error

route = Api.route
PATS = "/orgs/current/personal-access-tokens"
PAT_DEFAULT = {"description": "Default API key", "read_only": False}


def _require_pat_manager(api: Api, call: Call) -> None:
    caller = call.caller
    if caller.kind != "pat" and not api.state.is_org_admin(caller):
        raise detail(
            403,
            "Personal access tokens belong to a user: call with a personal access token "
            "or an Organization Admin key",
        )


def _not_found() -> ApiError:
    return ApiError(
        404,
        {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": "Personal access token not found",
        },
    )


def _list(api: Api, call: Call) -> list[dict[str, Any]]:
    _require_pat_manager(api, call)
    query = parse_query(ServiceKeysQuery, call.request.query)
    wanted = [str(ws) for ws in query.workspace_ids] or None
    return [views.pat_view(api.state, r) for r in api.state.live_keys(wanted, kind="pat")]


def _create(api: Api, call: Call, default: dict[str, Any] | None) -> Any:
    _require_pat_manager(api, call)
    body = parse_body(APIKeyCreateRequest, call.request.body, default=default)
    api.check_expiry_cap("pat", body)
    try:
        record, key = api.state.create_pat(
            description=body.description,
            expires_at=utc(body.expires_at) if body.expires_at else None,
            default_workspace_id=(
                str(body.default_workspace_id) if body.default_workspace_id else None
            ),
        )
    except KeyRuleError as exc:
        raise validation_error((["body", exc.field], str(exc), "value_error")) from exc
    return views.created_key_view(api.state, record, key)


def _delete(api: Api, call: Call) -> Any:
    _require_pat_manager(api, call)
    pat_id = parse_uuid("pat_id", call.params["pat_id"])
    record: KeyRecord | None = api.state.delete_key(pat_id, kind="pat")
    if record is None:
        raise detail(404, "Personal access token not found")
    return views.pat_view(api.state, record)


def _set_revoked(api: Api, call: Call, revoked: bool) -> Response:
    _require_pat_manager(api, call)
    pat_id = parse_uuid("pat_id", call.params["pat_id"])
    if api.state.set_revoked(pat_id, revoked) is None:
        raise _not_found()
    return Response(204, None)


@route("GET", PATS, "org")
def list_pats(api: Api, call: Call) -> Any:
    return _list(api, call)


@route("POST", PATS, "org")
def create_pat(api: Api, call: Call) -> Any:
    return _create(api, call, default=None)


@route("DELETE", PATS + "/{pat_id}", "org")
def delete_pat(api: Api, call: Call) -> Any:
    return _delete(api, call)


@route("POST", PATS + "/{pat_id}/revocation", "org")
def revoke_pat(api: Api, call: Call) -> Any:
    return _set_revoked(api, call, revoked=True)


@route("DELETE", PATS + "/{pat_id}/revocation", "org")
def reinstate_pat(api: Api, call: Call) -> Any:
    return _set_revoked(api, call, revoked=False)


@route("GET", "/orgs/current/members/personal-access-tokens", "org")
def list_members_pats(api: Api, call: Call) -> Any:
    """Every member's PATs: admins only; with one user, the same list (schema
    UNCONFIRMED, so the ``APIKeyGetResponse`` array of the sibling route)."""
    if not api.state.is_org_admin(call.caller):
        raise detail(403, "Organization Admin role required to list members' tokens")
    return _list(api, call)


# Deprecated aliases (API.md §4.4); the create body is optional there.


@route("GET", "/api-key/current", "org")
def list_pats_deprecated(api: Api, call: Call) -> Any:
    return _list(api, call)


@route("POST", "/api-key/current", "org")
def create_pat_deprecated(api: Api, call: Call) -> Any:
    return _create(api, call, default=PAT_DEFAULT)


@route("DELETE", "/api-key/current/{pat_id}", "org")
def delete_pat_deprecated(api: Api, call: Call) -> Any:
    return _delete(api, call)
