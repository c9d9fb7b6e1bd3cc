"""The spec validator the suite relies on catches what it should."""

from __future__ import annotations

import httpx
import jsonschema
import pytest

from tests.openapi import find_operation, validate_body, validate_response

KEY_ID = "0b9d2c4e-8f21-4c55-9a53-3f3a1c7e2d10"


def good_key() -> dict[str, object]:
    return {"id": KEY_ID, "short_key": "lsv2_sk_abcd...1234", "description": "x"}


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/sessions", "/api/v1/sessions"),
        ("GET", "/api/v1/sessions/", "/api/v1/sessions"),
        ("DELETE", f"/api-key/{KEY_ID}", "/api/v1/api-key/{api_key_id}"),
        ("DELETE", "/api/v1/api-key/current/x", "/api/v1/api-key/current/{pat_id}"),
        ("GET", "/api/v1/api-key/current", "/api/v1/api-key/current"),
        ("GET", "/orgs/current/roles", None),
        ("GET", "/_emulator/keys", None),
    ],
)
def test_paths_resolve_to_spec_templates(method: str, path: str, template: str | None):
    assert find_operation(method, path) == template


def test_valid_body_passes():
    validate_body("DELETE", f"/api/v1/api-key/{KEY_ID}", 200, good_key())


@pytest.mark.parametrize(
    "broken",
    [
        {"short_key": None},
        {"id": "not-a-uuid"},
        {"expires_at": "yesterday"},
        {"access_scope": "galaxy"},
    ],
    ids=["null-short-key", "bad-uuid", "bad-date-time", "bad-enum-through-ref"],
)
def test_invalid_body_is_rejected(broken: dict[str, object]):
    with pytest.raises(jsonschema.ValidationError):
        validate_body("DELETE", f"/api/v1/api-key/{KEY_ID}", 200, {**good_key(), **broken})


def test_create_response_requires_the_key():
    with pytest.raises(jsonschema.ValidationError):
        validate_body("POST", "/api/v1/orgs/current/service-keys", 200, good_key())


def test_undocumented_error_status_needs_a_detail_envelope():
    validate_body("GET", "/api/v1/workspaces", 401, {"detail": "Invalid token"})
    with pytest.raises(jsonschema.ValidationError):
        validate_body("GET", "/api/v1/workspaces", 401, {"message": "nope"})


def test_validate_response_reads_httpx_responses():
    request = httpx.Request("GET", "http://127.0.0.1/api/v1/info")
    bad = httpx.Response(200, json={"git_sha": None}, request=request)

    with pytest.raises(jsonschema.ValidationError):
        validate_response(bad)
