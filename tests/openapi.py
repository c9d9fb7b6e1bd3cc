"""Check HTTP responses against the response schemas in ``tests/data/openapi-subset.json``.

``validate_response(response)`` finds the spec operation for the request's method and
path (``/api/v1/...`` templates; a bare ``/<route>`` alias is looked up as
``/api/v1/<route>``) and validates the JSON body against the schema documented for the
response status, with JSON Schema Draft 2020-12, ``$ref`` resolution against the spec
and format checks (uuid, date-time). Statuses the spec does not document (401, 403,
404, 429, 5xx) must still carry a JSON object with a ``detail`` member, the FastAPI
error envelope. Paths not in the spec (``/orgs/current/roles``, ``/_emulator/...``) are
skipped.

Use it directly, or as an httpx event hook::

    httpx.Client(base_url=url, event_hooks={"response": [openapi_hook]})
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).parent / "data" / "openapi-subset.json"
SPEC_URI = "urn:langsmith:openapi-subset"
API_PREFIX = "/api/v1"

ERROR_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"anyOf": [{"type": "string"}, {"type": "array"}]}},
}


@dataclass(frozen=True)
class _Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    params: int


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


@cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(_spec(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


@cache
def _operations() -> tuple[_Operation, ...]:
    ops = []
    for template, methods in _spec()["paths"].items():
        regex = "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$"
        for method in methods:
            ops.append(_Operation(method.upper(), template, re.compile(regex), template.count("{")))
    # Literal segments win over parameters: /api-key/current before /api-key/{id}.
    return tuple(sorted(ops, key=lambda op: op.params))


def spec_path(path: str) -> str:
    """The ``/api/v1/...`` form of a request path (no trailing slash)."""
    path = path.rstrip("/") or "/"
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return path
    return API_PREFIX + path


def find_operation(method: str, path: str) -> str | None:
    """The spec path template of ``method path``, or ``None`` if the spec lacks it."""
    path = spec_path(path)
    for op in _operations():
        if op.method == method.upper() and op.pattern.match(path):
            return op.template
    return None


def schema_for(method: str, path: str, status: int) -> dict[str, Any] | None:
    """The response schema for a call, or ``None`` if the spec does not document it.

    The schema is a ``$ref`` into the registered spec, so nested ``$ref`` resolve.
    """
    template = find_operation(method, path)
    if template is None:
        return None
    responses = _spec()["paths"][template][method.lower()]["responses"]
    key = str(status) if str(status) in responses else "default"
    if key not in responses:
        return None
    content = responses[key].get("content", {}).get("application/json")
    if content is None:
        return None
    pointer = "/".join(
        _escape(token)
        for token in (
            "paths",
            template,
            method.lower(),
            "responses",
            key,
            "content",
            "application/json",
            "schema",
        )
    )
    return {"$ref": f"{SPEC_URI}#/{pointer}"}


def validate_body(method: str, path: str, status: int, body: Any) -> None:
    """Validate ``body`` as the response to ``method path`` with ``status``.

    Raises:
        jsonschema.ValidationError: The body does not match.
    """
    if find_operation(method, path) is None:
        return
    schema = schema_for(method, path, status)
    if schema is None:
        if status < 400:
            raise AssertionError(f"{method} {path} -> {status} is not documented in the spec")
        schema = ERROR_ENVELOPE
    validator = Draft202012Validator(
        schema, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(body)


def validate_response(response: httpx.Response) -> None:
    """Validate an httpx response's JSON body against the spec (reads the body first).

    Raises:
        jsonschema.ValidationError: The body does not match its documented schema.
        AssertionError: A documented route answered a success status the spec lacks,
            or a non-JSON body.
    """
    request = response.request
    if find_operation(request.method, request.url.path) is None:
        return
    response.read()
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("application/json"), content_type
    validate_body(request.method, request.url.path, response.status_code, response.json())


def openapi_hook(response: httpx.Response) -> None:
    """An httpx ``response`` event hook running ``validate_response``."""
    validate_response(response)
