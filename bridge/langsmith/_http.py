"""The request loop under ``LangSmithClient``: headers, retries, logging, decoding.

One ``Requester`` owns the ``httpx.Client``. ``send`` builds a request once and tries it
up to ``RetryPolicy.max_attempts`` times, retrying only failures whose ``retryable`` is
true, and never past the policy's total deadline (``max_elapsed``): time spent in attempts
is measured, time spent waiting is counted as the wait asked for, so an injected ``sleep``
that returns at once still sees the deadline a real one would. ``decode`` turns a response
into a parsed body, mapping a bad body to ``LangSmithProtocolError``; ``fetch`` is the two
in a row. Each attempt logs one debug line: method, route template, status, attempt number
and elapsed milliseconds, nothing else.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import httpx

from bridge.errors import (
    LangSmithAuthError,
    LangSmithError,
    LangSmithProtocolError,
    LangSmithRateLimited,
    LangSmithUnavailable,
)
from bridge.langsmith._errors import error_for_response, excerpt
from bridge.langsmith.endpoints import API_PREFIX
from bridge.langsmith.models import ShapeError
from bridge.langsmith.ratelimit import RateLimiter
from bridge.langsmith.retry import RetryPolicy, parse_retry_after
from bridge.langsmith.stats import CALLS
from bridge.secrets import Secret, fingerprint

_log = logging.getLogger("bridge.langsmith")
_T = TypeVar("_T")

# Visible ASCII only: anything else would be rejected, and echoed, by the HTTP layer.
_HEADER_VALUE: Final = re.compile(r"[\x21-\x7e]+")


class Requester:
    """Sends LangSmith requests with auth and scope headers under a retry policy.

    Args:
        endpoint: The normalised origin.
        api_key: The default key for ``X-API-Key``.
        organization_id: Sent as ``X-Organization-Id`` on org routes when not ``None``.
        client: The ``httpx.Client`` to send with (owned: ``close`` closes it).
        retry: The retry policy.
        sleep: Called with the seconds to wait between attempts.
        rand: Uniform ``[0, 1)`` source for jitter.
    """

    def __init__(
        self,
        endpoint: str,
        api_key: Secret,
        organization_id: str | None,
        client: httpx.Client,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
        rand: Callable[[], float],
        limiter: RateLimiter | None = None,
    ) -> None:
        self._limiter = limiter
        self._endpoint = endpoint
        self._api_key = api_key
        self._organization_id = organization_id
        self._client = client
        self._retry = retry
        self._sleep = sleep
        self._rand = rand

    def close(self) -> None:
        """Close the underlying ``httpx.Client``."""
        self._client.close()

    def fetch(
        self, op: str, method: str, route: str, parse: Callable[[Any], _T], **kwargs: Any
    ) -> _T:
        """``send`` a request to a fixed ``route``, then ``decode`` its body with ``parse``.

        Raises:
            LangSmithProtocolError: The body is not JSON or ``parse`` rejects its shape.
            LangSmithError: As ``send``.
        """
        return self.decode(op, self.send(op, method, route, route, **kwargs), parse)

    def decode(self, op: str, response: httpx.Response, parse: Callable[[Any], _T]) -> _T:
        """Decode ``response``'s JSON body and ``parse`` it.

        Raises:
            LangSmithProtocolError: The body is not JSON or ``parse`` rejects its shape.
        """
        status = response.status_code
        try:
            body = response.json()
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            kind = excerpt(response.headers.get("content-type", "no content-type"), 60)
            size = len(response.content)
            message = f"response is not JSON ({kind}, {size} bytes)"
            raise LangSmithProtocolError(message, operation=op, status=status) from exc
        try:
            return parse(body)
        except ShapeError as exc:
            message = f"unexpected response shape: {exc}"
            raise LangSmithProtocolError(message, operation=op, status=status) from exc

    def send(
        self,
        op: str,
        method: str,
        template: str,
        path: str,
        *,
        org: bool = False,
        tenant: str | None = None,
        key: Secret | None = None,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        base: str | None = None,
    ) -> httpx.Response:
        """Send ``method`` to ``/api/v1<path>`` and return the first 2xx response.

        Args:
            op: The client method, for errors.
            method: The HTTP method.
            template: The route with placeholders, for logs (``/api-key/{api_key_id}``).
            path: The route with ids filled in.
            org: Whether this is an org route (adds ``X-Organization-Id`` when known).
            tenant: The workspace for ``X-Tenant-Id``, if any.
            key: The key to authenticate with instead of the client's own.
            body: A JSON body.
            params: Query parameters.
            base: Send to ``<base><path>`` instead (no ``/api/v1`` added): a consumer's
                ``LANGSMITH_ENDPOINT`` joined as its SDK joins it.

        Raises:
            LangSmithError: The mapped failure of the last attempt.
        """
        # Every retryable failure is retried, POST included: a create whose response was
        # lost may have succeeded, and the engine heals the duplicate key by the marker in
        # its description. Retrying is safer than leaving a rotation stuck half-way.
        secret = (self._api_key if key is None else key).reveal()  # the one reveal
        if not _HEADER_VALUE.fullmatch(secret):
            message = "the key is empty or has characters an HTTP header cannot carry"
            raise LangSmithAuthError(message, operation=op)
        headers = {"X-API-Key": secret}
        if org and self._organization_id is not None:
            headers["X-Organization-Id"] = self._organization_id
        if tenant is not None:
            headers["X-Tenant-Id"] = tenant
        prefix = f"{self._endpoint}{API_PREFIX}" if base is None else base
        url = prefix + path
        request = self._client.build_request(method, url, headers=headers, json=body, params=params)
        return self._with_retries(
            op, request, (API_PREFIX if base is None else "") + template, secret
        )

    def _with_retries(
        self, op: str, request: httpx.Request, template: str, secret: str
    ) -> httpx.Response:
        policy = self._retry
        attempt = 1
        spent = 0.0  # attempts as measured, waits as asked for: see the module docstring
        while True:
            hint: float | None = None
            started = time.monotonic()
            try:
                response = self._attempt(op, request, template, attempt, secret)
            except LangSmithUnavailable as err:
                failure: LangSmithError = err
            else:
                if response.is_success:
                    return response
                now = time.time()
                failure = error_for_response(op, response, now, scrub=secret, method=request.method)
                hint = parse_retry_after(response.headers, now)
            spent += time.monotonic() - started
            if (
                attempt >= policy.max_attempts
                or not failure.retryable
                or policy.waits_too_long(hint)
            ):
                raise failure
            limited = isinstance(failure, LangSmithRateLimited)
            wait = policy.delay(attempt, hint, self._rand, rate_limited=limited)
            if policy.past_deadline(spent, wait):
                _log.debug(
                    "%s %s giving up: a %.1fs wait would pass the %gs deadline",
                    request.method,
                    template,
                    wait,
                    policy.max_elapsed,
                )
                raise failure
            self._sleep(wait)
            spent += wait
            attempt += 1

    def _attempt(
        self, op: str, request: httpx.Request, template: str, attempt: int, secret: str
    ) -> httpx.Response:
        if self._limiter is not None:
            self._limiter.acquire(fingerprint(secret))
        started = time.monotonic()
        status = "-"
        try:
            response = self._client.send(request)
            status = str(response.status_code)
            return response
        except httpx.TimeoutException as exc:
            raise LangSmithUnavailable(f"timed out ({type(exc).__name__})", operation=op) from exc
        except httpx.TransportError as exc:
            reason = f"{type(exc).__name__}: {excerpt(str(exc), 100, scrub=secret)}"
            raise LangSmithUnavailable(f"no response ({reason})", operation=op) from exc
        except httpx.DecodingError as exc:
            message = "response body could not be decoded"
            raise LangSmithProtocolError(message, operation=op) from exc
        finally:
            elapsed = time.monotonic() - started
            CALLS.record(op, status, elapsed)
            elapsed_ms = round(elapsed * 1000)
            _log.debug(
                "%s %s status=%s attempt=%d elapsed_ms=%d",
                request.method,
                template,
                status,
                attempt,
                elapsed_ms,
            )
