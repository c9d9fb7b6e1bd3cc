"""Static roles on the bridge's own engine, at unit speed: a key published to the mount's
storage, rotated on request, the previous one kept readable while it waits, and revoked
only after the consumer acknowledges with the new key."""

from __future__ import annotations

import pytest

from bridge.engine.ack import AckError
from bridge.secrets_engine.errors import BadRequest, NotFound
from bridge.secrets_engine.models import EngineConfig
from bridge.secrets_engine.static import StaticRoles
from bridge.secrets_engine.storage import MemoryStorage
from tests.secrets_engine.test_dynamic_creds import WS, Clock
from tests.support.fakes import FakeKeyService

CONFIG = EngineConfig(endpoint="http://127.0.0.1:1984", admin_key="x")


@pytest.fixture
def roles() -> tuple[StaticRoles, FakeKeyService]:
    keys = FakeKeyService()
    made = StaticRoles(MemoryStorage(), lambda _c: keys, Clock(), "vault-m1")
    made.write(
        "svc", {"workspaces": WS[0], "consumers": "api", "ack": "explicit", "min_overlap": "0s"}
    )
    return made, keys


def test_a_static_key_rotates_behind_its_consumers_ack(
    roles: tuple[StaticRoles, FakeKeyService],
) -> None:
    static, keys = roles
    with pytest.raises(NotFound, match="no key yet"):
        static.creds("svc")

    static.run(CONFIG)
    first = static.creds("svc")
    assert first["LANGSMITH_ENDPOINT"] == "http://127.0.0.1:1984"
    assert "previous_api_key" not in first

    report = static.run(CONFIG, "svc", force=True)
    assert report is not None and report.ok
    second = static.creds("svc")
    assert second["api_key"] != first["api_key"]
    assert second["previous_api_key"] == first["api_key"]  # readable while it waits
    static.run(CONFIG)
    assert len(keys.listing) == 2  # no ack yet: the old key lives

    static.ack("svc", "api", "api-0", str(second["api_key"]))
    static.run(CONFIG)

    assert len(keys.listing) == 1
    assert "previous_api_key" not in static.creds("svc")


def test_static_roles_are_checked_by_the_bridges_policy_rules(
    roles: tuple[StaticRoles, FakeKeyService],
) -> None:
    static, _keys = roles
    with pytest.raises(BadRequest, match="consumer"):
        static.write("bad", {"workspaces": WS[0], "ack": "explicit"})
    with pytest.raises(BadRequest, match="unknown"):
        static.write("bad", {"workspaces": WS[0], "colour": "blue"})
    with pytest.raises(BadRequest, match="key_ttl"):
        static.write("bad", {"workspaces": WS[0], "ack": "grace", "key_ttl": "1d"})
    static.run(CONFIG)
    with pytest.raises(AckError):
        static.ack("svc", "intruder", "r", str(static.creds("svc")["api_key"]))
    assert static.names() == ["svc"]
