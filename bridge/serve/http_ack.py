"""``POST /v1/ack``: a consumer acknowledges the key it uses by authenticating with it.

The request carries the key itself (``X-API-Key``) and names its policy, consumer and
replica (``{"policy": ..., "consumer": ..., "replica": ...}``). The service accepts it only
when the key's fingerprint is one of that policy's live generations and the consumer is
one of its consumers, and records the ack with the proof of possession the gates check
(``bridge.engine.ack``): the consumer needs nothing but its key and this URL.

A refusal never says which part was wrong (an unknown key, policy or consumer all read
the same), and a client is slowed down (``429``) after a few of them, so the endpoint is
no oracle for guessing keys or names. Nothing of the key is logged: its short key and
fingerprint only, once accepted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bridge.config import BridgeConfig
from bridge.engine.ack import REPLICA, AckError, acknowledge
from bridge.errors import BridgeError
from bridge.logs import event
from bridge.secrets import KEY_PATTERN, Secret
from bridge.state import StateStore

log = logging.getLogger("bridge.serve")
MAX_BODY = 4096
REFUSED = "unknown key, policy or consumer"


class AckRefused(Exception):
    """The ack cannot be recorded; ``status`` and ``message`` are what the caller sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Acked:
    policy: str
    consumer: str
    replica: str
    rotation_id: str
    short_key: str | None
    fingerprint: str
    current: bool


class Limiter:
    """A token bucket per client address, and a stricter one for refusals: ``rate``
    requests a second (``burst`` at once), and ``failures`` refusals a minute."""

    def __init__(
        self,
        rate: float = 5.0,
        burst: int = 20,
        failures: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate, self._burst, self._failures = rate, burst, failures
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._refusals: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Whether ``client`` may make a request now (a refusal-heavy one may not)."""
        with self._lock:
            if self._level(self._refusals, client, self._failures / 60.0, self._failures) < 1:
                return False
            return self._take(self._buckets, client, self._rate, self._burst)

    def refused(self, client: str) -> None:
        with self._lock:
            self._take(self._refusals, client, self._failures / 60.0, self._failures)

    def _level(
        self, buckets: dict[str, tuple[float, float]], client: str, rate: float, size: int
    ) -> float:
        now = self._clock()
        level, at = buckets.get(client, (float(size), now))
        return min(float(size), level + (now - at) * rate)

    def _take(
        self, buckets: dict[str, tuple[float, float]], client: str, rate: float, size: int
    ) -> bool:
        level = self._level(buckets, client, rate, size)
        if len(buckets) > 10_000:  # many clients: forget the full buckets
            for name in [n for n, (lv, _) in buckets.items() if lv >= size]:
                del buckets[name]
        if level < 1:
            buckets[client] = (level, self._clock())
            return False
        buckets[client] = (level - 1, self._clock())
        return True


def parse(body: bytes, key_header: str | None) -> tuple[Secret, str, str, str]:
    """The key, policy, consumer and replica of an ack request.

    Raises:
        AckRefused: 400 for a malformed request, 401 for a missing or malformed key.
    """
    if not key_header or not KEY_PATTERN.fullmatch(key_header.strip()):
        raise AckRefused(401, REFUSED)
    if len(body) > MAX_BODY:
        raise AckRefused(413, f"the body is over {MAX_BODY} bytes")
    try:
        fields = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise AckRefused(400, 'the body must be JSON: {"policy", "consumer", "replica"}') from None
    names = ("policy", "consumer", "replica")
    if not isinstance(fields, dict) or not all(isinstance(fields.get(n), str) for n in names):
        raise AckRefused(400, 'the body needs "policy", "consumer" and "replica" as strings')
    if not REPLICA.fullmatch(fields["replica"]):
        raise AckRefused(400, "replica must be 1-128 of [A-Za-z0-9_.:@/-]")
    return Secret(key_header.strip()), fields["policy"], fields["consumer"], fields["replica"]


def record(
    config: BridgeConfig,
    store: StateStore,
    key: Secret,
    policy_name: str,
    consumer: str,
    replica: str,
    now: datetime,
) -> Acked:
    """Record the ack if the key is one of the policy's live keys and the consumer its own.

    Raises:
        AckRefused: 401 (the same for every wrong part), 503 when the state failed.
    """
    policy = next((p for p in config.policy if p.name == policy_name), None)
    if policy is None or consumer not in policy.consumers:
        raise AckRefused(401, REFUSED)
    try:
        record_ = store.load(policy.name)
        generation = record_.by_fingerprint(key.fingerprint)
        if generation is None or not generation.phase.live or generation.key_id is None:
            raise AckRefused(401, REFUSED)
        acknowledge(store, policy, consumer, key, now, replica=replica)
    except AckError:
        raise AckRefused(401, REFUSED) from None
    except BridgeError as exc:
        event(log, "http_ack_failed", level=logging.ERROR, policy=policy.name, error=exc)
        raise AckRefused(503, "the state cannot be written now; retry") from None
    current = record_.current()
    acked = Acked(
        policy.name,
        consumer,
        replica,
        generation.rotation_id,
        generation.short_key,
        key.fingerprint,
        current is not None and current.rotation_id == generation.rotation_id,
    )
    event(
        log,
        "http_ack",
        policy=policy.name,
        consumer=consumer,
        replica=replica,
        short_key=generation.short_key,
        current=acked.current,
    )
    return acked


__all__ = ["AckRefused", "Acked", "Limiter", "parse", "record"]
