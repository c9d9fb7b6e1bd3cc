"""The LangSmith API client: service keys, workspace keys, workspaces and key checks.

Typical use::

    from bridge.langsmith import LangSmithClient, REGION_ENDPOINTS

    with LangSmithClient(REGION_ENDPOINTS["eu"], admin_key) as client:
        created = client.create_service_key(description="bridge:orders:2026-08")
        client.verify_key(created.key)

Every failure is a ``bridge.errors.LangSmithError``; see ``bridge.errors`` for the tree.
"""

from bridge.langsmith.client import LangSmithClient
from bridge.langsmith.endpoints import REGION_ENDPOINTS, normalize_endpoint
from bridge.langsmith.models import ApiKey, CreatedKey, Workspace
from bridge.langsmith.ratelimit import RateLimiter
from bridge.langsmith.retry import RetryPolicy

__all__ = [
    "REGION_ENDPOINTS",
    "ApiKey",
    "CreatedKey",
    "LangSmithClient",
    "RateLimiter",
    "RetryPolicy",
    "Workspace",
    "normalize_endpoint",
]
