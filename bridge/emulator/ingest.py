"""Run operations out of the three ingest formats the SDK uses.

* ``POST /runs/multipart``: parts named ``post.<run_id>`` / ``patch.<run_id>`` (the run
  as JSON), ``post|patch.<run_id>.<field>`` (inputs, outputs, ... out of band),
  ``feedback.<run_id>`` and ``attachment.<run_id>.<name>``;
* ``POST /runs/batch``: ``{"post": [run, ...], "patch": [run, ...]}``;
* ``POST /runs`` and ``PATCH /runs/{run_id}``: one run as JSON.

Only what the emulator counts is kept: the operation, the run id and its session.
A body that cannot be read is a 422, as the real API answers a malformed payload.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from bridge.emulator.bodies import boundary_of, parse_multipart
from bridge.emulator.responses import ApiError, validation_error

Operation = Literal["post", "patch"]
EVENTS = ("post", "patch", "feedback", "attachment")
RUN_FIELDS = ("inputs", "outputs", "events", "error", "extra", "serialized")


@dataclass(frozen=True)
class RunOp:
    """One run created (``post``) or updated (``patch``).

    Attributes:
        operation: ``post`` or ``patch``.
        run_id: The run's id, a canonical UUID string.
        session_name: The project named by the run, if any.
        session_id: The project id given by the run, if any.
    """

    operation: Operation
    run_id: str
    session_name: str | None = None
    session_id: str | None = None


def _invalid(where: list[str | int], message: str) -> ApiError:
    return validation_error((["body", *where], message, "value_error"))


def _uuid(value: Any, where: list[str | int]) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise _invalid(where, "run id must be a UUID") from exc


def _optional_str(run: dict[str, Any], name: str) -> str | None:
    value = run.get(name)
    return str(value) if value not in (None, "") else None


def run_op(operation: Operation, run: Any, where: list[str | int], run_id: Any = None) -> RunOp:
    """A ``RunOp`` from a run object; ``run_id`` (from the path or part name) wins.

    Raises:
        ApiError: 422 if ``run`` is not an object or carries no valid id.
    """
    if not isinstance(run, dict):
        raise _invalid(where, "a run must be a JSON object")
    raw_id = run_id if run_id is not None else run.get("id")
    if raw_id is None:
        raise _invalid([*where, "id"], "Field required")
    return RunOp(
        operation,
        _uuid(raw_id, [*where, "id"]),
        _optional_str(run, "session_name"),
        _optional_str(run, "session_id"),
    )


def _json(raw: bytes, where: list[str | int]) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise validation_error((["body", *where], "JSON decode error", "json_invalid")) from exc


def single_run(operation: Operation, body: bytes, run_id: str | None = None) -> RunOp:
    """The run of ``POST /runs`` (which may leave the id to the server) or
    ``PATCH /runs/{run_id}``."""
    run = _json(body, [])
    if operation == "post" and isinstance(run, dict) and run.get("id") is None:
        run_id = str(uuid.uuid4())
    return run_op(operation, run, [], run_id)


def batch_runs(body: bytes) -> list[RunOp]:
    """The runs of ``POST /runs/batch``."""
    data = _json(body, [])
    if not isinstance(data, dict):
        raise _invalid([], 'expected {"post": [...], "patch": [...]}')
    ops: list[RunOp] = []
    for operation in ("post", "patch"):
        runs = data.get(operation) or []
        if not isinstance(runs, list):
            raise _invalid([operation], "expected a list of runs")
        ops.extend(run_op(operation, run, [operation, i]) for i, run in enumerate(runs))
    return ops


def multipart_runs(body: bytes, content_type: str | None) -> list[RunOp]:
    """The runs of ``POST /runs/multipart``: one op per ``post.<id>`` or ``patch.<id>``
    part; the other parts are checked for a known name and then dropped."""
    boundary = boundary_of(content_type)
    try:
        parts = parse_multipart(body, boundary)
    except ValueError as exc:
        raise _invalid([], f"malformed multipart body: {exc}") from exc
    ops: list[RunOp] = []
    for part in parts:
        event, _, rest = part.name.partition(".")
        run_id, _, field = rest.partition(".")
        if event not in EVENTS or not run_id:
            raise _invalid([part.name], "part names are <event>.<run_id>[.<field>]")
        canonical = _uuid(run_id, [part.name])
        if event in ("post", "patch") and field and field not in RUN_FIELDS:
            raise _invalid([part.name], f"unknown run field {field!r}")
        if event in ("post", "patch") and not field:
            run = _json(part.data, [part.name])
            ops.append(run_op("post" if event == "post" else "patch", run, [part.name], canonical))
    return ops
