"""A Pub/Sub push request, read: the envelope Pub/Sub POSTs and the Secret Manager event in
it. Pure parsing; nothing here trusts the body for more than routing.

The envelope is ``{"message": {"attributes", "data", "messageId", "publishTime"},
"subscription"}``. Secret Manager's event attributes are ``eventType`` (``SECRET_ROTATE``,
``SECRET_VERSION_ADD``, ...; ``TOPIC_CONFIGURED`` for the test message), ``secretId``
(``projects/<number or id>/secrets/<id>``) and, for version events, ``versionId``; the
data is the Secret resource as JSON (its labels and annotations included).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SECRET_ROTATE = "SECRET_ROTATE"  # noqa: S105 - an event type, not a password
_SECRET = re.compile(r"^projects/([^/]+)/secrets/([A-Za-z0-9_-]{1,255})$")
_FRACTION = re.compile(r"(\.\d{6})\d+")  # RFC 3339 allows nanoseconds; Python takes micro


class MalformedPush(ValueError):
    """The body is not a Pub/Sub push of a Secret Manager event (the reason says why)."""


@dataclass(frozen=True)
class SecretEvent:
    """One Secret Manager event, as a push delivered it."""

    message_id: str
    published_at: datetime
    event_type: str
    project: str = ""  # as the event names it: Secret Manager sends the project number
    secret_id: str = ""
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def secret(self) -> str:
        return f"projects/{self.project}/secrets/{self.secret_id}"


def parse_push(body: bytes) -> SecretEvent:
    """The event a push body carries.

    Raises:
        MalformedPush: not JSON, not an envelope, or an event without its secret.
    """
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPush("the body is not JSON") from exc
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        raise MalformedPush("no message: not a Pub/Sub push envelope")
    message_id = _text(message, "messageId", "message_id")
    published = _text(message, "publishTime", "publish_time")
    attributes = message.get("attributes") or {}
    if not message_id or not published or not isinstance(attributes, dict):
        raise MalformedPush("the message lacks its id, publish time or attributes")
    event_type = str(attributes.get("eventType", ""))
    event = SecretEvent(message_id, _instant(published), event_type)
    if event_type != SECRET_ROTATE:
        return event  # routed nowhere: its secret does not matter
    matched = _SECRET.match(str(attributes.get("secretId", "")))
    if matched is None:
        raise MalformedPush("a SECRET_ROTATE event without a valid secretId attribute")
    return SecretEvent(
        message_id,
        event.published_at,
        event_type,
        project=matched.group(1),
        secret_id=matched.group(2),
        annotations=_annotations(message.get("data")),
    )


def _text(message: dict[str, Any], *names: str) -> str:
    for name in names:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(_FRACTION.sub(r"\1", text))
    except ValueError as exc:
        raise MalformedPush("the publish time is not an RFC 3339 instant") from exc
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _annotations(data: object) -> dict[str, str]:
    """The Secret resource's annotations, from the message data; empty when unreadable
    (they only break a tie between policies, see ``bridge.gcp_push.route``)."""
    if not isinstance(data, str):
        return {}
    try:
        secret = json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return {}
    annotations = secret.get("annotations") if isinstance(secret, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {str(k): str(v) for k, v in annotations.items()}


__all__ = ["SECRET_ROTATE", "MalformedPush", "SecretEvent", "parse_push"]
