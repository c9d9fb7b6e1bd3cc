"""What the DynamoDB state backend stores and calls: the table, its keys, the IAM actions,
the client port, and how the SDK's failures map onto ``StateError``.

Kept apart from ``providers.aws.dynamodb`` (the store) so that templates, IAM tests and docs can
read the table shape and the action list, and so each module stays small.
"""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from bridge.errors import StateError
from providers.aws.sdk import classify

# The SDK method behind each IAM action the backend calls; it calls nothing else.
METHODS = {
    "BatchGetItem": "batch_get_item",
    "DeleteItem": "delete_item",
    "GetItem": "get_item",
    "PutItem": "put_item",
    "Scan": "scan",
}
DYNAMODB_ACTIONS: tuple[str, ...] = tuple(f"dynamodb:{action}" for action in sorted(METHODS))
"""Every IAM action a runner needs on the state table (least privilege)."""
CONSUMER_ACK_ACTIONS: tuple[str, ...] = ("dynamodb:PutItem",)
"""What ``record_ack`` needs; confine it with ``dynamodb:LeadingKeys`` to ``ack_key``."""

POLICY_PREFIX, LEASE_PREFIX, ACK_PREFIX = "policy#", "lease#", "ack#"
TTL_ATTRIBUTE = "expires_at_epoch"


class DynamoDBClient(Protocol):
    """The few calls of a boto3 DynamoDB client the backend uses (one per action above)."""

    def get_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def put_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def scan(self, **kwargs: Any) -> dict[str, Any]: ...
    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]: ...


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


def policy_key(policy: str) -> str:
    """The partition key of ``policy``'s record."""
    return POLICY_PREFIX + _part(policy)


def lease_key(policy: str) -> str:
    """The partition key of ``policy``'s lease."""
    return LEASE_PREFIX + _part(policy)


def ack_key(policy: str, consumer: str) -> str:
    """The partition key of a consumer's ack: what ``dynamodb:LeadingKeys`` grants it."""
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


class StateUnavailable(StateError):
    """DynamoDB throttled the request, failed on its side, or could not be reached."""

    retryable = True


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
    """The ``StateError`` (or ``ConditionFailed``) for an SDK failure of ``action`` on ``key``,
    classified by ``providers.aws.sdk.classify`` like every AWS failure.

    The caller raises it ``from exc``.
    """
    where = f"DynamoDB {action} on table {table!r} ({key})"
    failure = classify(exc)
    if failure.kind == "condition" and isinstance(exc, ClientError):
        return ConditionFailed(exc)
    if failure.kind == "throttled":
        return StateUnavailable(f"{where}: throttled ({failure.code}); retry later")
    if failure.kind == "unavailable":
        reason = "unreachable" if not isinstance(exc, ClientError) else "DynamoDB failed"
        return StateUnavailable(f"{where}: {reason} ({failure.text}); retry later")
    if failure.kind == "not_found":
        return StateError(
            f"DynamoDB table {table!r} does not exist in {region or 'the default region'} "
            "(or is not active yet): create it from the CloudFormation template, or check "
            "state.table and state.region"
        )
    if failure.kind == "denied":
        return StateError(
            f"{where}: access denied: the role lacks dynamodb:{action}: {failure.text}"
        )
    if failure.kind == "credentials":
        return StateError(f"{where}: AWS rejected the credentials ({failure.code})")
    return StateError(f"{where}: {failure.text}")
