"""The state store contract's backends: every scenario of ``test_state_contract`` runs
against every entry of ``BACKENDS``.

A factory receives the pytest request (for ``tmp_path``, ``monkeypatch``) and yields a
``Backend``: a way to open more stores on the same storage (another runner, another
thread), a way to read everything stored, raw, for leak checks, the clock its leases
expire on (absent for leases that cannot expire), and a way to damage what is stored.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from hvac.exceptions import InvalidPath
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from bridge.config.model import DynamoDBStateSettings
from bridge.config.vault import VaultSettings, VaultStateSettings
from bridge.state import FileStateStore, PolicyRecord, StateStore
from providers.aws.dynamodb import DynamoDBStateStore, table_definition
from providers.aws.dynamodb_schema import ack_key, policy_key, run_key
from providers.vault.client import VaultClients
from providers.vault.state import VaultStateStore
from tests.support.aws import fake_aws_environment
from tests.support.fakes import MemoryState
from tests.support.vault import BaoServer

TABLE = "bridge-state"
REGION = "us-east-1"


class Clock:
    """UTC now, plus an offset a test moves: every store of a backend shares one, so a
    test can jump past a lease's expiry while real time still drives renewals."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@dataclass(frozen=True)
class Backend:
    """One storage, and everything a scenario may do to it."""

    name: str
    open: Callable[[], StateStore]  # a new store on the same storage
    raw: Callable[[], str]  # everything stored, as text
    clock: Clock | None = None  # what leases expire on; None: they cannot expire
    # Overwrite what is stored for a policy's ``record``, ``ack`` (of consumer "api") or
    # ``run`` with garbage, as a damaged disk or a careless hand would; None: cannot be.
    damage: Callable[[str, str], None] | None = None


def atomic_moto_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's conditional writes atomic, as DynamoDB's are.

    moto evaluates a ConditionExpression and then stores the item with no lock between, so
    two threads can both pass the same version check and one update is silently lost: a
    moto leniency that would make a correct compare-and-swap look broken under contention.
    """
    lock = threading.RLock()
    for name in ("put_item", "delete_item", "update_item", "transact_write_items"):
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

    def damage(policy: str, what: str) -> None:
        FileStateStore(path).save(PolicyRecord(policy="make-sure-the-database-exists"))
        garbage = "{not json"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            if what == "record":
                conn.execute("INSERT OR REPLACE INTO policies VALUES (?, 1, ?)", (policy, garbage))
            elif what == "ack":
                conn.execute(
                    "INSERT OR REPLACE INTO acks VALUES (?, 'api', 'default', ?)", (policy, garbage)
                )
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO runs VALUES (?, 'yesterday', NULL, NULL)", (policy,)
                )
            conn.commit()

    yield Backend("file", lambda: FileStateStore(path), raw, damage=damage)


@contextlib.contextmanager
def dynamodb_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    fake_aws_environment(monkeypatch)
    atomic_moto_writes(monkeypatch)
    clock = Clock()
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(**table_definition(TABLE))
        settings = DynamoDBStateSettings(backend="dynamodb", table=TABLE, region=REGION)

        def damage(policy: str, what: str) -> None:
            items = {
                "record": {"pk": {"S": policy_key(policy)}, "version": {"N": "1"}},
                "ack": {"pk": {"S": ack_key(policy, "api")}, "replicas": {"S": "x"}},
                "run": {"pk": {"S": run_key(policy)}, "last_run_at": {"S": "yesterday"}},
            }
            item = items[what]
            if what == "record":
                item["record"] = {"S": "{not json"}
            client.put_item(TableName=TABLE, Item=item)

        # One client for every store: building one costs ~0.1 s; the lazily built client
        # is exercised by the integration tests against a moto server.
        yield Backend(
            "dynamodb",
            lambda: DynamoDBStateStore(settings, client=client, clock=clock),
            lambda: json.dumps(scan_everything(client, TABLE)),
            clock=clock,
            damage=damage,
        )


@contextlib.contextmanager
def vault_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The session's OpenBao server, a fresh KV v2 mount with ``cas_required`` (the
    strictest: every write must pass ``cas``), and one login shared by every store, as a
    process shares its connection."""
    bao: BaoServer = request.getfixturevalue("bao")
    mount, folder = bao.fresh_mount(cas_required=True), "langsmith-bridge/bridge-state"
    settings = VaultStateSettings(backend="vault", mount=mount, path=folder)
    clients = VaultClients(VaultSettings(address=bao.address), {"VAULT_TOKEN": bao.root_token})
    kv = bao.root().secrets.kv.v2
    clock = Clock()

    def damage(policy: str, what: str) -> None:
        entries = {
            "record": (f"policies/{policy}", {"record": "{not json", "write_id": "x"}),
            "ack": (f"acks/{policy}/api", {"replicas": "x"}),
            "run": (f"runs/{policy}", {"last_run_at": "yesterday"}),
        }
        path, data = entries[what]
        kv.create_or_update_secret(f"{folder}/{path}", data, cas=0, mount_point=mount)

    def raw() -> str:
        """Every version still readable of every entry under the folder."""
        stored: list[Any] = []
        folders = [folder]
        while folders:
            here = folders.pop()
            try:
                keys = kv.list_secrets(here, mount_point=mount)["data"]["keys"]
            except InvalidPath:  # nothing stored yet
                continue
            for key in keys:
                path = f"{here}/{key}".rstrip("/")
                if key.endswith("/"):
                    folders.append(path)
                    continue
                versions = kv.read_secret_metadata(path, mount_point=mount)["data"]["versions"]
                for number, meta in versions.items():
                    if not meta["deletion_time"] and not meta["destroyed"]:
                        read = kv.read_secret_version(
                            path,
                            version=int(number),
                            mount_point=mount,
                            raise_on_deleted_version=True,
                        )
                        stored.append({path: read["data"]["data"]})
        return json.dumps(stored)

    try:
        yield Backend(
            "vault",
            lambda: VaultStateStore(settings, clients, clock=clock),
            raw,
            clock=clock,
            damage=damage,
        )
    finally:
        clients.close()
        bao.root().sys.disable_secrets_engine(mount)


