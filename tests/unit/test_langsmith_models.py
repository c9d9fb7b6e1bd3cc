"""Parsing of the documented response shapes, new (S1) and old (S2) alike."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bridge.langsmith import ApiKey, CreatedKey, Workspace
from bridge.langsmith.models import (
    ShapeError,
    parse_api_key,
    parse_api_keys,
    parse_created_key,
    parse_workspaces,
)
from bridge.secrets import Secret

SECRET_TEXT = "lsv2_sk_" + "9f" * 16 + "_" + "0a1b2c3d4e"

FULL_S1_KEY: dict[str, Any] = {
    "id": "5c5b7d43-4b1e-4d39-9d4f-2c4f0f4d6a11",
    "short_key": "lsv2_sk_...4e",
    "description": "bridge:orders:r1",
    "created_at": "2026-08-01T12:00:00.123456+00:00",
    "read_only": False,
    "last_used_at": "2026-08-02T08:30:00Z",
    "expires_at": "2099-12-31T00:00:00Z",
    "workspace_names": ["Orders", "Billing"],
    "default_workspace_name": None,
    "role_id": "e3a0b0c8-0000-4000-8000-000000000001",
    "org_role_id": None,
    "access_scope": "workspace",
    "created_by": {"some": "future field"},
}

MINIMAL_S2_KEY = {"id": "k-1", "short_key": "lsv2_sk_...aa", "description": "old server"}


def test_full_s1_key_parses_every_field() -> None:
    key = parse_api_key(FULL_S1_KEY)
    assert key == ApiKey(
        id="5c5b7d43-4b1e-4d39-9d4f-2c4f0f4d6a11",
        short_key="lsv2_sk_...4e",
        description="bridge:orders:r1",
        created_at=datetime(2026, 8, 1, 12, 0, 0, 123456, tzinfo=UTC),
        last_used_at=datetime(2026, 8, 2, 8, 30, tzinfo=UTC),
        expires_at=datetime(2099, 12, 31, tzinfo=UTC),
        workspace_names=("Orders", "Billing"),
        access_scope="workspace",
        role_id="e3a0b0c8-0000-4000-8000-000000000001",
        org_role_id=None,
    )


def test_optional_fields_absent_as_older_servers_send_them_read_as_none() -> None:
    key = parse_api_key(MINIMAL_S2_KEY)
    assert key == ApiKey(id="k-1", short_key="lsv2_sk_...aa", description="old server")
    assert (key.created_at, key.expires_at, key.workspace_names, key.access_scope) == (None,) * 4


def test_explicit_nulls_read_as_none() -> None:
    nulls = dict.fromkeys(("created_at", "expires_at", "workspace_names", "role_id"))
    assert parse_api_key({**MINIMAL_S2_KEY, **nulls}) == parse_api_key(MINIMAL_S2_KEY)


def test_datetime_without_offset_is_taken_as_utc_and_offsets_are_kept() -> None:
    naive = parse_api_key({**MINIMAL_S2_KEY, "created_at": "2026-08-01T12:00:00"})
    assert naive.created_at == datetime(2026, 8, 1, 12, tzinfo=UTC)
    shifted = parse_api_key({**MINIMAL_S2_KEY, "created_at": "2026-08-01T14:00:00+02:00"})
    assert shifted.created_at == datetime(2026, 8, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    assert shifted.created_at == naive.created_at


def test_api_key_is_frozen() -> None:
    key = parse_api_key(MINIMAL_S2_KEY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.id = "other"  # type: ignore[misc]


def test_list_body_parses_each_item() -> None:
    keys = parse_api_keys([FULL_S1_KEY, MINIMAL_S2_KEY])
    assert [k.id for k in keys] == [FULL_S1_KEY["id"], "k-1"]
    assert parse_api_keys([]) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"short_key": "s", "description": "d"}, "id"),
        ({"id": 7, "short_key": "s", "description": "d"}, "id"),
        ({"id": "k", "description": "d"}, "short_key"),
        ({"id": "k", "short_key": "s", "description": None}, "description"),
        ({**MINIMAL_S2_KEY, "created_at": "yesterday"}, "created_at"),
        ({**MINIMAL_S2_KEY, "expires_at": 1700000000}, "expires_at"),
        ({**MINIMAL_S2_KEY, "workspace_names": "Orders"}, "workspace_names"),
        ({**MINIMAL_S2_KEY, "workspace_names": ["Orders", 3]}, "workspace_names"),
        ({**MINIMAL_S2_KEY, "access_scope": 1}, "access_scope"),
    ],
)
def test_wrong_shape_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ShapeError, match=field):
        parse_api_key(body)


@pytest.mark.parametrize("body", [None, "[]", {"items": []}, 3])
def test_list_body_must_be_an_array(body: object) -> None:
    with pytest.raises(ShapeError, match="expected an array"):
        parse_api_keys(body)


def test_list_item_errors_carry_the_index() -> None:
    with pytest.raises(ShapeError, match=r"\[1\]\.short_key"):
        parse_api_keys([MINIMAL_S2_KEY, {"id": "x", "description": "d"}])


def test_created_key_wraps_the_secret_and_repr_hides_it() -> None:
    created = parse_created_key({**FULL_S1_KEY, "key": SECRET_TEXT})
    assert isinstance(created, CreatedKey)
    assert created.key.reveal() == SECRET_TEXT
    assert created.info == parse_api_key(FULL_S1_KEY)
    for text in (repr(created), str(created), f"{created}", repr(created.key)):
        assert SECRET_TEXT not in text
        assert SECRET_TEXT[8:40] not in text
    assert created.key.fingerprint in repr(created)


@pytest.mark.parametrize("key", [None, "", 42, ["lsv2"]])
def test_created_key_requires_a_non_empty_string_key(key: object) -> None:
    with pytest.raises(ShapeError, match="key"):
        parse_created_key({**MINIMAL_S2_KEY, "key": key})


def test_shape_errors_never_quote_values() -> None:
    with pytest.raises(ShapeError) as info:
        parse_created_key({"id": SECRET_TEXT, "short_key": 1, "description": "d", "key": "x"})
    assert SECRET_TEXT not in str(info.value)
    with pytest.raises(ShapeError) as info:
        parse_created_key({**MINIMAL_S2_KEY, "key": [SECRET_TEXT]})
    assert SECRET_TEXT not in str(info.value)


def test_workspaces_parse_and_is_deleted_defaults_to_false() -> None:
    body = [
        {
            "id": "ws-1",
            "created_at": "2026-01-01T00:00:00Z",
            "display_name": "Orders",
            "is_personal": False,
            "is_deleted": False,
            "tenant_handle": "orders",
            "permissions": ["runs:read"],
        },
        {"id": "ws-2", "display_name": "Gone", "is_deleted": True},
        {"id": "ws-3", "display_name": "Old server"},
    ]
    assert parse_workspaces(body) == [
        Workspace(id="ws-1", display_name="Orders", is_deleted=False),
        Workspace(id="ws-2", display_name="Gone", is_deleted=True),
        Workspace(id="ws-3", display_name="Old server", is_deleted=False),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([{"display_name": "x"}], r"\[0\]\.id"),
        ([{"id": "w", "display_name": None}], "display_name"),
        ([{"id": "w", "display_name": "x", "is_deleted": "no"}], "is_deleted"),
        (["ws-1"], r"\[0\]"),
        ({"id": "w"}, "expected an array"),
    ],
)
def test_wrong_workspace_shape_names_the_field(body: object, field: str) -> None:
    with pytest.raises(ShapeError, match=field):
        parse_workspaces(body)


def test_created_key_equality_uses_the_secret() -> None:
    info = parse_api_key(MINIMAL_S2_KEY)
    assert CreatedKey(info, Secret("a")) == CreatedKey(info, Secret("a"))
    assert CreatedKey(info, Secret("a")) != CreatedKey(info, Secret("b"))
