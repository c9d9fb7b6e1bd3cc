"""The state store contract's backends: every scenario of ``test_state_contract`` runs
against every entry of ``BACKENDS``.

A factory receives the pytest request (for ``tmp_path``, ``monkeypatch``) and yields a
``Backend``: a way to open more stores on the same storage (another runner, another
thread) and a way to read everything stored, raw, for leak checks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from bridge.config.model import DynamoDBStateSettings
from bridge.state import FileStateStore, StateStore
from providers.aws.dynamodb import DynamoDBStateStore, table_definition
from tests.support.aws import fake_aws_environment

TABLE = "bridge-state"
REGION = "us-east-1"


@dataclass(frozen=True)
class Backend:
    """One storage, and everything a scenario may do to it."""

    name: str
    open: Callable[[], StateStore]  # a new store on the same storage
    raw: Callable[[], str]  # everything stored, as text


def atomic_moto_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's conditional writes atomic, as DynamoDB's are.

    moto evaluates a ConditionExpression and then stores the item with no lock between, so
    two threads can both pass the same version check and one update is silently lost: a
    moto leniency that would make a correct compare-and-swap look broken under contention.
    """
    lock = threading.RLock()
    for name in ("put_item", "delete_item", "update_item"):
        original = getattr(DynamoDBBackend, name)

        @functools.wraps(original)
        def serialised(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(*args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, serialised)


def scan_everything(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items += page["Items"]
    return items


@contextlib.contextmanager
def file_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    path: Path = request.getfixturevalue("tmp_path") / "state" / "bridge-state.json"

    def raw() -> str:
        """Every row of every table, as the SQL text SQLite itself dumps."""
        if not path.exists():
            return ""
        uri = f"file:{path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            return "\n".join(conn.iterdump())

    yield Backend("file", lambda: FileStateStore(path), raw)


@contextlib.contextmanager
def dynamodb_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    fake_aws_environment(monkeypatch)
    atomic_moto_writes(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(**table_definition(TABLE))
        settings = DynamoDBStateSettings(backend="dynamodb", table=TABLE, region=REGION)
        # One client for every store: building one costs ~0.1 s; the lazily built client
        # is exercised by the integration tests against a moto server.
        yield Backend(
            "dynamodb",
            lambda: DynamoDBStateStore(settings, client=client),
            lambda: json.dumps(scan_everything(client, TABLE)),
        )


BACKENDS: dict[
    str, Callable[[pytest.FixtureRequest], contextlib.AbstractContextManager[Backend]]
] = {
    "file": file_backend,
    "dynamodb": dynamodb_backend,
}
