"""The DynamoDB state backend: for Lambda and for fleets of runners that share no disk.

The table and its items are drawn in ``providers.aws.dynamodb_schema``; ``table_definition()``
gives the CreateTable arguments (the CloudFormation template creates the same table).

* **Compare-and-swap**: ``save`` is a PutItem conditioned on ``attribute_not_exists(pk)``
  (a new policy) or on the stored version equalling the one read. When the SDK retries a
  write whose response was lost, the condition fails against our own write; ``write_id``
  recognises that case, so it is not reported as a conflict.
* **Fenced leases** are items with an expiry, taken by a conditional PutItem (absent,
  expired, or already ours), renewed every ttl/3 by a PutItem conditioned on still being
  ours (``bridge.state.lease`` runs the renewals), and released by a DeleteItem likewise
  conditioned, so a runner that outlived its lease never deletes its successor's. While
  this store holds a policy's lease, ``save`` is one TransactWriteItems: a ConditionCheck
  that the lease item still names this acquisition's token and has not expired, and the
  CAS put; if the check fails nothing is written and ``LeaseLost`` is raised. Runners
  compare expiries with their own clocks: keep the TTL well above clock skew and inside
  the Lambda timeout. A dead runner's lease expires; DynamoDB TTL sweeps the item later.
* **Runs** are an item of their own, set by an UpdateItem that never touches the record, so
  ``record_run`` never makes a CAS fail; ``load`` reads both items in one BatchGetItem.
* **Acks** of all the replicas of a consumer are entries of one item, so IAM confines a
  consumer to its own item with an exact key::

      {"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": "<table arn>",
       "Condition": {"ForAllValues:StringEquals": {
           "dynamodb:LeadingKeys": ["ack#<policy>#<consumer>"]}}}

  ``record_ack`` sets its replica's entry with an UpdateItem (replicas never overwrite one
  another's), creating the map on an item without one; past ``REPLICAS_KEPT`` replicas it
  removes those heard from longest ago (heartbeats keep live ones recent). Acks are read
  by key, so ``acks`` needs the consumer list.

Tables of older versions need no change (a pre-replica ack is replica ``default``; a table
with records and no id is deployment ``default``). Consumers need the policy of this
version's ``infra/aws/consumer-access.yaml`` (UpdateItem on their ack item, BatchGetItem on
``policy#<policy>`` and ``run#<policy>``); the PutItem older consumers acked with would
replace other replicas' entries and is no longer granted: their acks are refused, so gates
stay closed (never open early) until they are upgraded. No item ever holds key material.

Errors (all ``StateError``, each chained to the SDK's exception)::

    StateError                  missing table, access denied, malformed item, bad request
    ├── StateConflict           the compare-and-swap lost
    ├── LeaseHeld               another runner holds the lease (names it and its expiry)
    ├── LeaseLost               a save under a lease this store no longer holds
    └── StateUnavailable        throttled, 5xx, unreachable, transaction conflict (retryable)
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.config.model import DynamoDBStateSettings
from bridge.errors import LeaseHeld, LeaseLost, StateError
from bridge.state import model
from bridge.state.lease import HeldLease, Leases, lease_token
from bridge.state.model import Ack, PolicyRecord
from providers.aws import dynamodb_schema as db
from providers.aws.dynamodb_schema import (
    CONSUMER_ACK_ACTIONS,
    DYNAMODB_ACTIONS,
    ConditionFailed,
    DynamoDBClient,
    StateUnavailable,
    n,
    s,
    table_definition,
)
from providers.aws.sdk import AwsClients

__all__ = ["CONSUMER_ACK_ACTIONS", "DYNAMODB_ACTIONS", "DynamoDBStateStore", "table_definition"]

BATCH_SIZE = 100  # BatchGetItem's limit per request
BATCH_ATTEMPTS = 5  # tries for keys DynamoDB returns as unprocessed
BATCH_BACKOFF = 0.05  # seconds before the first retry; doubles each time
ACK_ATTEMPTS = 5  # tries of an ack while other replicas of its consumer reshape the item
_MINE = {"ConditionExpression": "#owner = :me", "ExpressionAttributeNames": {"#owner": "owner"}}


class DynamoDBStateStore:
    """Policy records, runs, leases, acks and the deployment id in one DynamoDB table.

    Args:
        settings: The table, and optionally its region and endpoint.
        client: A DynamoDB client (tests, or one shared by the caller); by default a boto3
            client is built on first use.
        clock: The current instant, for lease expiry (tests move it); default UTC now.
        sleep: Pause between retries of unprocessed batch keys (tests skip it).
        clients: The connection's shared clients, to build the client from.
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
        self._table = db.Table(settings, client, clients)
        self._call = self._table.call
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._token = secrets.token_hex(8)
        self._leases = Leases()

    def close(self) -> None:
        """Close the clients this store built; injected or shared ones are their owner's."""
        self._table.close()

    # -- records and runs --------------------------------------------------------------

    def load(self, policy: str) -> PolicyRecord:
        record_key, run = db.policy_key(policy), db.run_key(policy)
        items = {item["pk"]["S"]: item for item in self._batch_get([record_key, run])}
        record = PolicyRecord(policy=policy)
        if record_key in items:
            with self._reading(record_key):
                record = db.read_record(policy, items[record_key])
        if run in items:
            with self._reading(run):
                record = record.with_run(db.read_run(items[run]))
        return record

    def save(self, record: PolicyRecord) -> PolicyRecord:
        held = self._leases.fence(record.policy)
        key = db.policy_key(record.policy)
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
            "write_id": s(f"{self._token}:{db.write_digest(stored.version, text)}"),
        }
        put: dict[str, Any] = {"Item": item, **db.RETURN_OLD}
        if record.version == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#v = :expected"
            put["ExpressionAttributeNames"] = {"#v": "version"}
            put["ExpressionAttributeValues"] = {":expected": n(record.version)}
        if held is not None:
            self._fenced_put(record, held, put)
            return stored
        try:
            self._call("PutItem", key, **put)
        except ConditionFailed as failed:
            if failed.item.get("write_id") != item["write_id"]:  # else: ours, retried
                raise db.conflict(record, failed.item) from failed.error
        return stored

    def _fenced_put(self, record: PolicyRecord, held: HeldLease, put: dict[str, Any]) -> None:
        """``put``, and a check that ``held`` still holds the lease, as one transaction."""
        check = {
            "TableName": self.table,
            "Key": {"pk": s(db.lease_key(record.policy))},
            "ConditionExpression": "#owner = :me AND #exp >= :now AND #ms >= :now_ms",
            "ExpressionAttributeNames": db.EXPIRY_NAMES,
            "ExpressionAttributeValues": {":me": s(held.token), **db.now_values(self._clock())},
            **db.RETURN_OLD,
        }
        parts = [{"ConditionCheck": check}, {"Put": {"TableName": self.table, **put}}]
        key = db.policy_key(record.policy)
        try:
            self._call("TransactWriteItems", key, TransactItems=parts)
        except db.Cancelled as cancelled:
            if cancelled.item(1).get("write_id") == put["Item"]["write_id"]:
                return  # our own write, retried after a lost response
            if cancelled.code(0) == "ConditionalCheckFailed":
                held.lose(why := db.lease_gone(cancelled.item(0)))
                message = f"policy {record.policy!r}: {why}; nothing was written"
                raise LeaseLost(message) from cancelled.error
            if cancelled.code(1) == "ConditionalCheckFailed":
                raise db.conflict(record, cancelled.item(1)) from cancelled.error
            codes = ", ".join(code for code, _ in cancelled.reasons)
            raise StateUnavailable(
                f"DynamoDB TransactWriteItems on table {self.table!r} ({key}) was cancelled "
                f"({codes}); retry later"
            ) from cancelled.error

    def policies(self) -> list[str]:
        return sorted(self._scan_policies(first_page_only=False))

    def _scan_policies(self, *, first_page_only: bool) -> list[str]:
        names: list[str] = []
        page_from: dict[str, Any] | None = None
        while True:
            page = self._call(
                "Scan",
                db.POLICY_PREFIX + "*",
                FilterExpression="begins_with(pk, :prefix)",
                ProjectionExpression="pk",
                ExpressionAttributeValues={":prefix": s(db.POLICY_PREFIX)},
                ConsistentRead=True,
                **({"ExclusiveStartKey": page_from} if page_from else {}),
            )
            names += [i["pk"]["S"][len(db.POLICY_PREFIX) :] for i in page.get("Items", [])]
            page_from = page.get("LastEvaluatedKey")
            if not page_from or (first_page_only and names):
                return names

    def record_run(self, policy: str, at: datetime, error: str | None) -> None:
        """One UpdateItem of the run item; the record (and its version) is not touched."""
        key = db.run_key(policy)
        self._call("UpdateItem", key, Key={"pk": s(key)}, **db.run_update(at, error))

    def deployment_id(self) -> str:
        """Read ``meta#deployment``; else create it with a PutItem that only succeeds if
        it is still absent, and take whichever id won."""
        key = db.DEPLOYMENT_KEY
        item = self._call("GetItem", key, Key={"pk": s(key)}, ConsistentRead=True).get("Item")
        if item is None:
            # A table with policy records and no id was written by an older version.
            older = self._scan_policies(first_page_only=True)
            made = model.LEGACY_DEPLOYMENT_ID if older else model.new_deployment_id()
            item = {"pk": s(key), "id": s(made)}
            absent = {"ConditionExpression": "attribute_not_exists(pk)", **db.RETURN_OLD}
            try:
                self._call("PutItem", key, Item=item, **absent)
            except ConditionFailed as failed:  # another runner created it first
                item = failed.item
        value = item.get("id", {}).get("S")
        if not isinstance(value, str) or not model.DEPLOYMENT_ID.fullmatch(value):
            why = "no valid id; restore it, or delete it to have a new id made"
            raise StateError(f"DynamoDB table {self.table!r}: item {key!r} is malformed ({why})")
        return value

    # -- acknowledgements --------------------------------------------------------------

    def record_ack(self, policy: str, ack: Ack) -> None:
        """UpdateItems of the consumer's own item only: all its IAM role needs."""
        model.check_ack(ack)
        key = db.ack_key(policy, ack.consumer)
        for _ in range(ACK_ATTEMPTS):
            with contextlib.suppress(ConditionFailed):  # the item changed meanwhile: again
                self._set_replica(key, ack, db.ack_entry(ack))
                return
        raise StateUnavailable(
            f"DynamoDB table {self.table!r}: item {key!r} kept changing under "
            f"{ACK_ATTEMPTS} attempts to record an ack; retry later"
        )

    def _set_replica(self, key: str, ack: Ack, entry: dict[str, Any]) -> None:
        """Set ``ack``'s entry with one UpdateItem; if the item has no map yet, or a full one,
        that fails with the item, which tells what to write instead."""
        names, values = {"#r": ack.replica}, {":entry": entry}
        room = "attribute_exists(#reps) AND (attribute_exists(#reps.#r) OR size(#reps) < :max)"
        try:
            max_ = {":max": n(model.REPLICAS_KEPT)}
            self._update_ack(key, "SET #reps.#r = :entry", room, names, values | max_)
            return
        except ConditionFailed as failed:
            found = failed.item
        if db.REPLICAS_ATTRIBUTE not in found:  # a new item, or an older version's
            first = {":map": {"M": {ack.replica: entry}}}
            self._update_ack(key, "SET #reps = :map", "attribute_not_exists(#reps)", {}, first)
            return
        drop = {f"#d{i}": r for i, r in enumerate(self._oldest(key, ack, found))}
        removal = " REMOVE " + ", ".join(f"#reps.{d}" for d in drop) if drop else ""
        update = "SET #reps.#r = :entry" + removal
        self._update_ack(key, update, "attribute_exists(#reps)", names | drop, values)

    def _oldest(self, key: str, ack: Ack, found: dict[str, Any]) -> list[str]:
        """The replicas to drop from a full map to make room for ``ack``: those heard from
        longest ago, and entries too damaged to tell."""
        with self._reading(key):
            held = found[db.REPLICAS_ATTRIBUTE]["M"].items()
        acks, damaged = [], []
        for replica, value in held:
            try:
                acks.append(db.read_ack(ack.consumer, replica, value))
            except db.PARSE_ERRORS:
                damaged.append(replica)
        return damaged + [a.replica for a in model.forgotten(acks, ack)]

    def _update_ack(
        self, key: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> None:
        self._call(
            "UpdateItem",
            key,
            Key={"pk": s(key)},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames={"#reps": db.REPLICAS_ATTRIBUTE, **names},
            ExpressionAttributeValues=values,
            **db.RETURN_OLD,
        )

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> list[Ack]:
        if consumers is None:
            why = "keeps one ack item per consumer (for IAM) and reads them by key"
            raise StateError(f"the DynamoDB state backend {why}: pass the consumers of {policy!r}")
        wanted = {db.ack_key(policy, consumer): consumer for consumer in dict.fromkeys(consumers)}
        keys = list(wanted)  # BatchGetItem refuses a request that repeats a key
        projection = ("pk", "fingerprint", "at", db.REPLICAS_ATTRIBUTE)
        found: list[Ack] = []
        for start in range(0, len(keys), BATCH_SIZE):
            for item in self._batch_get(keys[start : start + BATCH_SIZE], projection):
                key = item["pk"]["S"]
                with self._reading(key):
                    found += db.read_acks(wanted[key], item)
        return sorted(found, key=model.ack_order)

    @contextlib.contextmanager
    def _reading(self, key: str) -> Iterator[None]:
        """Make a failure to read item ``key`` one ``StateError`` line naming it."""
        try:
            yield
        except db.PARSE_ERRORS as exc:
            why = db.describe_damage(exc)
            message = f"DynamoDB table {self.table!r}: item {key!r} is malformed ({why})"
            raise StateError(message) from exc

    def _batch_get(self, keys: list[str], projection: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The items of ``keys`` (at most 100), retrying the ones DynamoDB leaves unprocessed."""
        names = {f"#a{i}": name for i, name in enumerate(projection)}
        wanted: dict[str, Any] = {"Keys": [{"pk": s(key)} for key in keys], "ConsistentRead": True}
        if names:
            wanted |= {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
        request: dict[str, Any] = {self.table: wanted}
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
            f"DynamoDB BatchGetItem on table {self.table!r}: {left} keys still unprocessed "
            f"after {BATCH_ATTEMPTS} attempts (throttled); retry later"
        )

    # -- leases ------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, policy: str, owner: str, ttl: timedelta) -> Iterator[HeldLease]:
        # A token per acquisition: two stores, or two threads, never share a lease even
        # when the caller gives them the same owner string (the engine passes host:pid).
        me, key, sent_at = lease_token(owner), db.lease_key(policy), time.monotonic()
        self._acquire(policy, key, me, ttl)
        held = HeldLease(policy, me, ttl, renew=lambda: self._renew(key, me, ttl), sent_at=sent_at)
        with self._leases.hold(held, release=lambda: self._release(key, me)) as lease:
            yield lease

    def _acquire(self, policy: str, key: str, me: str, ttl: timedelta) -> None:
        now = self._clock()
        # "ours" matters when the SDK retries a put whose response was lost
        free = "attribute_not_exists(pk) OR #owner = :me OR #exp < :now OR #ms < :now_ms"
        try:
            self._call(
                "PutItem",
                key,
                Item=db.lease_item(key, me, now + ttl),
                ConditionExpression=free,
                ExpressionAttributeNames=db.EXPIRY_NAMES,
                ExpressionAttributeValues={":me": s(me), **db.now_values(now)},
                **db.RETURN_OLD,
            )
        except ConditionFailed as failed:
            holder = failed.item.get("owner", {}).get("S", "another runner")
            expiry = failed.item.get(db.TTL_ATTRIBUTE, {}).get("N")
            until = datetime.fromtimestamp(int(expiry), UTC).isoformat() if expiry else "unknown"
            raise LeaseHeld(
                f"policy {policy!r} is being reconciled by {holder} (lease expires {until})"
            ) from failed.error

    def _renew(self, key: str, me: str, ttl: timedelta) -> None:
        """Extend the lease by ``ttl`` from now, only while it is still ours."""
        item = db.lease_item(key, me, self._clock() + ttl)
        mine = {**_MINE, "ExpressionAttributeValues": {":me": s(me)}, **db.RETURN_OLD}
        try:
            self._call("PutItem", key, Item=item, **mine)
        except ConditionFailed as failed:
            raise LeaseLost(db.lease_gone(failed.item)) from failed.error

    def _release(self, key: str, me: str) -> None:
        # Only while still ours: past its expiry another runner may have taken it over.
        mine = {**_MINE, "ExpressionAttributeValues": {":me": s(me)}}
        with contextlib.suppress(ConditionFailed):
            self._call("DeleteItem", key, Key={"pk": s(key)}, **mine)
