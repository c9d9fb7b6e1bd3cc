"""What only the DynamoDB state backend has to get right: leases that expire (in the
seconds older runners write and the milliseconds short TTLs need), saves fenced by a
transaction, SDK failures mapped onto ``StateError``, batch reads that DynamoDB answers in
part, item keys that IAM can confine a consumer to (all its replicas in one item that stays
under DynamoDB's size limit), tables and items written by older versions, the exact IAM
actions it calls, and a real HTTP round trip to a moto server. The behaviour it shares with
every backend is in the state contract suite."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from moto import mock_aws

from bridge.config.model import DynamoDBStateSettings
from bridge.errors import LeaseHeld, LeaseLost, StateConflict, StateError
from bridge.secrets import fingerprint
from bridge.state.model import PROOF_MAX, REPLICAS_KEPT, Ack, PolicyRecord
from bridge.wiring import Connections, open_state
from providers.aws.dynamodb import (
    BATCH_ATTEMPTS,
    CONSUMER_ACK_ACTIONS,
    DYNAMODB_ACTIONS,
    DynamoDBStateStore,
    table_definition,
)
from providers.aws.dynamodb_schema import (
    CONSUMER_READ_ACTIONS,
    EXPIRY_MS_ATTRIBUTE,
    IAM_ACTIONS,
    METHODS,
    TTL_ATTRIBUTE,
    DynamoDBClient,
    StateUnavailable,
    ack_key,
)
from tests.contract.state_backends import atomic_moto_writes
from tests.support.aws import REGION, client_error, fake_aws_environment, serve_moto

pytestmark = pytest.mark.integration

TABLE = "bridge-state-it"
SETTINGS = DynamoDBStateSettings(backend="dynamodb", table=TABLE, region=REGION)
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TTL = timedelta(minutes=5)
FP = fingerprint("not a key, just something to hash")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class Recorder:
    """A real client whose calls are recorded as ``(API call, parameters)``.

    With ``repeat_writes`` every write is sent twice and the second answer returned: what
    the SDK does when a write succeeded but its response was lost.
    """

    def __init__(self, client: Any, *, repeat_writes: bool = False) -> None:
        self.client = client
        self.repeat_writes = repeat_writes
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Callable[..., dict[str, Any]]:
        action = {m: a for a, m in METHODS.items()}[method]

        def call(**params: Any) -> dict[str, Any]:
            self.calls.append((f"dynamodb:{action}", params))
            real = getattr(self.client, method)
            if self.repeat_writes and action not in ("GetItem", "BatchGetItem", "Scan"):
                real(**params)
            response: dict[str, Any] = real(**params)
            return response

        return call

    def actions(self) -> set[str]:
        """The IAM actions the calls needed (a transaction needs those of its parts)."""
        return {a for call, _ in self.calls for a in IAM_ACTIONS[call.split(":")[1]]}


class Scripted:
    """A fake client that answers every call with the next outcome of a script (the last
    one repeats): a response, or an exception to raise."""

    def __init__(self, *outcomes: dict[str, Any] | BaseException) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((method, params))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def get_item(self, **params: Any) -> dict[str, Any]:
        return self._answer("get_item", params)

    def put_item(self, **params: Any) -> dict[str, Any]:
        return self._answer("put_item", params)

    def delete_item(self, **params: Any) -> dict[str, Any]:
        return self._answer("delete_item", params)

    def scan(self, **params: Any) -> dict[str, Any]:
        return self._answer("scan", params)

    def batch_get_item(self, **params: Any) -> dict[str, Any]:
        return self._answer("batch_get_item", params)

    def update_item(self, **params: Any) -> dict[str, Any]:
        return self._answer("update_item", params)

    def transact_write_items(self, **params: Any) -> dict[str, Any]:
        return self._answer("transact_write_items", params)


def enter_lease(store: DynamoDBStateStore) -> None:
    with store.lease("p", "host:1", TTL):
        pass


OPERATIONS: dict[str, Callable[[DynamoDBStateStore], object]] = {
    "load": lambda store: store.load("p"),
    "save": lambda store: store.save(PolicyRecord(policy="p")),
    "policies": lambda store: store.policies(),
    "acks": lambda store: store.acks("p", ["api"]),
    "record_ack": lambda store: store.record_ack("p", Ack(consumer="api", fingerprint=FP, at=T0)),
    "record_run": lambda store: store.record_run("p", T0, None),
    "deployment_id": lambda store: store.deployment_id(),
    "lease": enter_lease,
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto DynamoDB with fake credentials; yields a raw client (no table yet)."""
    fake_aws_environment(monkeypatch)
    atomic_moto_writes(monkeypatch)
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def table(aws: Any) -> Any:
    """The state table, created as the CloudFormation template does; yields a raw client."""
    aws.create_table(**table_definition(TABLE))
    aws.update_time_to_live(
        TableName=TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    return aws


@pytest.fixture
def clock() -> Clock:
    return Clock()


def runner(table: Any, clock: Clock) -> DynamoDBStateStore:
    return DynamoDBStateStore(SETTINGS, client=table, clock=clock)


def raw_item(table: Any, pk: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = table.get_item(
        TableName=TABLE, Key={"pk": {"S": pk}}, ConsistentRead=True
    ).get("Item")
    return item


# -- leases ----------------------------------------------------------------------------


def test_an_expired_lease_is_taken_over_and_its_late_holder_cannot_release_it(
    table: Any, clock: Clock
) -> None:
    first, second, third = (runner(table, clock) for _ in range(3))
    late, successor = ExitStack(), ExitStack()

    late.enter_context(first.lease("p", "host-a:1", timedelta(seconds=60)))
    clock.advance(timedelta(seconds=60))
    with pytest.raises(LeaseHeld):  # held up to and including its last second
        enter_lease(second)
    clock.advance(timedelta(seconds=1))
    successor.enter_context(second.lease("p", "host-b:2", TTL))
    late.close()  # the first runner finishes late: its release must not free the lease

    held = raw_item(table, "lease#p")
    assert held is not None
    assert held["owner"]["S"].startswith("host-b:2#")
    with pytest.raises(LeaseHeld, match="host-b:2"):
        enter_lease(third)
    successor.close()
    assert raw_item(table, "lease#p") is None
    enter_lease(third)


def test_a_refused_lease_names_its_holder_and_when_it_expires(table: Any, clock: Clock) -> None:
    holder, other = runner(table, clock), runner(table, clock)

    with holder.lease("p", "host-a:41", TTL), pytest.raises(LeaseHeld) as caught:
        enter_lease(other)

    message = str(caught.value)
    assert "'p'" in message
    assert "host-a:41#" in message
    assert (T0 + TTL).isoformat() in message
    assert isinstance(caught.value.__cause__, ClientError)


def test_the_lease_item_carries_its_expiry_in_the_ttl_attribute(table: Any, clock: Clock) -> None:
    with runner(table, clock).lease("p", "host:1", TTL):
        item = raw_item(table, "lease#p")

    assert item is not None
    assert set(item) == {"pk", "owner", TTL_ATTRIBUTE, EXPIRY_MS_ATTRIBUTE}
    assert int(item[TTL_ATTRIBUTE]["N"]) == int((T0 + TTL).timestamp())
    assert int(item[EXPIRY_MS_ATTRIBUTE]["N"]) == int((T0 + TTL).timestamp() * 1000)
    ttl = table.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == TTL_ATTRIBUTE


def test_the_table_has_one_string_partition_key_and_on_demand_billing(table: Any) -> None:
    described = table.describe_table(TableName=TABLE)["Table"]

    assert described["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert described["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert table_definition() == {
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    assert table_definition(TABLE) == {"TableName": TABLE, **table_definition()}


def test_a_lease_expires_to_the_millisecond(table: Any, clock: Clock) -> None:
    holder, other = runner(table, clock), runner(table, clock)
    short = timedelta(milliseconds=1500)
    late = ExitStack()
    late.enter_context(holder.lease("p", "host-a:1", short))

    clock.advance(short)
    with pytest.raises(LeaseHeld):  # held up to and including its last millisecond
        enter_lease(other)
    clock.advance(timedelta(milliseconds=1))
    enter_lease(other)
    late.close()


def test_a_lease_an_older_runner_wrote_is_understood_both_ways(table: Any, clock: Clock) -> None:
    """Older runners wrote whole seconds only; a lease made expired through that attribute
    alone (as the crash tests and older runners compare) is expired."""
    table.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": "lease#p"},
            "owner": {"S": "old-host:1#abcd"},
            TTL_ATTRIBUTE: {"N": str(int((T0 + TTL).timestamp()))},
        },
    )
    with pytest.raises(LeaseHeld, match="old-host:1"):
        enter_lease(runner(table, clock))
    clock.advance(TTL + timedelta(seconds=1))
    with runner(table, clock).lease("p", "host:1", TTL):
        table.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "lease#p"}},
            UpdateExpression="SET #exp = :past",
            ExpressionAttributeNames={"#exp": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":past": {"N": "0"}},
        )
        enter_lease(runner(table, clock))  # past by its seconds, whatever its milliseconds