@contextlib.contextmanager
def gcs_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The session's fake-gcs-server, a fresh bucket, and one storage client shared by
    every store, as a process shares its connection."""
    from bridge.config.gcp import GcsStateSettings
    from providers.gcp import GcpConnection
    from providers.gcp.gcs_state import GcsStateStore
    from tests.support.gcs import GcsServer

    gcs: GcsServer = request.getfixturevalue("gcs")
    bucket, prefix = gcs.fresh_bucket(), "langsmith-bridge/bridge-state"
    settings = GcsStateSettings(backend="gcs", bucket=bucket, prefix=prefix, endpoint=gcs.endpoint)
    connection = GcpConnection()
    client = connection.storage_client(settings)
    clock = Clock()

    def damage(policy: str, what: str) -> None:
        objects = {
            "record": (f"policies/{policy}.json", b"{not json"),
            "ack": (f"acks/{policy}/api.json", b'{"replicas": "x"}'),
            "run": (f"runs/{policy}.json", b'{"last_run_at": "yesterday"}'),
        }
        path, data = objects[what]
        client.bucket(bucket).blob(f"{prefix}/{path}").upload_from_string(data)

    def raw() -> str:
        """Every object in the bucket, name and content."""
        blobs = list(client.list_blobs(bucket))
        return json.dumps({b.name: b.download_as_bytes().decode() for b in blobs})

    try:
        yield Backend(
            "gcs",
            lambda: GcsStateStore(settings, client, clock=clock),
            raw,
            clock=clock,
            damage=damage,
        )
    finally:
        connection.close()


@contextlib.contextmanager
def memory_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The unit tests' fake, held to the same contract as the real backends."""
    del request
    clock = Clock()
    memory = MemoryState(clock=clock)

    def raw() -> str:
        stored: list[Any] = [r.model_dump(mode="json") for r in memory.records.values()]
        for by_replica in memory._acks.values():
            stored += [a.model_dump(mode="json") for a in by_replica.values()]
        stored += [r.model_dump(mode="json") for r in memory._runs.values()]
        return json.dumps([stored, memory.leases, memory._meta]) if memory.records else ""

    yield Backend("memory", memory.sibling, raw, clock=clock)


BACKENDS: dict[
    str, Callable[[pytest.FixtureRequest], contextlib.AbstractContextManager[Backend]]
] = {
    "file": file_backend,
    "dynamodb": dynamodb_backend,
    "memory": memory_backend,
    "vault": vault_backend,
    "gcs": gcs_backend,
}
