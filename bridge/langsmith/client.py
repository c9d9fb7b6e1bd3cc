"""A small synchronous client for LangSmith's API-key management routes.

It speaks to ``<origin>/api/v1/<route>`` (and, to verify a new key, to the consumer's own
endpoint as its SDK would), maps every failure into ``bridge.errors`` (``LangSmithError``
and its subclasses, each naming the operation and HTTP status; the client's own in
``bridge.langsmith.errors``) and retries those marked ``retryable`` under a
``RetryPolicy``. The network is an injectable
``httpx`` transport; sleeping and jitter are injectable too, so tests run instantly.

The API key leaves the process only as the ``X-API-Key`` header: it is never logged and
never put into an exception message. Response excerpts in messages pass through
``bridge.secrets.redact`` and are cut to 200 characters.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from bridge import __version__
from bridge.errors import (
    LangSmithAuthError,
    LangSmithError,
    LangSmithPermissionError,
    WorkspaceRequired,
)
from bridge.langsmith.endpoints import normalize_endpoint
from bridge.langsmith.errors import KeyNotAccepted
from bridge.langsmith.models import (
    ApiKey,
    CreatedKey,
    KeyListing,
    OrgInfo,
    Role,
    ShapeError,
    Skipped,
    Workspace,
    parse_api_keys,
    parse_api_keys_leniently,
    parse_created_key,
    parse_http_date,
    parse_org_info,
    parse_roles,
    parse_workspaces,
)
from bridge.langsmith.ratelimit import RateLimiter
from bridge.langsmith.retry import RetryPolicy
from bridge.logs import event
from bridge.secrets import Secret

if TYPE_CHECKING:
    import httpx

DEFAULT_RETRY: Final = RetryPolicy()
DEFAULT_USER_AGENT: Final = f"langsmith-bridge/{__version__}"

SERVICE_KEYS: Final = "/orgs/current/service-keys"
WORKSPACE_KEYS: Final = "/api-key"
WORKSPACES: Final = "/workspaces"
SESSIONS: Final = "/sessions"
ORG_INFO: Final = "/orgs/current/info"
ROLES: Final = "/orgs/current/roles"

_log = logging.getLogger("bridge.langsmith")

# Ids go into URL paths and headers, so only URL- and header-safe ids are accepted.
_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class LangSmithClient:
    """LangSmith API client for service keys, workspace keys and workspaces.

    Args:
        endpoint: The API endpoint in any usual form; see ``normalize_endpoint``.
        api_key: The key the client authenticates with (an org admin's service key).
        organization_id: Sent as ``X-Organization-Id`` on org routes when given.
        timeout: Seconds for connect, read, write and pool waits.
        retry: Bounds for retries of retryable failures (408, 425, 429, 5xx, no
            response, and 409 on idempotent methods), total deadline included.
        transport: An ``httpx`` transport, e.g. ``httpx.MockTransport`` in tests.
        sleep: Called with the seconds to wait between attempts.
        rand: Uniform ``[0, 1)`` source for backoff jitter.
        user_agent: The ``User-Agent`` header.
        limiter: Paces requests per key below LangSmith's rate limit, when given.

    Raises:
        ValueError: The endpoint, key or organisation id is unusable.
        TypeError: ``api_key`` is not a ``Secret``.
    """

    def __init__(
        self,
        endpoint: str,
        api_key: Secret,
        *,
        organization_id: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        user_agent: str = DEFAULT_USER_AGENT,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.endpoint: str = normalize_endpoint(endpoint)
        if not isinstance(api_key, Secret):
            raise TypeError("api_key must be a bridge.secrets.Secret")
        if not api_key:
            raise ValueError("api_key is empty")
        org = None if organization_id is None else _check_id(organization_id, "organization_id")
        self._fingerprint = api_key.fingerprint
        # httpx (tens of ms) loads with the first client, not at import: importing the
        # package, as the configuration and the Lambda entry do, stays cheap.
        import httpx

        from bridge.langsmith._http import Requester

        http = httpx.Client(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,  # a redirect must never carry X-API-Key elsewhere
            headers={"Accept": "application/json", "User-Agent": user_agent},
        )
        self._http = Requester(self.endpoint, api_key, org, http, retry, sleep, rand, limiter)

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LangSmithClient({self.endpoint!r}, key={self._fingerprint})"

    # Organisation-level service keys -------------------------------------------------

    def list_service_keys(self) -> KeyListing:
        """All service keys of the organisation, org- and workspace-scoped, with
        LangSmith's clock.

        An entry that does not parse (no ``id``, a bad date, a wrong type) is left out and
        logged as a ``service_key_skipped`` warning naming its index, the field and, when
        present, its id and ``short_key``; ``KeyListing.skipped`` counts them. One broken
        entry must not blind a whole run. ``served_at`` is the response's ``Date`` (the
        listing is one page; were it ever paginated, the last page's ``Date`` would be
        the instant the listing is complete by).

        Raises:
            LangSmithProtocolError: The body is not JSON or not an array.
            LangSmithError: As any call.
        """
        op = "list_service_keys"
        response = self._http.send(op, "GET", SERVICE_KEYS, SERVICE_KEYS, org=True)
        keys, skipped = self._http.decode(op, response, parse_api_keys_leniently)
        for entry in skipped:
            _log_skipped(entry)
        served_at = parse_http_date(response.headers.get("date"))
        return KeyListing(tuple(keys), served_at=served_at, skipped=len(skipped))

    def create_service_key(
        self,
        *,
        description: str,
        expires_at: datetime | None = None,
        workspaces: Sequence[str] | None = None,
        role_id: str | None = None,
        org_role_id: str | None = None,
    ) -> CreatedKey:
        """Create a service key; ``workspaces=None`` makes it organisation-wide.

        Raises:
            ValueError: ``expires_at`` is naive, or ``workspaces`` is a bare string.
        """
        if isinstance(workspaces, str):
            raise ValueError("workspaces must be a sequence of workspace ids, not a string")
        body = _create_body(description, expires_at, role_id)
        if workspaces is not None:
            body["workspaces"] = list(workspaces)
        if org_role_id is not None:
            body["org_role_id"] = org_role_id
        op = "create_service_key"
        return self._http.fetch(op, "POST", SERVICE_KEYS, parse_created_key, org=True, body=body)

    def delete_service_key(self, key_id: str) -> None:
        """Delete a service key; ``LangSmithNotFound`` if it is already gone."""
        path = f"{SERVICE_KEYS}/{_check_id(key_id, 'key_id')}"
        template = SERVICE_KEYS + "/{api_key_id}"
        self._http.send("delete_service_key", "DELETE", template, path, org=True)

    # Workspace keys (X-Tenant-Id) ------------------------------------------------------

    def list_workspace_keys(self, workspace_id: str) -> list[ApiKey]:
        """The API keys of one workspace."""
        tenant = _check_id(workspace_id, "workspace_id")
        op = "list_workspace_keys"
        return self._http.fetch(op, "GET", WORKSPACE_KEYS, parse_api_keys, tenant=tenant)

    def create_workspace_key(
        self,
        workspace_id: str,
        *,
        description: str,
        expires_at: datetime | None = None,
        role_id: str | None = None,
    ) -> CreatedKey:
        """Create a key scoped to one workspace.

        Raises:
            ValueError: ``expires_at`` is naive.
        """
        tenant = _check_id(workspace_id, "workspace_id")
        body = _create_body(description, expires_at, role_id)
        op = "create_workspace_key"
        return self._http.fetch(
            op, "POST", WORKSPACE_KEYS, parse_created_key, tenant=tenant, body=body
        )

    def delete_workspace_key(self, workspace_id: str, key_id: str) -> None:
        """Delete a workspace key; ``LangSmithNotFound`` if it is already gone."""
        tenant = _check_id(workspace_id, "workspace_id")
        path = f"{WORKSPACE_KEYS}/{_check_id(key_id, 'key_id')}"
        template = WORKSPACE_KEYS + "/{api_key_id}"
        self._http.send("delete_workspace_key", "DELETE", template, path, tenant=tenant)

    # Workspaces and key checks ---------------------------------------------------------

    def list_workspaces(self) -> list[Workspace]:
        """The workspaces visible to the client's key in its organisation."""
        return self._http.fetch("list_workspaces", "GET", WORKSPACES, parse_workspaces, org=True)

    def verify_key(
        self, key: Secret, *, workspace_id: str | None = None, endpoint: str | None = None
    ) -> None:
        """Prove that ``key`` is accepted the way a consumer will use it.

        The request is the consumer SDK's own first read, ``GET <endpoint>/sessions?limit=1``
        (tenant discovery and the first page of ``list_projects``) with ``X-Tenant-Id:
        workspace_id``, at the URL the SDK builds from ``LANGSMITH_ENDPOINT`` (its value
        with trailing slashes stripped, ``/sessions`` appended). Without ``workspace_id`` it
        is ``GET <endpoint>/workspaces`` instead: an org-wide key published without a
        workspace can read no workspace route, and that org route is what it can read.
        Like the SDK, it sends no ``X-Organization-Id``. 429, 5xx and lost responses are
        retried under the client's policy, as for any call; 401 and 403 are not (see
        ``KeyNotAccepted``): pacing the next try is the caller's business.

        Args:
            key: The key to check.
            workspace_id: The workspace a consumer's calls land in (the published
                ``LANGSMITH_WORKSPACE_ID``, or the key's only workspace).
            endpoint: The consumer's ``LANGSMITH_ENDPOINT``, which may differ from the
                client's (a ``public_endpoint``). ``None``: the client's own endpoint, at
                ``/api/v1``.

        Raises:
            KeyNotAccepted: 401 or 403: LangSmith does not accept the key for this (yet;
                it caches auth results for up to a minute, so the caller may retry later).
            WorkspaceRequired: An org-scoped key was refused for lack of a workspace; no
                retry will change that.
            LangSmithAuthError: The key cannot be sent at all (empty, or not header-safe);
                its ``status`` is ``None``.
            ValueError: ``endpoint`` or ``workspace_id`` is unusable.
            LangSmithError: Any other failure, after the retry policy is spent.
        """
        if not isinstance(key, Secret):
            raise TypeError("key must be a bridge.secrets.Secret")
        base = None if endpoint is None else consumer_base(endpoint)
        tenant = None if workspace_id is None else _check_id(workspace_id, "workspace_id")
        route, params = (WORKSPACES, None) if tenant is None else (SESSIONS, {"limit": "1"})
        op = "verify_key"
        try:
            response = self._http.send(
                op, "GET", route, route, tenant=tenant, key=key, params=params, base=base
            )
        except WorkspaceRequired:
            raise
        except (LangSmithAuthError, LangSmithPermissionError) as exc:
            if exc.status is None:
                raise
            raise KeyNotAccepted(
                f"key not accepted (yet): {_reason(exc)}", operation=op, status=exc.status
            ) from exc
        self._http.decode(op, response, _expect_list)

    # Organisation ----------------------------------------------------------------------

    def org_info(self) -> OrgInfo:
        """The organisation's settings that bound keys: its expiry caps, in days."""
        return self._http.fetch("org_info", "GET", ORG_INFO, parse_org_info, org=True)

    def list_roles(self) -> list[Role]:
        """The organisation's roles: ids for a key's ``role_id`` (workspace roles) and
        ``org_role_id`` (organisation roles), told apart by ``access_scope``."""
        return self._http.fetch("list_roles", "GET", ROLES, parse_roles, org=True)