def test_a_lease_whose_release_fails_does_not_hide_the_blocks_own_error(
    table: Any, clock: Clock
) -> None:
    store = runner(table, clock)

    def reconcile() -> None:
        with store.lease("p", "host:1", TTL):
            table.delete_table(TableName=TABLE)  # the release will fail: no table any more
            raise RuntimeError("reconcile failed")

    with pytest.raises(RuntimeError, match="reconcile failed"):
        reconcile()


# -- writes the SDK retries after a lost response ---------------------------------------


def test_writes_the_sdk_repeats_after_a_lost_response_are_not_conflicts(
    table: Any, clock: Clock
) -> None:
    store = DynamoDBStateStore(SETTINGS, client=Recorder(table, repeat_writes=True), clock=clock)

    first = store.save(PolicyRecord(policy="p"))
    second = store.save(first.model_copy(update={"last_error": "x"}))
    with store.lease("p", "host:1", TTL):
        third = store.save(second.model_copy(update={"last_error": "fenced"}))
    store.record_ack("p", Ack(consumer="api", fingerprint=FP, at=T0))
    store.record_ack("p", Ack(consumer="api", replica="r2", fingerprint=FP, at=T0))
    store.record_run("p", T0, "boom")
    made = store.deployment_id()

    assert (first.version, second.version, third.version) == (1, 2, 3)
    assert runner(table, clock).load("p") == third.with_run(runner(table, clock).load("p").run())
    assert raw_item(table, "lease#p") is None
    assert [a.replica for a in store.acks("p", ["api"])] == ["default", "r2"]
    assert store.deployment_id() == made
    with pytest.raises(StateConflict, match="expected version 1, found 3"):
        store.save(first)


