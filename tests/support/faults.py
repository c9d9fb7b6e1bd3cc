"""Fault injection without monkeypatching: failures armed per verb, a ``Provider`` that
wraps a real adapter, records its calls and fails the verbs it is told to, and the
``open_target`` override that puts it under the production engine
(``bridge.wiring.build_engine(config, open_target=...)`` or ``Engine(...)``); and an HTTP
transport under the LangSmith client that refuses every key but the admin key
(``build_engine(config, transport=...)``).

Every fake here and in ``tests.support.fakes`` records into a list of ``Call`` s; give
several of them the same list and it is one ordered trail of what the engine did."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from bridge.config import TargetConfig
from bridge.payload import Payload, Stored
from bridge.provider import Known, Observed, Provider, Staging
from providers import Connections

ALWAYS = None
"""``times=ALWAYS``: the failure answers every call, never running out."""


@dataclass(frozen=True)
class Call:
    """One recorded call.

    Attributes:
        where: Who was called: ``keys``, ``state``, or a target (its id or reference).
        verb: The method called.
        arg: What it was given, never key material (a key is recorded by its fingerprint,
            a payload by its key's fingerprint, a saved record as stored).
        failed: An armed failure answered it instead of the real thing.
    """

    where: str
    verb: str
    arg: object = None
    failed: bool = False

    @property
    def name(self) -> str:
        return f"{self.where}.{self.verb}"


class Faults:
    """Failures armed per verb, each answering the next ``times`` calls of it.

    Args:
        fail: Verb -> the error its calls raise.
        times: How many calls each answers (``ALWAYS``: all of them).
    """

    def __init__(
        self, fail: Mapping[str, BaseException] | None = None, *, times: int | None = 1
    ) -> None:
        self._lock = threading.Lock()
        self._armed: dict[str, tuple[BaseException, int | None]] = {}
        for verb, error in (fail or {}).items():
            self.arm(verb, error, times=times)

    def arm(self, verb: str, error: BaseException, *, times: int | None = 1) -> None:
        """Make the next ``times`` calls of ``verb`` raise ``error`` (replacing any armed)."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or ALWAYS")
        with self._lock:
            self._armed[verb] = (error, times)

    def clear(self) -> None:
        """Disarm every failure."""
        with self._lock:
            self._armed.clear()

    def take(self, verb: str) -> BaseException | None:
        """The failure that answers this call of ``verb``, if one is armed (and count it)."""
        with self._lock:
            armed = self._armed.get(verb)
            if armed is None:
                return None
            error, left = armed
            if left == 1:
                del self._armed[verb]
            elif left is not None:
                self._armed[verb] = (error, left - 1)
        return error.with_traceback(None)  # raised again: start a fresh traceback


class Recorder:
    """Records each call under ``where`` and raises the failure armed for it, if any."""

    def __init__(self, where: str, calls: list[Call], faults: Faults) -> None:
        self.where = where
        self.calls = calls
        self.faults = faults

    def __call__(self, verb: str, arg: object = None) -> None:
        error = self.faults.take(verb)
        self.calls.append(Call(self.where, verb, arg, failed=error is not None))
        if error is not None:
            raise error


