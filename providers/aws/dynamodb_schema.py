"""What the DynamoDB state backend stores and calls: the table and its items, the IAM
actions, the client, how items are written and read, how SDK failures map onto
``StateError``. Apart from the store (``providers.aws.dynamodb``, which decides what to
write when) so that templates, IAM tests and docs can read the table and the actions.

One table, partition key ``pk`` (string), no sort key, on-demand billing, DynamoDB TTL on
``expires_at_epoch``. Five kinds of item live in it::

    pk                        attributes
    ------------------------  ---------------------------------------------------------------
    policy#<policy>           version (N)   the compare-and-swap counter
                              record (S)    the PolicyRecord as JSON, minus its version
                              updated_at (S), write_id (S: a random token per save)
    run#<policy>              last_run_at (S), last_error (S), last_success_at (S): ISO 8601
    lease#<policy>            owner (S)     the holder: owner string + a per-acquisition token
                              expires_at_epoch (N: Unix seconds; also the TTL attribute)
                              expires_at_ms (N: the same instant in milliseconds)
    ack#<policy>#<consumer>   replicas (M)  replica -> {fingerprint, at, proof} (S each)
                              fingerprint (S), at (S): an ack of an older version, read as
                                            replica "default" (unless the map has one)
    meta#deployment           id (S)        the deployment id

A consumer's replicas share one item, so ``dynamodb:LeadingKeys`` confines the consumer with
an exact key; ``REPLICAS_KEPT`` entries of at most 128 + ``PROOF_MAX`` characters keep it
well under DynamoDB's 400 KB item limit. A lease's expiry is past when either expiry
attribute says so: older runners wrote (and compare) whole seconds only.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from bridge.config.model import DynamoDBStateSettings
from bridge.errors import StateConflict, StateError
from bridge.state.model import DEFAULT_REPLICA, Ack, PolicyRecord, Run
from providers.aws.sdk import SDK_ERRORS, AwsClients, classify

# The SDK method behind each API call the backend makes; it calls nothing else.
METHODS = {
    "BatchGetItem": "batch_get_item",
    "DeleteItem": "delete_item",
    "GetItem": "get_item",
    "PutItem": "put_item",
    "Scan": "scan",
    "TransactWriteItems": "transact_write_items",
    "UpdateItem": "update_item",
}
# The IAM actions each call needs. A transaction has no action of its own: IAM checks
# each of its parts (here a ConditionCheck of the lease and a Put of the record).
IAM_ACTIONS: dict[str, tuple[str, ...]] = {
    **{call: (f"dynamodb:{call}",) for call in METHODS},
    "TransactWriteItems": ("dynamodb:ConditionCheckItem", "dynamodb:PutItem"),
}
DYNAMODB_ACTIONS: tuple[str, ...] = tuple(
    sorted({a for acts in IAM_ACTIONS.values() for a in acts})
)
"""Every IAM action a runner needs on the state table (least privilege)."""
CONSUMER_ACK_ACTIONS: tuple[str, ...] = ("dynamodb:UpdateItem",)
"""What ``record_ack`` needs; confine it with ``dynamodb:LeadingKeys`` to ``ack_key``."""
CONSUMER_READ_ACTIONS: tuple[str, ...] = ("dynamodb:BatchGetItem",)
"""What ``load`` needs (the ``ack`` command checks the key against the policy's record);
confine it with ``dynamodb:LeadingKeys`` to ``policy_key`` and ``run_key``."""

POLICY_PREFIX, LEASE_PREFIX, ACK_PREFIX, RUN_PREFIX = "policy#", "lease#", "ack#", "run#"
DEPLOYMENT_KEY = "meta#deployment"
TTL_ATTRIBUTE = "expires_at_epoch"  # whole seconds, for DynamoDB TTL (and older runners)
EXPIRY_MS_ATTRIBUTE = "expires_at_ms"  # the same expiry in milliseconds, for short TTLs
REPLICAS_ATTRIBUTE = "replicas"
RETURN_OLD: dict[str, Any] = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
EXPIRY_NAMES = {"#owner": "owner", "#exp": TTL_ATTRIBUTE, "#ms": EXPIRY_MS_ATTRIBUTE}
# What reading a damaged item raises (pydantic's ValidationError is a ValueError).
PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)
_RUN_FIELDS = ("last_run_at", "last_error", "last_success_at")


class DynamoDBClient(Protocol):
    """The few calls of a boto3 DynamoDB client the backend uses (one per action above)."""

    def get_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def put_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def scan(self, **kwargs: Any) -> dict[str, Any]: ...
    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def transact_write_items(self, **kwargs: Any) -> dict[str, Any]: ...
    def update_item(self, **kwargs: Any) -> dict[str, Any]: ...


def table_definition(table: str | None = None) -> dict[str, Any]:
    """The ``CreateTable`` arguments of the state table (with ``TableName`` when given).

    Without a name these are also the CloudFormation ``AWS::DynamoDB::Table`` properties
    the template must declare. TTL is a separate call: ``update_time_to_live(TableName=...,
    TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})``.
    """
    definition: dict[str, Any] = {
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    return definition if table is None else {"TableName": table, **definition}


# -- keys and values -------------------------------------------------------------------


def policy_key(policy: str) -> str:
    """The partition key of ``policy``'s record."""
    return POLICY_PREFIX + _part(policy)