def consumer_base(endpoint: str) -> str:
    """The base URL a consumer's SDK requests from, given its ``LANGSMITH_ENDPOINT``.

    The Python SDK strips whitespace, quotes and trailing slashes and appends the route
    (``https://host`` gives ``https://host/sessions``, which LangSmith serves as it serves
    ``/api/v1/sessions``; ``https://host/api/v1`` gives ``https://host/api/v1/sessions``).

    Raises:
        ValueError: The endpoint is not a usable LangSmith URL (see
            ``normalize_endpoint``).
    """
    if not isinstance(endpoint, str):
        raise ValueError("endpoint must be a string")
    base = endpoint.strip().strip('"').strip("'").rstrip("/")  # langsmith.utils.get_api_url
    normalize_endpoint(base)  # the same checks: scheme, host, no credentials or query
    return base


def _reason(exc: LangSmithError) -> str:
    """``exc``'s message without its ``LangSmith <op> -> HTTP <status>: `` prefix."""
    text = str(exc)
    _, sep, tail = text.partition(": ")
    return tail if sep else text


def _log_skipped(entry: Skipped) -> None:
    fields = {"index": entry.index, "reason": entry.reason}
    if entry.key_id is not None:
        fields["key_id"] = entry.key_id
    if entry.short_key is not None:
        fields["short_key"] = entry.short_key
    event(_log, "service_key_skipped", logging.WARNING, **fields)


def _check_id(value: str, name: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"{name} must be a non-empty id of letters, digits, '.', '_' or '-'")
    return value


def _create_body(
    description: str, expires_at: datetime | None, role_id: str | None
) -> dict[str, Any]:
    if not isinstance(description, str):
        raise TypeError("description must be a string")
    body: dict[str, Any] = {"description": description}
    if expires_at is not None:
        body["expires_at"] = rfc3339_utc(expires_at)
    if role_id is not None:
        body["role_id"] = role_id
    return body


def rfc3339_utc(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with a ``Z`` suffix.

    Raises:
        ValueError: ``moment`` is naive (its instant would be a guess).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("expires_at must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _expect_list(body: Any) -> None:
    if not isinstance(body, list):
        raise ShapeError("body: expected an array")