def test_a_fenced_save_is_one_transaction_of_a_lease_check_and_the_put(
    table: Any, clock: Clock
) -> None:
    recorder = Recorder(table)
    store = DynamoDBStateStore(SETTINGS, client=recorder, clock=clock)
    with store.lease("p", "host:1", TTL):
        record = store.save(store.load("p"))
        with pytest.raises(StateConflict, match="expected version 0, found 1"):
            store.save(record.model_copy(update={"version": 0, "last_error": "stale"}))
    store.save(record)  # no lease held: a plain put

    reads = ("dynamodb:GetItem", "dynamodb:BatchGetItem")
    writes = [(call, params) for call, params in recorder.calls if call not in reads]
    assert [call for call, _ in writes] == [
        "dynamodb:PutItem",  # the lease taken
        "dynamodb:TransactWriteItems",
        "dynamodb:TransactWriteItems",
        "dynamodb:DeleteItem",  # released
        "dynamodb:PutItem",
    ]
    check, put = writes[1][1]["TransactItems"]
    assert check["ConditionCheck"]["Key"] == {"pk": {"S": "lease#p"}}
    assert check["ConditionCheck"]["ExpressionAttributeValues"][":me"]["S"].startswith("host:1#")
    assert put["Put"]["Item"]["pk"] == {"S": "policy#p"}


