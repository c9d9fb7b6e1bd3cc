"""The DynamoDB state backend: for Lambda and for fleets of runners that share no disk.

One table, partition key ``pk`` (string), no sort key, on-demand billing, with DynamoDB TTL
on ``expires_at_epoch`` (``table_definition()`` gives the CreateTable arguments; the
CloudFormation template creates the same table). Five kinds of item live in it::

    pk                        attributes
    ------------------------  ---------------------------------------------------------------
    policy#<policy>           version (N)   the compare-and-swap counter
                              record (S)    the PolicyRecord as JSON, minus its version
                              updated_at (S), write_id (S: a random token per save)
    run#<policy>              last_run_at (S), last_error (S), last_success_at (S): ISO 8601
    lease#<policy>            owner (S)     the holder: the runner's owner string + a token
                                            drawn for each acquisition
                              expires_at_epoch (N: Unix seconds; also the TTL attribute)
                              expires_at_ms (N: the same instant in milliseconds)
    ack#<policy>#<consumer>   replicas (M)  replica -> {fingerprint, at, proof} (S each)
                              fingerprint (S), at (S): an ack written by an older version,
                                            read as replica "default"
    meta#deployment           id (S)        the deployment id

* **Compare-and-swap**: ``save`` is a PutItem conditioned on ``attribute_not_exists(pk)``
  (a new policy) or on the stored version equalling the one read. When the SDK retries a
  write whose response was lost, the condition fails against our own write; ``write_id``
  recognises that case, so it is not reported as a conflict.
* **Fenced leases** are items with an expiry, taken by a conditional PutItem (absent,
  expired, or already ours), renewed every ttl/3 by a PutItem conditioned on still being
  ours (``bridge.state.lease`` runs the renewals), and released by a DeleteItem
  conditioned on still being ours, so a runner that outlived its lease never deletes its
  successor's. While this store holds a policy's lease, ``save`` is a TransactWriteItems:
  a ConditionCheck that the lease item still names our token and has not expired, and the
  CAS put; if the check fails nothing is written and the save raises ``LeaseLost``.
  Runners compare expiries with their own clocks: keep the lease TTL well above clock skew
  and well inside the Lambda timeout. A runner that dies leaves its lease to expire; TTL
  sweeps the item up later. An expiry is past when either attribute says so, so leases of
  older runners (seconds only) are understood, and theirs understand ours.
* **Runs** are their own item, written by an UpdateItem that never touches the record, so
  ``record_run`` never makes a CAS fail; ``load`` reads both items in one BatchGetItem.
* **Acks** are one item per consumer, holding the latest ack of each of its replicas in a
  map, so IAM can still confine a consumer to its own item with an exact key::

      {"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": "<table arn>",
       "Condition": {"ForAllValues:StringEquals": {
           "dynamodb:LeadingKeys": ["ack#<policy>#<consumer>"]}}}

  ``record_ack`` sets its replica's entry of the map with an UpdateItem (replicas of one
  consumer never overwrite each other's entries), creating the map first on an item that
  has none; beyond ``REPLICAS_KEPT`` replicas it also removes those heard from longest ago
  (a heartbeat keeps live replicas recent), which bounds the item well under DynamoDB's
  400 KB. Reading acks by key means ``acks`` needs the consumer list.

Tables of older versions need no change: their items keep working (a pre-replica ack is
replica ``default``). Consumers need the policy of ``infra/aws/consumer-access.yaml`` of
this version: ``UpdateItem`` on their ack item (older consumers wrote with ``PutItem``,
which would replace the other replicas' acks, and is no longer granted: their acks are
refused, which keeps gates closed, until they are upgraded) and ``BatchGetItem`` on
``policy#<policy>`` and ``run#<policy>``.

No item ever holds key material: records carry ids, short keys and fingerprints only; a
proof is an HMAC the engine checks, not a key.

Errors (all ``StateError``, each chained to the SDK's exception)::

    StateError                  missing table, access denied, malformed item, bad request
    ├── StateConflict           the compare-and-swap lost
    ├── LeaseHeld               another runner holds the lease (names it and its expiry)
    ├── LeaseLost               a save under a lease this store no longer holds
    └── StateUnavailable        throttled, 5xx, unreachable, transaction conflict (retryable)
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError

from bridge.config.model import DynamoDBStateSettings
from bridge.errors import LeaseHeld, LeaseLost, StateConflict, StateError
from bridge.state.lease import HeldLease, Leases, lease_token
from bridge.state.model import (
    DEFAULT_REPLICA,
    DEPLOYMENT_ID,
    LEGACY_DEPLOYMENT_ID,
    REPLICAS_KEPT,
    Ack,
    PolicyRecord,
    Run,
    ack_order,
    check_ack,
    forgotten,
    new_deployment_id,
)
from providers.aws.dynamodb_schema import (
    CONSUMER_ACK_ACTIONS,
    CONSUMER_READ_ACTIONS,
    DEPLOYMENT_KEY,
    DYNAMODB_ACTIONS,
    EXPIRY_MS_ATTRIBUTE,
    METHODS,
    POLICY_PREFIX,
    REPLICAS_ATTRIBUTE,
    TTL_ATTRIBUTE,
    Cancelled,
    ConditionFailed,
    DynamoDBClient,
    StateUnavailable,
    ack_entry,
    ack_key,
    describe_damage,
    lease_gone,
    lease_item,
    lease_key,
    map_error,
    n,
    now_values,
    policy_key,
    run_key,
    s,
    table_definition,
    write_digest,
)
from providers.aws.sdk import SDK_ERRORS, AwsClients, classify

__all__ = [
    "CONSUMER_ACK_ACTIONS",
    "CONSUMER_READ_ACTIONS",
    "DYNAMODB_ACTIONS",
    "DynamoDBClient",
    "DynamoDBStateStore",
    "StateUnavailable",
    "table_definition",
]

BATCH_SIZE = 100  # BatchGetItem's limit per request
BATCH_ATTEMPTS = 5  # tries for keys DynamoDB returns as unprocessed
BATCH_BACKOFF = 0.05  # seconds before the first retry; doubles each time
ACK_ATTEMPTS = 5  # tries of an ack while other replicas of its consumer reshape the item
_RETURN_OLD: dict[str, Any] = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
_EXPIRY_NAMES = {"#owner": "owner", "#exp": TTL_ATTRIBUTE, "#ms": EXPIRY_MS_ATTRIBUTE}
_RUN_FIELDS = ("last_run_at", "last_error", "last_success_at")
# What reading a damaged item's attributes raises (pydantic's ValidationError is a ValueError).
_PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


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
        self._client = client
        self._clients = clients  # the connection's shared clients; else built on first use
        self._owned: AwsClients | None = None  # clients this store built, closed by close()
        self._client_lock = threading.Lock()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._token = secrets.token_hex(8)
        self._leases = Leases()

    # -- records -----------------------------------------------------------------------

    def load(self, policy: str) -> PolicyRecord:
        keys = [policy_key(policy), run_key(policy)]
        items = {item["pk"]["S"]: item for item in self._batch_get(keys)}
        record = PolicyRecord(policy=policy)
        if (item := items.get(keys[0])) is not None:
            try:
                data = json.loads(item["record"]["S"])
                if not isinstance(data, dict):
                    raise TypeError("the record is not a JSON object")
                version = int(item["version"]["N"])
                record = PolicyRecord.model_validate({**data, "policy": policy, "version": version})
            except _PARSE_ERRORS as exc:
                raise self._malformed(keys[0], exc) from exc
        if (item := items.get(keys[1])) is not None:
            try:
                fields = {name: item[name]["S"] for name in _RUN_FIELDS if name in item}
                record = record.with_run(Run.model_validate(fields))
            except _PARSE_ERRORS as exc:
                raise self._malformed(keys[1], exc) from exc
        return record

    def save(self, record: PolicyRecord) -> PolicyRecord:
        held = self._leases.fence(record.policy)
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
            "write_id": s(f"{self._token}:{write_digest(stored.version, text)}"),
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
        if held is not None:
            return self._fenced_save(record, stored, held, {"Item": item, **condition})
        try:
            self._call("PutItem", key, Item=item, **condition, **_RETURN_OLD)
        except ConditionFailed as failed:
            if failed.item.get("write_id") == item["write_id"]:
                return stored  # our own write, retried by the SDK after a lost response
            raise _conflict(record, failed.item) from failed.error
        return stored

    def _fenced_save(
        self, record: PolicyRecord, stored: PolicyRecord, held: HeldLease, put: dict[str, Any]
    ) -> PolicyRecord:
        """The CAS put and a check that ``held`` still holds the lease, as one transaction."""
        now = self._clock()
        check = {
            "TableName": self.table,
            "Key": {"pk": s(lease_key(record.policy))},
            "ConditionExpression": "#owner = :me AND #exp >= :now AND #ms >= :now_ms",
            "ExpressionAttributeNames": _EXPIRY_NAMES,
            "ExpressionAttributeValues": {":me": s(held.token), **now_values(now)},
            **_RETURN_OLD,
        }
        parts = [
            {"ConditionCheck": check},
            {"Put": {"TableName": self.table, **put, **_RETURN_OLD}},
        ]
        try:
            self._call("TransactWriteItems", put["Item"]["pk"]["S"], TransactItems=parts)
        except Cancelled as cancelled:
            found = cancelled.item(1)
            if found.get("write_id") == put["Item"]["write_id"]:
                return stored  # our own write, retried after a lost response
            if cancelled.code(0) == "ConditionalCheckFailed":
                why = lease_gone(cancelled.item(0))
                held.lose(why)
                raise LeaseLost(
                    f"policy {record.policy!r}: {why}; nothing was written"
                ) from cancelled.error
            if cancelled.code(1) == "ConditionalCheckFailed":
                raise _conflict(record, found) from cancelled.error
            raise StateUnavailable(
                f"DynamoDB TransactWriteItems on table {self.table!r} "
                f"({policy_key(record.policy)}) was cancelled "
                f"({', '.join(code for code, _ in cancelled.reasons)}); retry later"
            ) from cancelled.error
        return stored

    def policies(self) -> list[str]:
        return sorted(self._scan_policies(first_page_only=False))

    def _scan_policies(self, *, first_page_only: bool) -> list[str]:
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
            if not page_from or (first_page_only and names):
                return names

    # -- runs and the deployment id --------------------------------------------------

    def record_run(self, policy: str, at: datetime, error: str | None) -> None:
        """One UpdateItem of the run item; the record (and its version) is not touched."""
        key = run_key(policy)
        instant = Run(last_run_at=at).model_dump(mode="json")["last_run_at"]
        names = {"#run": "last_run_at", "#err": "last_error"}
        values = {":at": s(instant)}
        if error is None:
            names["#ok"] = "last_success_at"
            expression = "SET #run = :at, #ok = :at REMOVE #err"
        else:
            values[":err"] = s(error)
            expression = "SET #run = :at, #err = :err"
        self._call(
            "UpdateItem",
            key,
            Key={"pk": s(key)},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def deployment_id(self) -> str:
        """Read ``meta#deployment``; else create it with a PutItem that only succeeds if
        it is still absent, and take whichever id won."""
        key = DEPLOYMENT_KEY
        item = self._call("GetItem", key, Key={"pk": s(key)}, ConsistentRead=True).get("Item")
        if item is not None:
            return self._deployment(item)
        # A table with policy records and no id was written by an older version.
        fresh = LEGACY_DEPLOYMENT_ID if self._scan_policies(first_page_only=True) else None
        candidate = fresh or new_deployment_id()
        try:
            self._call(
                "PutItem",
                key,
                Item={"pk": s(key), "id": s(candidate)},
                ConditionExpression="attribute_not_exists(pk)",
                **_RETURN_OLD,
            )
        except ConditionFailed as failed:  # another runner created it first
            return self._deployment(failed.item)
        return candidate

    def _deployment(self, item: dict[str, Any]) -> str:
        value = item.get("id", {}).get("S")
        if not isinstance(value, str) or not DEPLOYMENT_ID.fullmatch(value):
            raise StateError(
                f"DynamoDB table {self.table!r}: item {DEPLOYMENT_KEY!r} is malformed (no "
                "valid id); restore it, or delete the item to have a new id made"
            )
        return value

    # -- acknowledgements --------------------------------------------------------------

    def record_ack(self, policy: str, ack: Ack) -> None:
        """UpdateItems of the consumer's own item only: all its IAM role needs."""
        check_ack(ack)
        key = ack_key(policy, ack.consumer)
        entry = ack_entry(ack)
        for _ in range(ACK_ATTEMPTS):
            try:
                self._update_ack(
                    key,
                    "SET #reps.#r = :entry",
                    "attribute_exists(#reps)"
                    " AND (attribute_exists(#reps.#r) OR size(#reps) < :max)",
                    {"#r": ack.replica},
                    {":entry": entry, ":max": n(REPLICAS_KEPT)},
                )
                return
            except ConditionFailed as failed:
                held = failed.item.get(REPLICAS_ATTRIBUTE, {}).get("M")
                if held is None and REPLICAS_ATTRIBUTE in failed.item:
                    raise self._malformed(key, TypeError("replicas is not a map")) from None
            with contextlib.suppress(ConditionFailed):  # reshaped meanwhile: start over
                if held is None:  # a new item, or one an older version wrote
                    self._update_ack(
                        key,
                        "SET #reps = :map",
                        "attribute_not_exists(#reps)",
                        {},
                        {":map": {"M": {ack.replica: entry}}},
                    )
                else:
                    self._replace_oldest(key, policy, ack, held, entry)
                return
        raise StateUnavailable(
            f"DynamoDB table {self.table!r}: item {key!r} kept changing under "
            f"{ACK_ATTEMPTS} attempts to record an ack; retry later"
        )

    def _replace_oldest(
        self, key: str, policy: str, ack: Ack, held: dict[str, Any], entry: dict[str, Any]
    ) -> None:
        """Add ``ack`` to a full map, removing the replicas heard from longest ago."""
        acks, damaged = [], []
        for replica, value in held.items():
            try:
                acks.append(self._parse_ack(key, ack.consumer, replica, value))
            except StateError:
                damaged.append(replica)
        drop = damaged + [a.replica for a in forgotten(acks, ack)]
        names = {f"#d{i}": replica for i, replica in enumerate(drop)}
        removed = ", ".join(f"#reps.{name}" for name in names)
        self._update_ack(
            key,
            "SET #reps.#r = :entry" + (f" REMOVE {removed}" if removed else ""),
            "attribute_exists(#reps)",
            {"#r": ack.replica, **names},
            {":entry": entry},
        )

    def _update_ack(
        self, key: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> None:
        self._call(
            "UpdateItem",
            key,
            Key={"pk": s(key)},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames={"#reps": REPLICAS_ATTRIBUTE, **names},
            ExpressionAttributeValues=values,
            **_RETURN_OLD,
        )

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> list[Ack]:
        if consumers is None:
            raise StateError(
                "the DynamoDB state backend keeps one ack item per consumer (so IAM can "
                "confine each consumer to its own) and reads them by key: pass the consumers "
                f"of policy {policy!r}"
            )
        wanted = {ack_key(policy, consumer): consumer for consumer in dict.fromkeys(consumers)}
        keys = list(wanted)  # BatchGetItem refuses a request that repeats a key
        found: list[Ack] = []
        for start in range(0, len(keys), BATCH_SIZE):
            projection = ("pk", "fingerprint", "at", REPLICAS_ATTRIBUTE)
            for item in self._batch_get(keys[start : start + BATCH_SIZE], projection):
                key = item["pk"]["S"]
                found += self._acks_of(key, wanted[key], item)
        return sorted(found, key=ack_order)

    def _acks_of(self, key: str, consumer: str, item: dict[str, Any]) -> list[Ack]:
        replicas = item.get(REPLICAS_ATTRIBUTE, {"M": {}}).get("M")
        if not isinstance(replicas, dict):
            raise self._malformed(key, TypeError("replicas is not a map"))
        acks = [self._parse_ack(key, consumer, r, value) for r, value in replicas.items()]
        if DEFAULT_REPLICA not in replicas and ("fingerprint" in item or "at" in item):
            acks.append(self._parse_ack(key, consumer, DEFAULT_REPLICA, {"M": item}))
        return acks

    def _parse_ack(self, key: str, consumer: str, replica: str, value: dict[str, Any]) -> Ack:
        try:
            entry = value["M"]
            names = ("fingerprint", "at", "proof")
            fields = {name: entry[name]["S"] for name in names if name in entry}
            return Ack.model_validate({"consumer": consumer, "replica": replica, **fields})
        except _PARSE_ERRORS as exc:
            raise self._malformed(key, exc) from exc

    def _malformed(self, key: str, exc: BaseException) -> StateError:
        """The one-line error of an item whose attributes cannot be read."""
        return StateError(
            f"DynamoDB table {self.table!r}: item {key!r} is malformed ({describe_damage(exc)})"
        )

    def _batch_get(
        self, keys: list[str], projection: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The items of ``keys`` (at most 100), retrying the ones DynamoDB leaves unprocessed."""
        names = {f"#a{i}": name for i, name in enumerate(projection or ())}
        request: dict[str, Any] = {
            self.table: {
                "Keys": [{"pk": s(key)} for key in keys],
                "ConsistentRead": True,
                **(
                    {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
                    if names
                    else {}
                ),
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
            f"DynamoDB BatchGetItem on table {self.table!r}: {left} keys still unprocessed "
            f"after {BATCH_ATTEMPTS} attempts (throttled); retry later"
        )

    # -- leases ------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, policy: str, owner: str, ttl: timedelta) -> Iterator[HeldLease]:
        # A token per acquisition: two stores, or two threads, never share a lease even
        # when the caller gives them the same owner string (the engine passes host:pid).
        me = lease_token(owner)
        key = lease_key(policy)
        sent_at = time.monotonic()
        self._acquire(policy, key, me, ttl)
        held = HeldLease(policy, me, ttl, renew=lambda: self._renew(key, me, ttl), sent_at=sent_at)
        with self._leases.hold(held, release=lambda: self._release(key, me)) as lease:
            yield lease

    def _acquire(self, policy: str, key: str, me: str, ttl: timedelta) -> None:
        now = self._clock()
        try:
            self._call(
                "PutItem",
                key,
                Item=lease_item(key, me, now + ttl),
                # "ours" matters when the SDK retries a put whose response was lost
                ConditionExpression=(
                    "attribute_not_exists(pk) OR #owner = :me OR #exp < :now OR #ms < :now_ms"
                ),
                ExpressionAttributeNames=_EXPIRY_NAMES,
                ExpressionAttributeValues={":me": s(me), **now_values(now)},
                **_RETURN_OLD,
            )
        except ConditionFailed as failed:
            holder = failed.item.get("owner", {}).get("S", "another runner")
            expiry = failed.item.get(TTL_ATTRIBUTE, {}).get("N")
            until = datetime.fromtimestamp(int(expiry), UTC).isoformat() if expiry else "unknown"
            raise LeaseHeld(
                f"policy {policy!r} is being reconciled by {holder} (lease expires {until})"
            ) from failed.error

    def _renew(self, key: str, me: str, ttl: timedelta) -> None:
        """Extend the lease by ``ttl`` from now, only while it is still ours."""
        try:
            self._call(
                "PutItem",
                key,
                Item=lease_item(key, me, self._clock() + ttl),
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": s(me)},
                **_RETURN_OLD,
            )
        except ConditionFailed as failed:
            raise LeaseLost(lease_gone(failed.item)) from failed.error

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
            Cancelled: the transaction was cancelled (its reasons say why).
            StateError: anything else went wrong (``StateUnavailable`` when retryable).
        """
        method = getattr(self._get_client(), METHODS[action])
        if action not in ("BatchGetItem", "TransactWriteItems"):  # tables named inside
            params["TableName"] = self.table
        try:
            response: dict[str, Any] = method(**params)
        except SDK_ERRORS as exc:
            region = self.settings.region
            raise map_error(exc, action=action, table=self.table, key=key, region=region) from exc
        return response


def _conflict(record: PolicyRecord, found: dict[str, Any]) -> StateConflict:
    version = found.get("version", {}).get("N", "unknown")
    return StateConflict(
        f"policy {record.policy!r}: expected version {record.version}, found {version}"
    )
