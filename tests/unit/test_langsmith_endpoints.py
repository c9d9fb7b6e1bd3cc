"""Endpoint normalisation and the region table."""

from __future__ import annotations

import pytest

from bridge.langsmith import REGION_ENDPOINTS, normalize_endpoint


@pytest.mark.parametrize(
    ("configured", "origin"),
    [
        ("https://api.smith.langchain.com", "https://api.smith.langchain.com"),
        ("https://api.smith.langchain.com/", "https://api.smith.langchain.com"),
        ("https://api.smith.langchain.com//", "https://api.smith.langchain.com"),
        ("https://api.smith.langchain.com/api", "https://api.smith.langchain.com"),
        ("https://api.smith.langchain.com/api/", "https://api.smith.langchain.com"),
        ("https://api.smith.langchain.com/api/v1", "https://api.smith.langchain.com"),
        ("https://api.smith.langchain.com/api/v1/", "https://api.smith.langchain.com"),
        ("  https://eu.api.smith.langchain.com/api/v1/ \n", "https://eu.api.smith.langchain.com"),
        ("HTTPS://API.Smith.LangChain.com/api/v1", "https://api.smith.langchain.com"),
        ("http://localhost:1984/api/v1", "http://localhost:1984"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080/api", "http://[::1]:8080"),
        ("https://ls.example.com/prefix/api/v1", "https://ls.example.com/prefix"),
        ("https://ls.example.com/prefix/", "https://ls.example.com/prefix"),
        ("https://ls.example.com/myapi", "https://ls.example.com/myapi"),
    ],
)
def test_normalize_endpoint_strips_slashes_and_api_suffixes(configured: str, origin: str) -> None:
    assert normalize_endpoint(configured) == origin


@pytest.mark.parametrize("origin", sorted(REGION_ENDPOINTS.values()))
def test_region_origins_are_already_normal(origin: str) -> None:
    assert normalize_endpoint(origin) == origin
    assert normalize_endpoint(origin + "/api/v1/") == origin


def test_region_table_names_the_four_saas_regions() -> None:
    assert dict(REGION_ENDPOINTS) == {
        "us": "https://api.smith.langchain.com",
        "eu": "https://eu.api.smith.langchain.com",
        "apac": "https://apac.api.smith.langchain.com",
        "aws-us": "https://aws.api.smith.langchain.com",
    }


def test_region_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        REGION_ENDPOINTS["us"] = "https://evil.example"  # type: ignore[index]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "eu",
        "api.smith.langchain.com",
        "ftp://api.smith.langchain.com",
        "file:///etc/passwd",
        "https://",
        "https:///api/v1",
        "https://user:pw@api.smith.langchain.com",
        "https://api.smith.langchain.com/api/v1?x=1",
        "https://api.smith.langchain.com/#frag",
        "https://api.smith.langchain.com:notaport",
    ],
)
def test_normalize_endpoint_rejects_unusable_input(bad: str) -> None:
    with pytest.raises(ValueError, match="LangSmith endpoint"):
        normalize_endpoint(bad)


def test_normalize_endpoint_rejection_does_not_echo_credentials() -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        normalize_endpoint("https://user:hunter2@api.smith.langchain.com")
    assert "hunter2" not in str(info.value)