def test_a_cancelled_transaction_that_is_no_conflict_is_retryable(table: Any, clock: Clock) -> None:
    cancelled = client_error("TransactionCanceledException", operation="TransactWriteItems")
    cancelled.response["CancellationReasons"] = [{"Code": "None"}, {"Code": "TransactionConflict"}]
    lease_ok: dict[str, Any] = {}
    client = Scripted(lease_ok, cancelled, lease_ok)  # taken, the save, released
    store = DynamoDBStateStore(SETTINGS, client=client, clock=clock)

    with store.lease("p", "host:1", TTL), pytest.raises(StateUnavailable) as caught:
        store.save(PolicyRecord(policy="p"))

    assert caught.value.retryable
    assert "TransactionConflict" in str(caught.value)


def test_a_save_after_the_lease_was_lost_writes_nothing(table: Any, clock: Clock) -> None:
    holder, thief = runner(table, clock), runner(table, clock)
    with holder.lease("p", "host:1", TTL):
        clock.advance(TTL + timedelta(seconds=1))
        with thief.lease("p", "host:2", TTL):
            before = table.scan(TableName=TABLE, ConsistentRead=True)["Items"]
            with pytest.raises(LeaseLost, match="taken over by host:2#") as caught:
                holder.save(PolicyRecord(policy="p"))
            assert table.scan(TableName=TABLE, ConsistentRead=True)["Items"] == before
    assert not caught.value.retryable


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_missing_table_is_a_state_error_naming_it(aws: Any, operation: str) -> None:
    store = DynamoDBStateStore(SETTINGS, client=aws)

    with pytest.raises(StateError) as caught:
        OPERATIONS[operation](store)

    assert type(caught.value) is StateError
    assert not caught.value.retryable
    assert f"table {TABLE!r} does not exist in {REGION}" in str(caught.value)
    assert isinstance(caught.value.__cause__, ClientError)


RETRYABLE = {
    "ProvisionedThroughputExceededException": client_error(
        "ProvisionedThroughputExceededException"
    ),
    "ThrottlingException": client_error("ThrottlingException"),
    "RequestLimitExceeded": client_error("RequestLimitExceeded"),
    "InternalServerError": client_error("InternalServerError", status=500),
    "HTTP 503": client_error("ServiceUnavailable", status=503),
    "unexpected 5xx": client_error("SomethingNew", status=502),
    "connection refused": EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    "read timeout": ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("failure", RETRYABLE.values(), ids=RETRYABLE.keys())
def test_throttling_and_unavailability_are_retryable_state_errors(
    operation: str, failure: Exception
) -> None:
    store = DynamoDBStateStore(SETTINGS, client=Scripted(failure))

    with pytest.raises(StateUnavailable) as caught:
        OPERATIONS[operation](store)

    assert isinstance(caught.value, StateError)
    assert caught.value.retryable
    assert caught.value.__cause__ is failure


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        ("load", "BatchGetItem"),
        ("save", "PutItem"),
        ("policies", "Scan"),
        ("acks", "BatchGetItem"),
        ("record_ack", "UpdateItem"),
        ("record_run", "UpdateItem"),
        ("deployment_id", "GetItem"),
    ],
)
def test_access_denied_says_which_action_was_denied(operation: str, action: str) -> None:
    denied = client_error("AccessDeniedException", operation=action)
    store = DynamoDBStateStore(SETTINGS, client=Scripted(denied))

    with pytest.raises(StateError) as caught:
        OPERATIONS[operation](store)

    assert not caught.value.retryable
    assert f"access denied: the role lacks dynamodb:{action}" in str(caught.value)
    assert caught.value.__cause__ is denied


def test_a_malformed_item_is_a_state_error(table: Any) -> None:
    table.put_item(
        TableName=TABLE, Item={"pk": {"S": "policy#p"}, "version": {"N": "1"}, "record": {"S": "{"}}
    )
    table.put_item(TableName=TABLE, Item={"pk": {"S": "ack#p#api"}, "at": {"S": "yesterday"}})
    store = runner(table, Clock())

    with pytest.raises(StateError, match="'policy#p' is malformed \\(the record is not JSON\\)"):
        store.load("p")
    with pytest.raises(StateError, match="'ack#p#api' is malformed"):
        store.acks("p", ["api"])


