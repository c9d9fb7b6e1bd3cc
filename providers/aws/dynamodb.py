"""The DynamoDB state backend: for Lambda and for fleets of runners that share no disk.

One table, partition key ``pk`` (string), no sort key, on-demand billing, with DynamoDB TTL
on ``expires_at_epoch`` (``table_definition()`` gives the CreateTable arguments; the
CloudFormation template creates the same table). Three kinds of item live in it::

    pk                        attributes
    ------------------------  ---------------------------------------------------------------
    policy#<policy>           version (N)   the compare-and-swap counter
                              record (S)    the PolicyRecord as JSON, minus its version
                              updated_at (S), write_id (S: a random token per save)
    lease#<policy>            owner (S)     the holder: the runner's owner string + a token
                              expires_at_epoch (N: Unix seconds; also the TTL attribute)
    ack#<policy>#<consumer>   fingerprint (S), at (S: ISO 8601)

* **Compare-and-swap**: ``save`` is a PutItem conditioned on ``attribute_not_exists(pk)``
  (a new policy) or on the stored version equalling the one read. When the SDK retries a
  write whose response was lost, the condition fails against our own write; ``write_id``
  recognises that case, so it is not reported as a conflict.
* **Leases** are items with an expiry, taken by a conditional PutItem (absent, expired, or
  already ours) and released by a DeleteItem conditioned on still being ours, so a runner
  that outlived its lease never deletes its successor's. Runners compare expiries with their
  own clocks: keep the lease TTL well above clock skew and well inside the Lambda timeout.
  A runner that dies leaves its lease to expire; TTL sweeps the item up later.
* **Acks** are one item per consumer, so IAM can confine a consumer to its own item::

      {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "<table arn>",
       "Condition": {"ForAllValues:StringEquals": {
           "dynamodb:LeadingKeys": ["ack#<policy>#<consumer>"]}}}

  ``record_ack`` is that one unconditional PutItem of ``pk``, ``fingerprint`` and ``at``.
  The price: acks are read by key, so ``acks`` needs the consumer list.

No item ever holds key material: records carry ids, short keys and fingerprints only.

Errors (all ``StateError``, each chained to the SDK's exception)::

    StateError                  missing table, access denied, malformed item, bad request
    ├── StateConflict           the compare-and-swap lost (retryable)
    ├── LeaseHeld               another runner holds the lease (names it and its expiry)
    └── StateUnavailable        throttled, 5xx, or unreachable (retryable)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError

from bridge.config.model import DynamoDBStateSettings
from bridge.errors import LeaseHeld, StateConflict, StateError
from bridge.state.model import Ack, PolicyRecord
from providers.aws.dynamodb_schema import (
    CONSUMER_ACK_ACTIONS,
    DYNAMODB_ACTIONS,
    METHODS,
    POLICY_PREFIX,
    TTL_ATTRIBUTE,
    ConditionFailed,
    DynamoDBClient,
    StateUnavailable,
    ack_key,
    lease_key,
    map_error,
    n,
    policy_key,
    s,
    table_definition,
)
from providers.aws.sdk import SDK_ERRORS, AwsClients, classify

__all__ = [
    "CONSUMER_ACK_ACTIONS",
    "DYNAMODB_ACTIONS",
    "DynamoDBClient",
    "DynamoDBStateStore",
    "StateUnavailable",
    "table_definition",
]

BATCH_SIZE = 100  # BatchGetItem's limit per request
BATCH_ATTEMPTS = 5  # tries for keys DynamoDB returns as unprocessed
BATCH_BACKOFF = 0.05  # seconds before the first retry; doubles each time
_RETURN_OLD: dict[str, Any] = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}


class DynamoDBStateStore:
    """Policy records, leases and acks in one DynamoDB table.

    Args:
        settings: The table, and optionally its region and endpoint.
        client: A DynamoDB client (tests, or one shared by the caller); by default a boto3
            client is built on first use.
        clock: The current instant, for lease expiry (tests move it); default UTC now.
        sleep: Pause between retries of unprocessed batch keys (tests skip it).
    """

    def __init__(
        self,
        settings: DynamoDBStateSettings,
        client: DynamoDBClient | None = None,
        clock: Callable[[], datetime] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clients: AwsClients | None = None,
    ) -> None:
        self.settings = settings
        self.table = settings.table
        self._client = client
        self._clients = clients  # the connection's shared clients; else built on first use
        self._owned: AwsClients | None = None  # clients this store built, closed by close()
        self._client_lock = threading.Lock()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._token = secrets.token_hex(8)

    # -- records -----------------------------------------------------------------------

    def load(self, policy: str) -> PolicyRecord:
        key = policy_key(policy)
        item = self._call("GetItem", key, Key={"pk": s(key)}, ConsistentRead=True).get("Item")
        if item is None:
            return PolicyRecord(policy=policy)
        try:
            data = json.loads(item["record"]["S"])
            version = int(item["version"]["N"])
            return PolicyRecord.model_validate({**data, "policy": policy, "version": version})
        except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError too
            raise StateError(f"DynamoDB table {self.table!r}: item {key!r} is malformed") from exc

    def save(self, record: PolicyRecord) -> PolicyRecord:
        key = policy_key(record.policy)
        stored = record.model_copy(update={"version": record.version + 1})
        text = stored.model_dump_json(exclude={"version"})
        item = {
            "pk": s(key),
            "version": n(stored.version),
            "record": s(text),
            "updated_at": s(self._clock().isoformat()),
            # This store's token and the content at this version: a save the engine retries
            # after a lost response recognises its own write instead of reporting a
            # conflict, while another runner's identical write is still a conflict.
            "write_id": s(f"{self._token}:{_digest(stored.version, text)}"),
        }
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if record.version == 0
            else {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": n(record.version)},
            }
        )
        try:
            self._call("PutItem", key, Item=item, **condition, **_RETURN_OLD)
        except ConditionFailed as failed:
            if failed.item.get("write_id") == item["write_id"]:
                return stored  # our own write, retried by the SDK after a lost response
            found = failed.item.get("version", {}).get("N", "unknown")
            raise StateConflict(
                f"policy {record.policy!r}: expected version {record.version}, found {found}"
            ) from failed.error
        return stored

    def policies(self) -> list[str]:
        names: list[str] = []
        page_from: dict[str, Any] | None = None
        while True:
            page = self._call(
                "Scan",
                POLICY_PREFIX + "*",
                FilterExpression="begins_with(pk, :prefix)",
                ProjectionExpression="pk",
                ExpressionAttributeValues={":prefix": s(POLICY_PREFIX)},
                ConsistentRead=True,
                **({"ExclusiveStartKey": page_from} if page_from else {}),
            )
            names += [item["pk"]["S"][len(POLICY_PREFIX) :] for item in page.get("Items", [])]
            page_from = page.get("LastEvaluatedKey")
            if not page_from:
                return sorted(names)

    # -- acknowledgements --------------------------------------------------------------

    def record_ack(self, policy: str, ack: Ack) -> None:
        """One unconditional PutItem of the consumer's own item: all its IAM role needs."""
        key = ack_key(policy, ack.consumer)
        at = ack.model_dump(mode="json")["at"]
        item = {"pk": s(key), "fingerprint": s(ack.fingerprint), "at": s(at)}
        self._call("PutItem", key, Item=item)

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> dict[str, Ack]:
        if consumers is None:
            raise StateError(
                "the DynamoDB state backend keeps one ack item per consumer (so IAM can "
                "confine each consumer to its own) and reads them by key: pass the consumers "
                f"of policy {policy!r}"
            )
        wanted = {ack_key(policy, consumer): consumer for consumer in dict.fromkeys(consumers)}
        keys = list(wanted)  # BatchGetItem refuses a request that repeats a key
        found: dict[str, Ack] = {}
        for start in range(0, len(keys), BATCH_SIZE):
            for item in self._batch_get(keys[start : start + BATCH_SIZE]):
                consumer = wanted[item["pk"]["S"]]
                found[consumer] = self._ack(consumer, item)
        return {consumer: found[consumer] for consumer in wanted.values() if consumer in found}

    def _ack(self, consumer: str, item: dict[str, Any]) -> Ack:
        try:
            fields = {"fingerprint": item["fingerprint"]["S"], "at": item["at"]["S"]}
            return Ack.model_validate({"consumer": consumer, **fields})
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(
                f"DynamoDB table {self.table!r}: item {item['pk']['S']!r} is malformed"
            ) from exc

    def _batch_get(self, keys: list[str]) -> list[dict[str, Any]]:
        """The items of ``keys`` (at most 100), retrying the ones DynamoDB leaves unprocessed."""
        request: dict[str, Any] = {
            self.table: {
                "Keys": [{"pk": s(key)} for key in keys],
                "ConsistentRead": True,
                "ProjectionExpression": "pk, #fp, #at",
                "ExpressionAttributeNames": {"#fp": "fingerprint", "#at": "at"},
            }
        }
        items: list[dict[str, Any]] = []
        for attempt in range(BATCH_ATTEMPTS):
            if attempt:
                self._sleep(BATCH_BACKOFF * 2 ** (attempt - 1))
            response = self._call("BatchGetItem", keys[0], RequestItems=request)
            items += response.get("Responses", {}).get(self.table, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
        left = len(request.get(self.table, {}).get("Keys", []))
        raise StateUnavailable(
            f"DynamoDB BatchGetItem on table {self.table!r}: {left} ack keys still unprocessed "
            f"after {BATCH_ATTEMPTS} attempts (throttled); retry later"
        )

    # -- leases ------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, policy: str, owner: str, ttl: timedelta) -> Iterator[None]:
        # A token per acquisition: two stores, or two threads, never share a lease even
        # when the caller gives them the same owner string (the engine passes host:pid).
        me = f"{owner}#{secrets.token_hex(4)}"
        key = lease_key(policy)
        self._acquire(policy, key, me, ttl)
        try:
            yield
        except BaseException:
            with contextlib.suppress(StateError):  # never hide the block's own failure
                self._release(key, me)
            raise
        self._release(key, me)

    def _acquire(self, policy: str, key: str, me: str, ttl: timedelta) -> None:
        now = self._clock()
        item = {"pk": s(key), "owner": s(me), TTL_ATTRIBUTE: n(math.ceil((now + ttl).timestamp()))}
        try:
            self._call(
                "PutItem",
                key,
                Item=item,
                # "ours" matters when the SDK retries a put whose response was lost
                ConditionExpression="attribute_not_exists(pk) OR #exp < :now OR #owner = :me",
                ExpressionAttributeNames={"#exp": TTL_ATTRIBUTE, "#owner": "owner"},
                ExpressionAttributeValues={":now": n(math.floor(now.timestamp())), ":me": s(me)},
                **_RETURN_OLD,
            )
        except ConditionFailed as failed:
            holder = failed.item.get("owner", {}).get("S", "another runner")
            expiry = failed.item.get(TTL_ATTRIBUTE, {}).get("N")
            until = datetime.fromtimestamp(int(expiry), UTC).isoformat() if expiry else "unknown"
            raise LeaseHeld(
                f"policy {policy!r} is being reconciled by {holder} (lease expires {until})"
            ) from failed.error

    def _release(self, key: str, me: str) -> None:
        # Only while still ours: past its expiry another runner may have taken it over.
        with contextlib.suppress(ConditionFailed):
            self._call(
                "DeleteItem",
                key,
                Key={"pk": s(key)},
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": s(me)},
            )

    # -- the client --------------------------------------------------------------------

    def close(self) -> None:
        """Close the clients this store built; injected or shared ones are their owner's."""
        with self._client_lock:
            owned, self._owned = self._owned, None
            if owned is not None:
                self._client = None
                owned.close()

    def _get_client(self) -> DynamoDBClient:
        with self._client_lock:
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
                        f"DynamoDB client for table {self.table!r} cannot be built: "
                        f"{classify(exc).text}"
                    ) from exc
            return self._client

    def _call(self, action: str, key: str, /, **params: Any) -> dict[str, Any]:
        """Call ``action`` about item ``key`` (named in messages); map the SDK's failures.

        Raises:
            ConditionFailed: the request's ConditionExpression was false.
            StateError: anything else went wrong (``StateUnavailable`` when retryable).
        """
        method = getattr(self._get_client(), METHODS[action])
        if action != "BatchGetItem":  # which names its tables inside its request
            params["TableName"] = self.table
        try:
            response: dict[str, Any] = method(**params)
        except SDK_ERRORS as exc:
            region = self.settings.region
            raise map_error(exc, action=action, table=self.table, key=key, region=region) from exc
        return response


def _digest(version: int, text: str) -> str:
    return hashlib.sha256(f"{version}:{text}".encode()).hexdigest()[:16]
