"""Every store and state call of a run goes through one guard: a bound on the calls in
flight to each store, and retries of what is worth retrying.

The retry rule is the LangSmith client's, under the same ``RetryPolicy``: a failure is
retried when its ``BridgeError.retryable`` says so (throttling, a store unavailable), and
nothing else is read. SDK-level retries are pinned off where the engine retries (see
``providers.aws.sdk``), so two loops never stack. Retrying is safe because every provider
verb and state write is idempotent (publish writes nothing when the content is there;
a DynamoDB save recognises its own write).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TypeVar

from bridge.errors import BridgeError
from bridge.langsmith import RetryPolicy
from bridge.logs import event
from bridge.payload import Payload, Stored
from bridge.provider import Known, Observed, Provider, Staging
from bridge.state import Ack, Lease, PolicyRecord, StateStore

log = logging.getLogger("bridge.engine")
T = TypeVar("T")
STATE = "state"  # the semaphore name of state calls


class Guard:
    """One semaphore per store name, and the retry loop.

    Args:
        per_store: Calls in flight to one store at once.
        retry: The shared retry policy.
        sleep: How to wait between attempts.
        rand: Uniform ``[0, 1)`` source for jitter.
    """

    def __init__(
        self,
        per_store: int,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.per_store = per_store
        self.retry = retry
        self._sleep = sleep
        self._rand = rand
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    def semaphore(self, store: str) -> threading.BoundedSemaphore:
        with self._lock:
            if store not in self._semaphores:
                self._semaphores[store] = threading.BoundedSemaphore(self.per_store)
            return self._semaphores[store]

    def call(self, store: str, operation: str, fn: Callable[[], T]) -> T:
        """``fn()`` under ``store``'s semaphore, retried while its failure is retryable."""
        semaphore = self.semaphore(store)
        attempt = 0
        while True:
            attempt += 1
            try:
                with semaphore:
                    return fn()
            except BridgeError as exc:
                if not exc.retryable or attempt >= self.retry.max_attempts:
                    raise
                delay = self.retry.delay(attempt, getattr(exc, "retry_after", None), self._rand)
                event(
                    log,
                    "retrying",
                    level=logging.WARNING,
                    store=store,
                    operation=operation,
                    attempt=attempt,
                    delay=round(delay, 3),
                    error=exc,
                )
            self._sleep(delay)


class GuardedProvider:
    """A provider whose every call goes through the guard under its store's name."""

    def __init__(self, inner: Provider, guard: Guard) -> None:
        self.inner = inner
        self.name = inner.name
        self.reference = inner.reference
        self._guard = guard

    @property
    def staging(self) -> Staging | None:
        staging = self.inner.staging
        return None if staging is None else GuardedStaging(staging, self._guard, self.name)

    def observe(self, known: Known) -> Observed:
        return self._guard.call(self.name, "observe", lambda: self.inner.observe(known))

    def read(self) -> Stored | None:
        return self._guard.call(self.name, "read", self.inner.read)

    def publish(self, payload: Payload) -> str:
        return self._guard.call(self.name, "publish", lambda: self.inner.publish(payload))

    def retire(self, version: str) -> None:
        self._guard.call(self.name, "retire", lambda: self.inner.retire(version))

    def discard(self, rotation_id: str) -> None:
        self._guard.call(self.name, "discard", lambda: self.inner.discard(rotation_id))

    def validate(self) -> None:
        self._guard.call(self.name, "validate", self.inner.validate)


class GuardedStaging:
    """The staging capability of a guarded provider, guarded too."""

    def __init__(self, inner: Staging, guard: Guard, store: str) -> None:
        self.inner = inner
        self._guard = guard
        self._store = store

    def stage_pending(self, payload: Payload, token: str | None = None) -> str:
        return self._guard.call(
            self._store, "stage_pending", lambda: self.inner.stage_pending(payload, token)
        )

    def read_version(self, version: str) -> Stored | None:
        return self._guard.call(
            self._store, "read_version", lambda: self.inner.read_version(version)
        )

    def promote(self, version: str) -> None:
        self._guard.call(self._store, "promote", lambda: self.inner.promote(version))

    def current_version(self) -> str | None:
        return self._guard.call(self._store, "current_version", self.inner.current_version)


class GuardedState:
    """A state store whose calls are retried under the guard (no semaphore is needed for
    correctness; one shared name bounds the calls in flight to the backend).

    ``LeaseLost`` and ``StateConflict`` are not retryable, so a fenced save that lost its
    lease fails at once; the lease handle the inner store yields is passed through as is.
    """

    def __init__(self, inner: StateStore, guard: Guard) -> None:
        self.inner = inner
        self._guard = guard

    def load(self, policy: str) -> PolicyRecord:
        return self._guard.call(STATE, "load", lambda: self.inner.load(policy))

    def save(self, record: PolicyRecord) -> PolicyRecord:
        return self._guard.call(STATE, "save", lambda: self.inner.save(record))

    def policies(self) -> list[str]:
        return self._guard.call(STATE, "policies", self.inner.policies)

    def record_ack(self, policy: str, ack: Ack) -> None:
        self._guard.call(STATE, "record_ack", lambda: self.inner.record_ack(policy, ack))

    def acks(self, policy: str, consumers: Sequence[str] | None = None) -> list[Ack]:
        return self._guard.call(STATE, "acks", lambda: self.inner.acks(policy, consumers))

    def record_run(self, policy: str, at: datetime, error: str | None) -> None:
        self._guard.call(STATE, "record_run", lambda: self.inner.record_run(policy, at, error))

    def deployment_id(self) -> str:
        return self._guard.call(STATE, "deployment_id", self.inner.deployment_id)

    @contextlib.contextmanager
    def lease(self, policy: str, owner: str, ttl: timedelta) -> Iterator[Lease]:
        # Taking the lease is retried; the block itself is not (a failure inside it is the
        # block's own, and its steps retry their calls).
        def enter() -> tuple[AbstractContextManager[Lease], Lease]:
            held = self.inner.lease(policy, owner, ttl)
            return held, held.__enter__()

        held, handle = self._guard.call(STATE, "lease", enter)
        try:
            yield handle
        except BaseException as exc:
            if not held.__exit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            held.__exit__(None, None, None)

    def close(self) -> None:
        self.inner.close()