@pytest.mark.parametrize(
    "item",
    [
        {"pk": {"S": "policy#p"}, "version": {"N": "1"}, "record": {"S": "[1, 2]"}},
        {"pk": {"S": "policy#p"}, "version": {"N": "1"}, "record": {"N": "1"}},
        {"pk": {"S": "policy#p"}, "version": {"S": "one"}, "record": {"S": "{}"}},
        {"pk": {"S": "policy#p"}, "record": {"S": '{"generations": 3}'}},
        {"pk": {"S": "run#p"}, "last_run_at": {"N": "1"}},
        {"pk": {"S": "meta#deployment"}, "id": {"S": "not an id!"}},
        {"pk": {"S": "ack#p#api"}, "replicas": {"M": {"r": {"S": "x"}}}},
        {"pk": {"S": "ack#p#api"}, "replicas": {"M": {"r": {"M": {"at": {"S": "now"}}}}}},
    ],
    ids=[
        "record not an object",
        "record not a string",
        "version not a number",
        "no version",
        "run not a string",
        "deployment id",
        "replica not a map",
        "replica at",
    ],
)
def test_garbage_in_an_item_is_one_line_naming_the_item_and_others_still_load(
    table: Any, item: dict[str, Any]
) -> None:
    store = runner(table, Clock())
    healthy = store.save(PolicyRecord(policy="healthy"))
    store.record_ack("healthy", Ack(consumer="api", fingerprint=FP, at=T0))
    table.put_item(TableName=TABLE, Item=item)

    key = item["pk"]["S"]
    read: Callable[[], object] = {
        "ack#": lambda: store.acks("p", ["api"]),
        "meta": store.deployment_id,
    }.get(key[:4], lambda: store.load("p"))

    with pytest.raises(StateError) as caught:
        read()

    assert type(caught.value) is StateError
    assert f"table {TABLE!r}: item {item['pk']['S']!r} is malformed (" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert store.load("healthy") == healthy
    assert len(store.acks("healthy", ["api"])) == 1


def test_a_name_that_would_make_keys_ambiguous_is_refused() -> None:
    store = DynamoDBStateStore(SETTINGS, client=Scripted({}))

    with pytest.raises(StateError, match="cannot be part of a DynamoDB state key"):
        store.load("a#b")
    with pytest.raises(StateError, match="cannot be part of a DynamoDB state key"):
        store.record_ack("a", Ack(consumer="b#c", fingerprint=FP, at=T0))


def test_without_a_region_anywhere_building_the_client_is_a_state_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_aws_environment(monkeypatch)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    store = DynamoDBStateStore(SETTINGS.model_copy(update={"region": None}))

    with pytest.raises(StateError, match="client for table 'bridge-state-it' cannot be built"):
        store.load("p")


# -- acknowledgements ------------------------------------------------------------------


def test_reading_acks_without_the_consumer_list_is_refused() -> None:
    store = DynamoDBStateStore(SETTINGS, client=Scripted({}))

    with pytest.raises(StateError, match="pass the consumers of 'p'"):
        store.acks("p")


def ack_item(consumer: str) -> dict[str, Any]:
    return {
        "pk": {"S": ack_key("p", consumer)},
        "fingerprint": {"S": FP},
        "at": {"S": T0.isoformat()},
    }


def test_unprocessed_batch_keys_are_retried_with_backoff() -> None:
    unprocessed = {TABLE: {"Keys": [{"pk": {"S": ack_key("p", "worker")}}]}}
    client = Scripted(
        {"Responses": {TABLE: [ack_item("api")]}, "UnprocessedKeys": unprocessed},
        {"Responses": {TABLE: []}, "UnprocessedKeys": unprocessed},
        {"Responses": {TABLE: [ack_item("worker")]}, "UnprocessedKeys": {}},
    )
    pauses: list[float] = []
    store = DynamoDBStateStore(SETTINGS, client=client, sleep=pauses.append)

    acks = store.acks("p", ["api", "worker", "cron"])

    assert [a.consumer for a in acks] == ["api", "worker"]
    assert [method for method, _ in client.calls] == ["batch_get_item"] * 3
    assert client.calls[1][1]["RequestItems"] == unprocessed
    assert pauses == [0.05, 0.1]


