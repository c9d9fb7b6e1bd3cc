"""``org_info`` (the organisation's expiry caps) and ``list_roles``."""

from __future__ import annotations

from typing import Any

import pytest

from bridge import errors
from bridge.langsmith import OrgInfo, Role
from tests.unit.test_langsmith_fakes import ORG_ID, Reply, serve

# OrganizationInfo as S1 documents it, trimmed to the fields around the caps.
INFO_BODY: dict[str, Any] = {
    "id": ORG_ID,
    "display_name": "Acme",
    "config": {"can_set_api_key_max_expiry": True},
    "is_personal": False,
    "tier": "enterprise",
    "pat_creation_disabled": False,
    "max_api_key_expiry_days": 365,
    "max_pat_expiry_days": 90,
    "max_service_key_expiry_days": 30,
    "permissions": ["organization:manage"],
}


def test_org_info_reads_the_expiry_caps() -> None:
    _, client = serve(Reply(200, json=INFO_BODY))
    with client:
        info = client.org_info()
    assert info == OrgInfo(
        id=ORG_ID,
        display_name="Acme",
        max_service_key_expiry_days=30,
        max_pat_expiry_days=90,
        max_api_key_expiry_days=365,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"config": {}, "is_personal": False},  # an older server: no caps at all
        {**INFO_BODY, "max_service_key_expiry_days": None, "max_pat_expiry_days": None},
    ],
)
def test_no_cap_reads_as_none(body: dict[str, Any]) -> None:
    _, client = serve(Reply(200, json=body))
    with client:
        info = client.org_info()
    assert info.max_service_key_expiry_days is None
    assert info.max_pat_expiry_days is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_service_key_expiry_days", "30"),
        ("max_service_key_expiry_days", True),
        ("max_pat_expiry_days", 30.5),
        ("id", 7),
    ],
)
def test_a_cap_of_the_wrong_type_is_a_protocol_error(field: str, value: object) -> None:
    _, client = serve(Reply(200, json={**INFO_BODY, field: value}))
    with client, pytest.raises(errors.LangSmithProtocolError, match=field):
        client.org_info()


def test_org_info_needs_an_object() -> None:
    _, client = serve(Reply(200, json=[INFO_BODY]))
    with client, pytest.raises(errors.LangSmithProtocolError, match="expected an object"):
        client.org_info()


def test_roles_parse_with_their_scope() -> None:
    body = [
        {"id": "r1", "name": "ORGANIZATION_ADMIN", "display_name": "Organization Admin",
         "access_scope": "organization", "permissions": ["x"]},
        {"id": "r2", "display_name": "Viewer", "access_scope": "workspace"},
        {"id": "r3"},
    ]  # fmt: skip
    _, client = serve(Reply(200, json=body))
    with client:
        roles = client.list_roles()
    assert roles == [
        Role("r1", "Organization Admin", "organization", "ORGANIZATION_ADMIN"),
        Role("r2", "Viewer", "workspace"),
        Role("r3"),
    ]


@pytest.mark.parametrize("body", [{"roles": []}, [{"display_name": "no id"}], [{"id": 1}]])
def test_a_bad_role_listing_is_a_protocol_error(body: object) -> None:
    _, client = serve(Reply(200, json=body))
    with client, pytest.raises(errors.LangSmithProtocolError):
        client.list_roles()
