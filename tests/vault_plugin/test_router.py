"""The engine's paths as OpenBao calls them, at unit speed: the router on a dict for the
host's storage and the in-memory LangSmith fake (the transport has tests of its own)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from bridge.secrets_engine.storage import MemoryStorage
from tests.secrets_engine.test_dynamic_creds import WS, Clock
from tests.support.fakes import FakeKeyService
from vault_plugin.contract import (
    ERR_BAD_REQUEST,
    ERR_UNSUPPORTED_OPERATION,
    ERR_UNSUPPORTED_PATH,
    LeasedSecret,
    PluginRequest,
    PluginResponse,
)
from vault_plugin.router import LangSmithRouter


@dataclass
class FakeHost:
    storage: MemoryStorage = field(default_factory=MemoryStorage)

    def default_lease_ttl(self) -> timedelta:
        return timedelta(hours=768)

    def max_lease_ttl(self) -> timedelta:
        return timedelta(hours=768)


@dataclass
class Engine:
    router: LangSmithRouter
    keys: FakeKeyService
    host: FakeHost

    def call(self, operation: str, path: str, **data: object) -> PluginResponse:
        return self.router.handle(PluginRequest(operation, path, dict(data), display_name="tok"))


@pytest.fixture
def engine() -> Engine:
    keys, host = FakeKeyService(), FakeHost()
    router = LangSmithRouter(host, "1234abcd-ef00-1111", {}, keys=lambda _c: keys, clock=Clock())
    made = Engine(router, keys, host)
    assert made.call("update", "config", endpoint="http://ls", admin_key="lsv2_sk_x").error is None
    return made


def test_the_admin_key_is_write_only(engine: Engine) -> None:
    data = engine.call("read", "config").data
    assert data is not None and data["endpoint"] == "http://ls" and data["admin_key_set"]
    assert "admin_key" not in data and "lsv2_sk_x" not in str(data)


def test_roles_are_written_read_listed_and_deleted(engine: Engine) -> None:
    written = engine.call("create", "roles/ci", workspaces=WS[0], ttl="1m", max_ttl="10m")
    assert written.error is None
    role = engine.call("read", "roles/ci").data
    assert role is not None and (role["ttl"], role["max_ttl"], role["workspaces"]) == (
        60,
        600,
        [WS[0]],
    )
    assert engine.call("list", "roles/").data == {"keys": ["ci"]}
    assert engine.router.existence("update", "roles/ci") == (True, True)
    engine.call("delete", "roles/ci")
    assert engine.call("read", "roles/ci") == PluginResponse()  # the core's 404


def test_creds_come_with_a_lease_that_renews_and_revokes(engine: Engine) -> None:
    engine.call("update", "roles/ci", workspaces=",".join(WS), ttl="1m", max_ttl="10m")

    issued = engine.call("read", "creds/ci", ttl="30s")

    assert issued.secret is not None and issued.data is not None
    assert issued.secret.ttl == timedelta(seconds=30)
    assert issued.secret.max_ttl == timedelta(minutes=10)
    assert issued.data["LANGSMITH_WORKSPACE_ID"] == WS[0]  # several workspaces: the first
    assert set(issued.data) >= {"api_key", "key_id", "short_key", "expires_at"}
    lease = LeasedSecret(issued.secret.internal, issued.secret.ttl, issued.secret.max_ttl)
    renewed = engine.router.handle(PluginRequest("renew", "creds/ci", secret=lease))
    assert renewed.secret is not None and renewed.secret.ttl == timedelta(minutes=1)
    engine.router.handle(PluginRequest("revoke", "creds/ci", secret=lease))
    assert engine.keys.listing == {}


def test_refusals_say_what_was_wrong(engine: Engine) -> None:
    engine.call("update", "roles/ci", workspaces=WS[0])
    cases = {
        ("read", "nowhere"): ERR_UNSUPPORTED_PATH,
        ("delete", "creds/ci"): ERR_UNSUPPORTED_OPERATION,
        ("resolve-path", "creds/ci"): ERR_UNSUPPORTED_OPERATION,
        ("update", "roles/bad"): ERR_BAD_REQUEST,  # no workspaces
    }
    for (operation, path), err_type in cases.items():
        answer = engine.call(operation, path)
        assert answer.error is not None and answer.error.err_type == err_type, (operation, path)
    bad_ttl = engine.call("read", "creds/ci", ttl="soon")
    assert bad_ttl.error is not None and "ttl" in bad_ttl.error.message
    foreign = engine.router.handle(
        PluginRequest("revoke", "creds/ci", secret=LeasedSecret({"secret_type": "x"}))
    )
    assert foreign.error is not None and foreign.error.err_type == ERR_UNSUPPORTED_OPERATION


def test_every_path_has_help(engine: Engine) -> None:
    for path in ("", "config", "rotate-root", "roles/ci", "creds/ci"):
        answer = engine.call("help", path)
        assert answer.data is not None and len(str(answer.data["help"])) > 40


def test_rollback_is_the_sweep(engine: Engine) -> None:
    assert engine.call("rollback", "") == PluginResponse()


def test_static_roles_rotate_behind_acks_over_the_paths(engine: Engine) -> None:
    written = engine.call(
        "update", "static-roles/svc", workspaces=WS[0], consumers="api", min_overlap="0s"
    )
    assert written.error is None
    assert engine.call("list", "static-roles/").data == {"keys": ["svc"]}
    assert engine.call("read", "static-creds/svc") == PluginResponse()  # none yet: 404
    engine.call("rollback", "")
    first = engine.call("read", "static-creds/svc").data
    assert first is not None and first["api_key"]

    assert engine.call("update", "rotate-role/svc").data == {"rotated": "svc"}
    second = engine.call("read", "static-creds/svc").data
    assert second is not None and second["previous_api_key"] == first["api_key"]
    refused = engine.call(
        "update", "static-roles/svc/ack", consumer="api", replica="r", api_key="lsv2_sk_nope"
    )
    assert refused.error is not None and refused.error.err_type == ERR_BAD_REQUEST
    acked = engine.call(
        "update", "static-roles/svc/ack", consumer="api", replica="r", api_key=second["api_key"]
    )
    assert acked.error is None
    engine.call("rollback", "")
    third = engine.call("read", "static-creds/svc").data
    assert third is not None and "previous_api_key" not in third
    assert len(engine.keys.listing) == 1
