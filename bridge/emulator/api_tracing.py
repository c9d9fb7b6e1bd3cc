"""The ingest routes the ``langsmith`` SDK traces through, registered on ``Api``.

``POST /runs/multipart`` (what the SDK uses when ``/info`` advertises
``use_multipart_endpoint``, zstd-compressed when it advertises
``zstd_compression_enabled``), ``POST /runs/batch`` (its fallback), ``POST /runs`` and
``PATCH /runs/{run_id}`` (runs sent one at a time), and ``GET``/``POST /sessions``
(finding and creating projects; a run naming a new project creates it too). They are
workspace routes: a bad key is 401, an org-scoped key without ``X-Tenant-Id`` 403, and
every accepted call moves the key's ``last_used_at``, so a tracing outage and a tracing
consumer's use are both visible.

Accepted runs answer 202, as LangSmith queues them; the emulator only counts them
(``TraceStore``).
"""

from __future__ import annotations

from typing import Any

from bridge.emulator import views
from bridge.emulator.api import Api, Call
from bridge.emulator.bodies import decode
from bridge.emulator.ingest import RunOp, batch_runs, multipart_runs, single_run
from bridge.emulator.models import (
    SessionCreateQuery,
    SessionCreateRequest,
    SessionsQuery,
    parse_body,
    parse_query,
    parse_uuid,
)
from bridge.emulator.responses import Response, detail
from bridge.emulator.tracing import ProjectExists

route = Api.route


def _body(call: Call) -> bytes:
    return decode(call.request.body, call.request.header("content-encoding"))


def _accepted(api: Api, call: Call, ops: list[RunOp], message: str) -> Response:
    api.traces.record(call.workspace, call.caller.id, ops)
    return Response(202, {"message": message})


@route("POST", "/runs/multipart", "workspace")
def ingest_multipart(api: Api, call: Call) -> Any:
    ops = multipart_runs(_body(call), call.request.header("content-type"))
    return _accepted(api, call, ops, "Runs ingested")


@route("POST", "/runs/batch", "workspace")
def ingest_batch(api: Api, call: Call) -> Any:
    return _accepted(api, call, batch_runs(_body(call)), "Runs batch ingested")


@route("POST", "/runs", "workspace")
def create_run(api: Api, call: Call) -> Any:
    return _accepted(api, call, [single_run("post", _body(call))], "Run created")


@route("PATCH", "/runs/{run_id}", "workspace")
def update_run(api: Api, call: Call) -> Any:
    run_id = parse_uuid("run_id", call.params["run_id"])
    return _accepted(api, call, [single_run("patch", _body(call), run_id)], "Run updated")


@route("GET", "/sessions", "workspace")
def list_sessions(api: Api, call: Call) -> Any:
    query = parse_query(SessionsQuery, call.request.query)
    projects = api.traces.projects(call.workspace)
    if query.id is not None:
        wanted = {str(i) for i in query.id}
        projects = [p for p in projects if p.id in wanted]
    if query.name is not None:
        projects = [p for p in projects if p.name == query.name]
    if query.name_contains is not None:
        projects = [p for p in projects if query.name_contains in p.name]
    projects.sort(key=lambda p: (p.start_time, p.name), reverse=True)
    page = projects[query.offset : query.offset + query.limit]
    return [views.project_view(p) for p in page]


@route("POST", "/sessions", "workspace")
def create_session(api: Api, call: Call) -> Any:
    query = parse_query(SessionCreateQuery, call.request.query)
    body = parse_body(SessionCreateRequest, _body(call))
    try:
        project = api.traces.create_project(
            call.workspace,
            body.name,
            project_id=str(body.id) if body.id else None,
            description=body.description,
            upsert=query.upsert,
        )
    except ProjectExists as exc:
        raise detail(409, f"Session {body.name!r} already exists") from exc
    return views.project_view(project)