def lease_key(policy: str) -> str:
    """The partition key of ``policy``'s lease."""
    return LEASE_PREFIX + _part(policy)


def run_key(policy: str) -> str:
    """The partition key of ``policy``'s last run (apart from the record: no CAS race)."""
    return RUN_PREFIX + _part(policy)


def ack_key(policy: str, consumer: str) -> str:
    """The partition key of a consumer's acks (all its replicas in one item): what
    ``dynamodb:LeadingKeys`` grants it."""
    return f"{ACK_PREFIX}{_part(policy)}#{_part(consumer)}"


def _part(name: str) -> str:
    # Policy and consumer names never hold '#' (the configuration forbids it); refusing it
    # here keeps every key unambiguous, which the IAM confinement of acks relies on.
    if not name or "#" in name:
        raise StateError(f"name {name!r} cannot be part of a DynamoDB state key")
    return name


def s(value: str) -> dict[str, str]:
    """A DynamoDB string attribute value."""
    return {"S": value}


def n(value: int) -> dict[str, str]:
    """A DynamoDB number attribute value."""
    return {"N": str(value)}


# -- items -----------------------------------------------------------------------------


def write_digest(version: int, text: str) -> str:
    """What a save's ``write_id`` carries besides the store's token: its version and text."""
    return hashlib.sha256(f"{version}:{text}".encode()).hexdigest()[:16]


def read_record(policy: str, item: dict[str, Any]) -> PolicyRecord:
    """The record in a ``policy#`` item. Raises one of ``PARSE_ERRORS`` if it is damaged."""
    data = json.loads(item["record"]["S"])
    if not isinstance(data, dict):
        raise TypeError("the record is not a JSON object")
    version = int(item["version"]["N"])
    return PolicyRecord.model_validate({**data, "policy": policy, "version": version})