def test_keys_left_unprocessed_on_every_attempt_are_a_retryable_error() -> None:
    unprocessed = {TABLE: {"Keys": [{"pk": {"S": ack_key("p", "api")}}]}}
    client = Scripted({"Responses": {TABLE: []}, "UnprocessedKeys": unprocessed})
    store = DynamoDBStateStore(SETTINGS, client=client, sleep=lambda _: None)

    with pytest.raises(StateUnavailable, match="1 keys still unprocessed"):
        store.acks("p", ["api"])

    assert len(client.calls) == BATCH_ATTEMPTS


def test_acks_are_read_in_batches_of_100_distinct_keys(table: Any) -> None:
    consumers = [f"app-{i:03d}" for i in range(250)]
    recorder = Recorder(table)
    store = DynamoDBStateStore(SETTINGS, client=recorder)
    for consumer in consumers[::50]:
        store.record_ack("p", Ack(consumer=consumer, fingerprint=FP, at=T0))

    acks = store.acks("p", [*consumers, *consumers[:10]])  # repeats are tolerated

    assert [a.consumer for a in acks] == consumers[::50]
    batches = [
        [key["pk"]["S"] for key in params["RequestItems"][TABLE]["Keys"]]
        for action, params in recorder.calls
        if action == "dynamodb:BatchGetItem"
    ]
    assert [len(batch) for batch in batches] == [100, 100, 50]
    assert all(len(set(batch)) == len(batch) for batch in batches)


# -- IAM -------------------------------------------------------------------------------


def test_acks_are_updates_of_the_one_item_leading_keys_confines_the_consumer_to(
    table: Any,
) -> None:
    recorder = Recorder(table)
    store = DynamoDBStateStore(SETTINGS, client=recorder)

    for replica in ("pod-a", "pod-b", "pod-a"):
        store.record_ack(
            "payments", Ack(consumer="api-gateway", replica=replica, fingerprint=FP, at=T0)
        )

    assert recorder.actions() == set(CONSUMER_ACK_ACTIONS) == {"dynamodb:UpdateItem"}
    # The IAM condition ``dynamodb:LeadingKeys = ["ack#payments#api-gateway"]`` admits
    # exactly these requests, and no other consumer's or policy's item.
    assert {params["Key"]["pk"]["S"] for _, params in recorder.calls} == {
        "ack#payments#api-gateway"
    }
    assert ack_key("payments", "api-gateway") == "ack#payments#api-gateway"
    assert len(recorder.calls) == 4  # the first ack creates the map: one try, one create
    item = raw_item(table, "ack#payments#api-gateway")
    assert item is not None
    assert set(item) == {"pk", "replicas"}
    assert set(item["replicas"]["M"]) == {"pod-a", "pod-b"}


def test_reading_a_record_is_what_a_consumer_is_granted(table: Any) -> None:
    recorder = Recorder(table)
    store = DynamoDBStateStore(SETTINGS, client=recorder)

    store.load("payments")

    assert recorder.actions() == set(CONSUMER_READ_ACTIONS)
    [(_, params)] = recorder.calls
    keys = [key["pk"]["S"] for key in params["RequestItems"][TABLE]["Keys"]]
    assert keys == ["policy#payments", "run#payments"]  # LeadingKeys of the consumer policy


def test_the_replicas_of_one_consumer_stay_under_the_item_size_limit(table: Any) -> None:
    store = runner(table, Clock())
    for n in range(REPLICAS_KEPT + 2):
        replica = f"{n:03d}" + "r" * 125
        ack = Ack(consumer="api", replica=replica, fingerprint=FP, at=T0, proof="p" * PROOF_MAX)
        store.record_ack("p", ack)

    item = raw_item(table, ack_key("p", "api"))
    assert item is not None
    assert len(item["replicas"]["M"]) == REPLICAS_KEPT
    assert len(json.dumps(item)) < 400_000  # an upper bound of DynamoDB's item size