class FaultyProvider:
    """A ``bridge.provider.Provider`` that delegates to a real adapter, recording every
    call, and fails the verbs in ``fail`` before delegating.

    Args:
        inner: The real adapter.
        fail: Verb (``observe``, ``read``, ``publish``, ``retire``, ``discard``,
            ``validate``) -> the ``BridgeError`` it raises.
        times: How many calls each failure answers (``ALWAYS``: all of them).
        calls: Where calls are recorded (share it with other fakes for one trail).
        where: The name calls are recorded under (default: ``inner.reference``).
        faults: A fault table shared with other wrappers of the same target; replaces
            ``fail`` and ``times``.
    """

    def __init__(
        self,
        inner: Provider,
        fail: Mapping[str, BaseException] | None = None,
        *,
        times: int | None = 1,
        calls: list[Call] | None = None,
        where: str | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.reference = inner.reference
        self.faults = faults if faults is not None else Faults(fail, times=times)
        self.calls: list[Call] = [] if calls is None else calls
        self._record = Recorder(where or inner.reference, self.calls, self.faults)

    @property
    def staging(self) -> Staging | None:
        return self.inner.staging

    def observe(self, known: Known) -> Observed:
        self._record("observe", dict(known))
        return self.inner.observe(known)

    def read(self) -> Stored | None:
        self._record("read")
        return self.inner.read()

    def publish(self, payload: Payload) -> str:
        self._record("publish", payload.fingerprint)
        return self.inner.publish(payload)

    def retire(self, version: str) -> None:
        self._record("retire", version)
        self.inner.retire(version)

    def discard(self, rotation_id: str) -> None:
        self._record("discard", rotation_id)
        self.inner.discard(rotation_id)

    def validate(self) -> None:
        self._record("validate")
        self.inner.validate()


class FaultyTargets:
    """An ``open_target`` override: opens each target on ``connections`` and wraps it in a
    ``FaultyProvider`` recording under the target's id. A target whose id equals or ends
    with a key of ``fail`` (``".json"``, ``"out/p.env"``, a whole target id) gets that key's
    failures; one fault table per key serves every open, so ``times`` counts across the
    engine's retries and across runs.

    Attributes:
        calls: Every call of every target opened, in order.
        opened: The wrappers handed out, in order.
    """

    def __init__(
        self,
        connections: Connections,
        fail: Mapping[str, Mapping[str, BaseException]] | None = None,
        *,
        times: int | None = 1,
        calls: list[Call] | None = None,
    ) -> None:
        self.connections = connections
        self.faults = {match: Faults(verbs, times=times) for match, verbs in (fail or {}).items()}
        self.calls: list[Call] = [] if calls is None else calls
        self.opened: list[FaultyProvider] = []

    def __call__(self, target: TargetConfig, policy: str) -> Provider:
        inner = self.connections.open(target, policy)
        wrapped = FaultyProvider(
            inner, calls=self.calls, where=target.target_id, faults=self.faults_of(target)
        )
        self.opened.append(wrapped)
        return wrapped

    def faults_of(self, target: TargetConfig) -> Faults:
        """The fault table of ``target`` (an empty one when no key of ``fail`` matches)."""
        found = [
            faults
            for match, faults in self.faults.items()
            if target.target_id == match or target.target_id.endswith(match)
        ]
        if len(found) > 1:
            raise ValueError(f"more than one fault key matches {target.target_id}")
        return found[0] if found else Faults()


def faulty_targets(
    connections: Connections,
    fail: Mapping[str, Mapping[str, BaseException]] | None = None,
    *,
    times: int | None = 1,
    calls: list[Call] | None = None,
) -> FaultyTargets:
    """The ``open_target`` override that injects ``fail`` (see ``FaultyTargets``), e.g.
    ``build_engine(config, open_target=faulty_targets(connections, {".json": {"publish":
    ProviderUnavailable(...)}}, times=ALWAYS))``."""
    return FaultyTargets(connections, fail, times=times, calls=calls)


class AdminKeyOnly(httpx.BaseTransport):
    """An HTTP transport that passes the admin key's requests on and answers every other
    key's with 401, as LangSmith answers a key it does not accept: under
    ``build_engine(transport=...)``, every new key fails verification.

    Attributes:
        refused: How many requests were answered 401.
    """

    def __init__(self, admin_key: str, inner: httpx.BaseTransport | None = None) -> None:
        self.admin_key = admin_key
        self.inner = inner or httpx.HTTPTransport()
        self.refused = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("X-API-Key") != self.admin_key:
            self.refused += 1
            return httpx.Response(401, json={"detail": "Invalid token"})
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
