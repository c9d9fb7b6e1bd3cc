"""What only the Vault state backend has to get right, against a real OpenBao server: the
KV layout (a record's version is its entry's KV version), mounts that require ``cas``, a
consumer confined by a Vault policy to its own ack entry, the fence of a save under a
lease, contended acks, names that would escape their entry, damaged leases, and Vault's
failures (403, 429, sealed, unreachable, a KV v1 or missing mount) as one clear
``StateError``, retryable where waiting helps. The behaviour it shares with every backend
is in the state contract suite."""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.config.vault import VaultSettings, VaultStateSettings
from bridge.errors import LeaseHeld, LeaseLost, StateConflict, StateError
from bridge.secrets import fingerprint
from bridge.state.model import Ack, PolicyRecord
from providers import Connections
from providers.vault.client import VaultClients
from providers.vault.state import StateUnavailable, VaultStateStore
from tests.support.vault import BaoServer, bao_server

pytestmark = pytest.mark.integration

FOLDER = "langsmith-bridge/state"
TTL = timedelta(minutes=5)
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
FP = fingerprint("not a key, just something to hash")


class Clock:
    """UTC now plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


Opener = Callable[..., VaultStateStore]


@pytest.fixture
def opened() -> Iterator[list[VaultClients]]:
    """The clients of every store a test opens, closed at its end."""
    clients: list[VaultClients] = []
    yield clients
    for each in clients:
        each.close()


def opener(
    address: str, token: str, opened: list[VaultClients], **settings: Any
) -> Callable[..., VaultStateStore]:
    """Stores on ``address`` logged in with ``token``, for the ``[state]`` ``settings``."""

    def open_store(clock: Callable[[], datetime] | None = None) -> VaultStateStore:
        clients = VaultClients(
            VaultSettings(address=address, timeout=timedelta(seconds=2)), {"VAULT_TOKEN": token}
        )
        opened.append(clients)
        state = VaultStateSettings(backend="vault", **{"path": FOLDER, **settings})
        return VaultStateStore(state, clients, clock=clock)

    return open_store


@pytest.fixture(params=[True, False], ids=["cas_required", "cas optional"])
def mount(bao: BaoServer, request: pytest.FixtureRequest) -> Iterator[str]:
    path = bao.fresh_mount(cas_required=request.param)
    yield path
    bao.root().sys.disable_secrets_engine(path)


@pytest.fixture
def store_on(bao: BaoServer, mount: str, opened: list[VaultClients]) -> Opener:
    return opener(bao.address, bao.root_token, opened, mount=mount)


def kv_read(bao: BaoServer, mount: str, path: str) -> dict[str, Any]:
    """An entry of the state as an operator reads it: data and metadata."""
    answer = bao.root().secrets.kv.v2.read_secret_version(
        f"{FOLDER}/{path}", mount_point=mount, raise_on_deleted_version=True
    )
    found: dict[str, Any] = answer["data"]
    return found


# -- the layout ------------------------------------------------------------------------


def test_every_entry_lives_where_the_layout_says_and_the_record_version_is_the_kv_version(
    bao: BaoServer, mount: str, store_on: Opener
) -> None:
    store = store_on()
    first = store.save(store.load("p"))
    second = store.save(first.model_copy(update={"last_error": "x"}))
    store.record_run("p", T0, None)
    store.record_ack("p", Ack(consumer="api", replica="pod-1", fingerprint=FP, at=T0))
    with store.lease("p", "host:1", TTL):
        held = kv_read(bao, mount, "leases/p")["data"]
    made = store.deployment_id()

    record = kv_read(bao, mount, "policies/p")
    assert (record["metadata"]["version"], second.version) == (2, 2)
    stored = json.loads(record["data"]["record"])
    assert "version" not in stored
    assert stored["last_error"] == "x"
    assert kv_read(bao, mount, "runs/p")["data"]["last_success_at"] == "2025-03-01T09:00:00Z"
    replicas = json.loads(kv_read(bao, mount, "acks/p/api")["data"]["replicas"])
    assert replicas == {"pod-1": {"fingerprint": FP, "at": "2025-03-01T09:00:00Z"}}
    assert held["holder"].startswith("host:1#")
    assert kv_read(bao, mount, "leases/p")["data"]["holder"] == ""  # released
    assert kv_read(bao, mount, "meta/deployment")["data"] == {"id": made}
    assert store.policies() == ["p"]


def test_a_record_whose_latest_version_was_deleted_loads_empty_at_that_version(
    bao: BaoServer, mount: str, store_on: Opener
) -> None:
    """State lost by hand: the engine rebuilds it from the targets, and saving works."""
    store = store_on()
    store.save(store.save(store.load("p")))
    bao.root().secrets.kv.v2.delete_latest_version_of_secret(f"{FOLDER}/policies/p", mount)

    lost = store.load("p")

    assert lost == PolicyRecord(policy="p", version=2)
    assert store.save(lost).version == 3


def test_the_state_opens_through_the_connections_the_wiring_builds(
    bao: BaoServer, mount: str
) -> None:
    options = {
        "vault": {
            "settings": VaultSettings(address=bao.address),
            "environ": {"VAULT_TOKEN": bao.root_token},
        }
    }
    with Connections(options) as connections:
        store = connections.state(VaultStateSettings(backend="vault", mount=mount, path=FOLDER))
        assert store.save(store.load("p")).version == 1


# -- a consumer confined to its own ack ------------------------------------------------


def test_a_consumer_whose_vault_policy_grants_only_its_ack_entry_can_ack_and_nothing_else(
    bao: BaoServer, mount: str, opened: list[VaultClients]
) -> None:
    root = bao.root()
    name = f"ack-api-{secrets.token_hex(3)}"
    grant = '{ capabilities = ["create", "update", "read"] }'
    root.sys.create_or_update_policy(name, f'path "{mount}/data/{FOLDER}/acks/p/api" {grant}')
    token = root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    runner = opener(bao.address, bao.root_token, opened, mount=mount)()
    runner.save(runner.load("p"))
    consumer = opener(bao.address, token, opened, mount=mount)()

    consumer.record_ack("p", Ack(consumer="api", replica="pod-1", fingerprint=FP, at=T0))
    consumer.record_ack("p", Ack(consumer="api", replica="pod-2", fingerprint=FP, at=T0))

    assert [a.replica for a in consumer.acks("p", ["api"])] == ["pod-1", "pod-2"]
    assert [a.replica for a in runner.acks("p", ["api"])] == ["pod-1", "pod-2"]
    others: dict[str, Callable[[], object]] = {
        "read": lambda: consumer.load("p"),
        "write (cas=1)": lambda: consumer.save(runner.load("p")),
        "another consumer": lambda: consumer.record_ack(
            "p", Ack(consumer="worker", fingerprint=FP, at=T0)
        ),
        "list": consumer.policies,
        "run": lambda: consumer.record_run("p", T0, None),
        "lease": lambda: consumer.lease("p", "pod-1", TTL).__enter__(),
        "deployment": consumer.deployment_id,
    }
    messages = {}
    for what, call in others.items():
        with pytest.raises(StateError) as caught:
            call()
        message = messages[what] = str(caught.value)
        assert type(caught.value) is StateError, what
        assert not caught.value.retryable
        assert "was denied (403)" in message, what
        assert f"{mount}/" in message  # the API path the policy would need
        assert "\n" not in message
        assert token not in message
        if what in ("read", "write (cas=1)"):
            assert f"Vault {what} of {mount}/data/{FOLDER}/policies/p" in message
    assert f"{mount}/data/{FOLDER}/acks/p/worker" in messages["another consumer"]


# -- leases and their fence ------------------------------------------------------------


def test_a_save_under_a_lease_about_to_expire_writes_nothing_and_keeps_the_lease(
    store_on: Opener,
) -> None:
    clock = Clock()
    store = store_on(clock)
    with store.lease("p", "host:1", TTL) as lease:
        saved = store.save(store.load("p"))
        clock.offset = TTL - timedelta(seconds=30)  # 30 s left, under the ttl/3 a save needs

        with pytest.raises(LeaseLost, match="too soon"):
            store.save(saved)
        assert not lease.lost
        clock.offset = timedelta(0)
        assert store.save(saved).version == 2


def test_a_damaged_lease_is_one_error_naming_the_entry_and_the_policy(
    bao: BaoServer, mount: str, store_on: Opener
) -> None:
    damaged = {"holder": ["lsv2_sk_not_even_a_string"]}
    bao.root().secrets.kv.v2.create_or_update_secret(
        f"{FOLDER}/leases/p", damaged, mount_point=mount, cas=0
    )

    with pytest.raises(StateError) as caught:
        store_on().lease("p", "host:1", TTL).__enter__()

    message = str(caught.value)
    assert type(caught.value) is StateError
    assert f"{mount}/{FOLDER}/leases/p" in message
    assert "'p'" in message
    assert "malformed" in message
    assert "lsv2" not in message


def test_a_lease_being_taken_by_many_runners_at_once_goes_to_exactly_one(
    store_on: Opener,
) -> None:
    stores = [store_on() for _ in range(6)]
    start = threading.Barrier(len(stores))
    won: list[int] = []
    refused: list[BaseException] = []
    done = threading.Event()

    def take(n: int) -> None:
        start.wait()
        try:
            with stores[n].lease("p", f"host:{n}", TTL):
                won.append(n)
                done.wait(10)
        except LeaseHeld as exc:
            refused.append(exc)

    workers = [threading.Thread(target=take, args=(n,)) for n in range(len(stores))]
    for worker in workers:
        worker.start()
    while len(won) + len(refused) < len(stores) and any(w.is_alive() for w in workers):
        done.wait(0.05)
    done.set()
    for worker in workers:
        worker.join(timeout=30)

    assert len(won) == 1
    assert len(refused) == len(stores) - 1


# -- acks ------------------------------------------------------------------------------


def test_replicas_of_one_consumer_acking_at_once_all_land(store_on: Opener) -> None:
    stores = [store_on() for _ in range(8)]
    start = threading.Barrier(len(stores))
    failures: list[BaseException] = []

    def ack(n: int) -> None:
        start.wait()
        try:
            stores[n].record_ack(
                "p", Ack(consumer="api", replica=f"pod-{n}", fingerprint=FP, at=T0)
            )
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=ack, args=(n,)) for n in range(len(stores))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert failures == []
    assert [a.replica for a in stores[0].acks("p", ["api"])] == [f"pod-{n}" for n in range(8)]


def test_a_consumer_name_with_slashes_is_its_own_nested_entry_and_dot_segments_are_refused(
    bao: BaoServer, mount: str, store_on: Opener
) -> None:
    store = store_on()
    store.record_ack("p", Ack(consumer="team/api", fingerprint=FP, at=T0))

    assert kv_read(bao, mount, "acks/p/team/api")["metadata"]["version"] == 1
    assert [a.consumer for a in store.acks("p", ["team/api", "team"])] == ["team/api"]
    for name in ("team/../worker", "./api", "team//api"):
        with pytest.raises(StateError, match="cannot be part of a Vault state path"):
            store.record_ack("p", Ack(consumer=name, fingerprint=FP, at=T0))


# -- compare-and-swap ------------------------------------------------------------------


def test_a_save_sent_again_is_recognised_as_its_own_while_another_stores_is_a_conflict(
    store_on: Opener,
) -> None:
    """What a save whose response was lost looks like when it is sent again."""
    store, other = store_on(), store_on()
    record = store.load("p")
    saved = store.save(record)

    assert store.save(record) == saved
    with pytest.raises(StateConflict, match="expected version 0, found 1"):
        other.save(record)


# -- Vault's failures ------------------------------------------------------------------


def test_a_rate_limited_request_is_retryable(bao: BaoServer, mount: str, store_on: Opener) -> None:
    store = store_on()
    store.save(store.load("p"))  # the mount is checked and the client ready
    quota = f"slow-{mount}"
    bao.root().sys.create_or_update_quota(name=quota, rate=1.0, path=f"{mount}/", interval="30s")
    try:
        with pytest.raises(StateUnavailable) as caught:
            store.load("p")  # two reads: the record's, then the run's, over the quota
    finally:
        bao.root().sys.delete_quota(quota)

    assert caught.value.retryable
    assert "429" in str(caught.value)


def test_a_sealed_server_is_retryable_and_names_the_entry(
    tmp_path: Path, opened: list[VaultClients]
) -> None:
    with bao_server(tmp_path / "bao.log") as server:
        mount = server.fresh_mount(cas_required=True)
        store = opener(server.address, server.root_token, opened, mount=mount)()
        saved = store.save(store.load("p"))
        server.root().sys.seal()

        calls: list[Callable[[], object]] = [lambda: store.load("p"), lambda: store.save(saved)]
        for call in calls:
            with pytest.raises(StateUnavailable) as caught:
                call()
            assert caught.value.retryable
            assert "503" in str(caught.value)
            assert f"{mount}/data/{FOLDER}/policies/p" in str(caught.value)


def test_an_unreachable_server_is_retryable(opened: list[VaultClients]) -> None:
    port = _closed_port()
    store = opener(f"http://127.0.0.1:{port}", "not-a-real-token", opened, mount="secret")()

    calls: list[Callable[[], object]] = [
        lambda: store.load("p"),
        lambda: store.record_ack("p", Ack(consumer="api", fingerprint=FP, at=T0)),
    ]
    for call in calls:
        with pytest.raises(StateUnavailable) as caught:
            call()
        assert caught.value.retryable
        assert "retry later" in str(caught.value)
        assert "not-a-real-token" not in str(caught.value)


def test_a_kv_v1_mount_and_a_missing_mount_are_refused_by_name(
    bao: BaoServer, opened: list[VaultClients]
) -> None:
    v1 = bao.fresh_mount(version=1)
    on_v1 = opener(bao.address, bao.root_token, opened, mount=v1)()
    calls: list[Callable[[], object]] = [
        lambda: on_v1.load("p"),
        lambda: on_v1.save(PolicyRecord(policy="p")),
    ]
    for call in calls:
        with pytest.raises(StateError, match=f"mount '{v1}' is kv version 1, not KV version 2"):
            call()

    with pytest.raises(StateError, match="no KV v2 mount 'no-such-mount'"):
        opener(bao.address, bao.root_token, opened, mount="no-such-mount")().load("p")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