def test_an_ack_item_an_older_version_wrote_is_replica_default_and_keeps_working(
    table: Any,
) -> None:
    table.put_item(TableName=TABLE, Item=ack_item("api"))
    store = runner(table, Clock())

    assert store.acks("p", ["api"]) == [Ack(consumer="api", fingerprint=FP, at=T0)]
    store.record_ack("p", Ack(consumer="api", replica="pod-a", fingerprint=FP, at=T0))
    store.record_ack("p", Ack(consumer="worker", fingerprint=FP, at=T0))

    acks = store.acks("p", ["api", "worker"])
    assert [(a.consumer, a.replica) for a in acks] == [
        ("api", "default"),
        ("api", "pod-a"),
        ("worker", "default"),
    ]
    later = T0 + timedelta(hours=1)
    store.record_ack("p", Ack(consumer="api", fingerprint=FP, at=later))  # replaces the old one
    assert [a.at for a in store.acks("p", ["api"]) if a.replica == "default"] == [later]


def test_a_table_an_older_version_wrote_loads_unchanged(table: Any) -> None:
    old_record = '{"policy": "p", "generations": [], "last_run_at": "2025-03-01T09:00:00Z"}'
    table.put_item(
        TableName=TABLE,
        Item={"pk": {"S": "policy#p"}, "version": {"N": "7"}, "record": {"S": old_record}},
    )
    store = runner(table, Clock())

    record = store.load("p")

    assert record == PolicyRecord(policy="p", version=7, last_run_at=T0)
    assert record.history == () and record.last_success_at is None
    assert store.deployment_id() == "default"  # what that version marked its keys with
    assert store.save(record).version == 8


def test_a_runner_calls_exactly_the_listed_iam_actions(table: Any, clock: Clock) -> None:
    recorder = Recorder(table)
    store = DynamoDBStateStore(SETTINGS, client=recorder, clock=clock)

    store.deployment_id()
    with store.lease("p", "host:1", TTL):
        record = store.save(store.load("p"))
        store.acks("p", ["api"])
        store.policies()
        with pytest.raises(StateConflict):
            store.save(record.model_copy(update={"version": 0, "last_error": "stale"}))
        store.record_run("p", T0, None)
    store.save(store.load("p"))
    store.record_ack("p", Ack(consumer="api", fingerprint=FP, at=T0))

    assert recorder.actions() == set(DYNAMODB_ACTIONS)
    assert DYNAMODB_ACTIONS == (
        "dynamodb:BatchGetItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
    )
    port = {name for name, _ in inspect.getmembers(DynamoDBClient) if not name.startswith("_")}
    assert port == set(METHODS.values())


# -- a real HTTP round trip ------------------------------------------------------------


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serve_moto(monkeypatch) as url:
        yield url


def test_the_store_opened_from_settings_works_against_a_moto_server(moto_server: str) -> None:
    admin = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server)
    admin.create_table(**table_definition("bridge-state-server"))
    settings = DynamoDBStateSettings(
        backend="dynamodb", table="bridge-state-server", region=REGION, endpoint_url=moto_server
    )
    with Connections() as connections:
        store = open_state(settings, connections)
        assert isinstance(getattr(store, "inner", None), DynamoDBStateStore)  # retried

        saved = store.save(store.load("p").model_copy(update={"last_run_at": T0}))
        with store.lease("p", "host:1", TTL), pytest.raises(LeaseHeld):
            enter_lease(DynamoDBStateStore(settings))
        store.record_ack("p", Ack(consumer="api", fingerprint=FP, at=T0))
        store.close()  # the client is the connection's: closing the store leaves it open

        assert store.load("p") == saved
        assert store.policies() == ["p"]
        acks = store.acks("p", ["api", "worker"])
        assert acks == [Ack(consumer="api", fingerprint=FP, at=T0)]
        assert connections.connection("aws").clients.built == 1  # one client for it all
