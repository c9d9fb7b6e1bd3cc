"""Where the LangSmith API lives: region origins and endpoint normalisation.

Users configure endpoints in every form the SDKs accept (``https://host``,
``https://host/``, ``https://host/api``, ``https://host/api/v1/``). Like the Go SDK and the
Terraform provider, the client reduces each to an origin and requests
``<origin>/api/v1/<route>`` from it.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final
from urllib.parse import urlsplit

REGION_ENDPOINTS: Final = MappingProxyType(
    {
        "us": "https://api.smith.langchain.com",
        "eu": "https://eu.api.smith.langchain.com",
        "apac": "https://apac.api.smith.langchain.com",
        "aws-us": "https://aws.api.smith.langchain.com",
    }
)
"""SaaS API origins by region name (read-only). An organisation, and so its keys, lives
in exactly one region."""

API_PREFIX: Final = "/api/v1"
_SUFFIXES: Final = ("/api/v1", "/api")


def normalize_endpoint(endpoint: str) -> str:
    """Reduce a configured LangSmith endpoint to the origin that routes hang off.

    Strips surrounding whitespace, trailing slashes and one trailing ``/api/v1`` or
    ``/api``. A path prefix in front of those (a self-hosted instance behind a reverse
    proxy) is kept.

    Args:
        endpoint: The configured URL, e.g. ``https://eu.api.smith.langchain.com/api/v1/``.

    Returns:
        The origin without a trailing slash, e.g. ``https://eu.api.smith.langchain.com``.

    Raises:
        ValueError: The endpoint is empty, not ``http``/``https``, has no host, or carries
            credentials, a query or a fragment.
    """
    text = endpoint.strip() if isinstance(endpoint, str) else ""
    if not text:
        raise ValueError("LangSmith endpoint is empty")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError as exc:
        raise ValueError("LangSmith endpoint is not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("LangSmith endpoint must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("LangSmith endpoint has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("LangSmith endpoint must not carry credentials")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError("LangSmith endpoint must not have a query or fragment")
    path = parts.path.rstrip("/")
    for suffix in _SUFFIXES:
        if path.endswith(suffix):
            path = path[: -len(suffix)].rstrip("/")
            break
    return f"{scheme}://{parts.netloc.lower()}{path}"