def run_update(at: datetime, error: str | None) -> dict[str, Any]:
    """The UpdateItem arguments recording a run: ``last_success_at`` only on success."""
    names = {"#run": "last_run_at", "#err": "last_error"}
    values = {":at": s(Run(last_run_at=at).model_dump(mode="json")["last_run_at"])}
    if error is None:
        names["#ok"] = "last_success_at"
        expression = "SET #run = :at, #ok = :at REMOVE #err"
    else:
        values[":err"] = s(error)
        expression = "SET #run = :at, #err = :err"
    return {
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def read_run(item: dict[str, Any]) -> Run:
    """The run in a ``run#`` item. Raises one of ``PARSE_ERRORS`` if it is damaged."""
    return Run.model_validate({name: item[name]["S"] for name in _RUN_FIELDS if name in item})


def ack_entry(ack: Ack) -> dict[str, Any]:
    """An ack as the value of its replica in the consumer item's map."""
    fields = ack.model_dump(mode="json", include={"fingerprint", "at", "proof"})
    return {"M": {name: s(value) for name, value in fields.items() if value is not None}}


def read_ack(consumer: str, replica: str, entry: dict[str, Any]) -> Ack:
    """An ack from a replica's entry. Raises one of ``PARSE_ERRORS`` if it is damaged."""
    fields = entry["M"]
    strings = {name: fields[name]["S"] for name in ("fingerprint", "at", "proof") if name in fields}
    return Ack.model_validate({"consumer": consumer, "replica": replica, **strings})


def read_acks(consumer: str, item: dict[str, Any]) -> list[Ack]:
    """Every replica's ack in an ``ack#`` item, an older version's as replica ``default``.
    Raises one of ``PARSE_ERRORS`` if it is damaged."""
    replicas = item.get(REPLICAS_ATTRIBUTE, {"M": {}})["M"]
    acks = [read_ack(consumer, replica, entry) for replica, entry in replicas.items()]
    if DEFAULT_REPLICA not in replicas and ("fingerprint" in item or "at" in item):
        acks.append(read_ack(consumer, DEFAULT_REPLICA, {"M": item}))
    return acks


def lease_item(key: str, owner: str, until: datetime) -> dict[str, Any]:
    """The lease item of holder ``owner`` (its token) until ``until``."""
    return {
        "pk": s(key),
        "owner": s(owner),
        TTL_ATTRIBUTE: n(math.ceil(until.timestamp())),
        EXPIRY_MS_ATTRIBUTE: n(math.ceil(until.timestamp() * 1000)),
    }


def now_values(now: datetime) -> dict[str, Any]:
    """``:now`` and ``:now_ms``, to compare lease expiries with."""
    return {
        ":now": n(math.floor(now.timestamp())),
        ":now_ms": n(math.floor(now.timestamp() * 1000)),
    }


def lease_gone(item: dict[str, Any]) -> str:
    """Why a lease item no longer fences our writes, from what DynamoDB returned of it."""
    holder = item.get("owner", {}).get("S")
    return f"the lease was taken over by {holder}" if holder else "the lease expired or is gone"


def conflict(record: PolicyRecord, found: dict[str, Any]) -> StateConflict:
    """The conflict of a save of ``record`` that met the stored item ``found``."""
    version = found.get("version", {}).get("N", "unknown")
    return StateConflict(
        f"policy {record.policy!r}: expected version {record.version}, found {version}"
    )


def describe_damage(exc: BaseException) -> str:
    """A failure to read an item, in a few words and without the item's content."""
    if isinstance(exc, ValidationError):
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else error["msg"]
    if isinstance(exc, json.JSONDecodeError):
        return "the record is not JSON"
    if isinstance(exc, KeyError):
        return f"no attribute {exc.args[0]!r} of the expected type"
    return str(exc) if isinstance(exc, TypeError) else type(exc).__name__


# -- errors ----------------------------------------------------------------------------


class StateUnavailable(StateError):
    """DynamoDB throttled the request, failed on its side, or could not be reached."""

    retryable = True


class Cancelled(Exception):
    """A transaction was cancelled; ``reasons`` has one ``(code, item)`` per part, in order
    (code ``"None"`` for a part that was fine). Internal: the store always maps it."""

    def __init__(self, error: ClientError) -> None:
        super().__init__("transaction cancelled")
        self.error = error
        self.reasons: list[tuple[str, dict[str, Any]]] = [
            (str(reason.get("Code") or "None"), reason.get("Item") or {})
            for reason in error.response.get("CancellationReasons") or []
        ]

    def code(self, part: int) -> str:
        return self.reasons[part][0] if part < len(self.reasons) else "None"

    def item(self, part: int) -> dict[str, Any]:
        return self.reasons[part][1] if part < len(self.reasons) else {}


class ConditionFailed(Exception):
    """A ConditionExpression was false; ``item`` is the stored item when DynamoDB sent it
    (``ReturnValuesOnConditionCheckFailure=ALL_OLD``). Internal: the store always maps it."""

    def __init__(self, error: ClientError) -> None:
        super().__init__("condition failed")
        self.error = error
        self.item: dict[str, Any] = error.response.get("Item") or {}


def map_error(
    exc: Exception, *, action: str, table: str, key: str, region: str | None
) -> Exception:
    """The ``StateError`` (or ``ConditionFailed``, ``Cancelled``) for an SDK failure of
    ``action`` on ``key``, classified by ``providers.aws.sdk.classify`` like every AWS
    failure. The caller raises it ``from exc``.
    """
    where = f"DynamoDB {action} on table {table!r} ({key})"
    failure = classify(exc)
    if failure.kind == "condition" and isinstance(exc, ClientError):
        return ConditionFailed(exc)
    if failure.code == "TransactionCanceledException" and isinstance(exc, ClientError):
        return Cancelled(exc)
    if failure.code == "TransactionInProgressException":
        return StateUnavailable(f"{where}: a transaction on the item is in progress; retry later")
    if failure.kind == "throttled":
        return StateUnavailable(f"{where}: throttled ({failure.code}); retry later")
    if failure.kind == "unavailable":
        reason = "unreachable" if not isinstance(exc, ClientError) else "DynamoDB failed"
        return StateUnavailable(f"{where}: {reason} ({failure.text}); retry later")
    if failure.kind == "not_found":
        fix = "create it from the CloudFormation template, or check state.table and state.region"
        found_in = region or "the default region"
        return StateError(
            f"DynamoDB table {table!r} does not exist in {found_in} (or is not active yet): {fix}"
        )
    if failure.kind == "denied":
        needed = " or ".join(IAM_ACTIONS.get(action, (f"dynamodb:{action}",)))
        return StateError(f"{where}: access denied: the role lacks {needed}: {failure.text}")
    if failure.kind == "credentials":
        return StateError(f"{where}: AWS rejected the credentials ({failure.code})")
    return StateError(f"{where}: {failure.text}")


# -- the client ------------------------------------------------------------------------


class Table:
    """The state table as the store calls it: one client (injected, shared, or built on
    first use and closed by ``close``), and every SDK failure mapped by ``map_error``.

    Args:
        settings: The table, and optionally its region and endpoint.
        client: A DynamoDB client (tests, or one shared by the caller).
        clients: The connection's shared clients, to build the client from.
    """

    def __init__(
        self,
        settings: DynamoDBStateSettings,
        client: DynamoDBClient | None,
        clients: AwsClients | None,
    ) -> None:
        self.settings = settings
        self.name = settings.table
        self._client = client
        self._clients = clients
        self._owned: AwsClients | None = None  # clients this table built, closed by close()
        self._lock = threading.Lock()

    def call(self, action: str, key: str, /, **params: Any) -> dict[str, Any]:
        """Call ``action`` about item ``key`` (named in messages); map the SDK's failures.

        Raises:
            ConditionFailed: the request's ConditionExpression was false.
            Cancelled: the transaction was cancelled (its reasons say why).
            StateError: anything else went wrong (``StateUnavailable`` when retryable).
        """
        method = getattr(self._get_client(), METHODS[action])
        if action not in ("BatchGetItem", "TransactWriteItems"):  # tables named inside
            params["TableName"] = self.name
        try:
            response: dict[str, Any] = method(**params)
        except SDK_ERRORS as exc:
            region = self.settings.region
            raise map_error(exc, action=action, table=self.name, key=key, region=region) from exc
        return response

    def close(self) -> None:
        """Close the clients this table built; injected or shared ones are their owner's."""
        with self._lock:
            owned, self._owned = self._owned, None
            if owned is not None:
                self._client = None
                owned.close()

    def _get_client(self) -> DynamoDBClient:
        with self._lock:
            if self._client is None:
                clients = self._clients
                if clients is None:
                    clients = self._owned = AwsClients()
                try:
                    self._client = clients.client(
                        "dynamodb", self.settings.region, self.settings.endpoint_url
                    )
                except BotoCoreError as exc:  # e.g. no region configured anywhere
                    raise StateError(
                        f"DynamoDB client for table {self.name!r} cannot be built: "
                        f"{classify(exc).text}"
                    ) from exc
            return self._client
