"""The LangSmith API client: service keys, workspace keys, workspaces and key checks.

Typical use::

    from bridge.langsmith import LangSmithClient, REGION_ENDPOINTS

    with LangSmithClient(REGION_ENDPOINTS["eu"], admin_key) as client:
        created = client.create_service_key(description="bridge:orders:2026-08")
        client.verify_key(created.key, endpoint="https://eu.api.smith.langchain.com")

Every failure is a ``bridge.errors.LangSmithError``; see ``bridge.errors`` for the tree and
``bridge.langsmith.errors`` for the client's own branches (``KeyNotAccepted``, 409, 425).

The names below load on first use (PEP 562), so importing a light submodule such as
``bridge.langsmith.endpoints`` (the configuration does) costs only that submodule.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.langsmith.client import LangSmithClient
    from bridge.langsmith.endpoints import REGION_ENDPOINTS, normalize_endpoint
    from bridge.langsmith.errors import KeyNotAccepted, LangSmithConflict, LangSmithTooEarly
    from bridge.langsmith.models import ApiKey, CreatedKey, KeyListing, OrgInfo, Role, Workspace
    from bridge.langsmith.ratelimit import RateLimiter
    from bridge.langsmith.retry import RetryPolicy

_HOMES = {
    "LangSmithClient": "client",
    "REGION_ENDPOINTS": "endpoints",
    "normalize_endpoint": "endpoints",
    "ApiKey": "models",
    "CreatedKey": "models",
    "KeyListing": "models",
    "OrgInfo": "models",
    "Role": "models",
    "Workspace": "models",
    "KeyNotAccepted": "errors",
    "LangSmithConflict": "errors",
    "LangSmithTooEarly": "errors",
    "RateLimiter": "ratelimit",
    "RetryPolicy": "retry",
}

__all__ = [
    "REGION_ENDPOINTS",
    "ApiKey",
    "CreatedKey",
    "KeyListing",
    "KeyNotAccepted",
    "LangSmithClient",
    "LangSmithConflict",
    "LangSmithTooEarly",
    "OrgInfo",
    "RateLimiter",
    "RetryPolicy",
    "Role",
    "Workspace",
    "normalize_endpoint",
]


if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any name here

    def __getattr__(name: str) -> object:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(import_module(f"{__name__}.{home}"), name)
        globals()[name] = value  # later lookups skip this hook
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
