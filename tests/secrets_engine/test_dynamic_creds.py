"""Dynamic credentials at unit speed: the engine's semantics on a dict for storage and the
in-memory LangSmith fake, including what a crash in the middle of a mint leaves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.marker import Marker
from bridge.secrets_engine.creds import MARGIN, ORPHAN_GRACE, WAL_GRACE, DynamicCreds, Limits
from bridge.secrets_engine.errors import BadRequest, NotFound
from bridge.secrets_engine.models import EngineConfig, Role, parse_ttl
from bridge.secrets_engine.storage import Documents, MemoryStorage
from tests.support.fakes import FakeKeyService

NOW = datetime(2026, 12, 2, 9, tzinfo=UTC)
WS = ("00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002")
LIMITS = Limits(default_ttl=timedelta(hours=1), max_ttl=timedelta(hours=24))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.keys = FakeKeyService(clock=self.clock)
        self.storage = MemoryStorage()
        self.creds = DynamicCreds(self.storage, lambda _c: self.keys, self.clock, "vault-m1")
        docs = Documents(self.storage)
        docs.write("config", EngineConfig(endpoint="http://127.0.0.1:1984", admin_key="x"))
        role = Role(
            name="ci", workspaces=WS[:1], ttl=timedelta(minutes=1), max_ttl=timedelta(minutes=10)
        )
        docs.write("roles/ci", role)


@pytest.fixture
def world() -> World:
    return World()


def test_a_lease_carries_the_key_and_its_settings_capped_at_max_ttl(world: World) -> None:
    lease = world.creds.issue("ci", timedelta(hours=2), "token", LIMITS)

    (key,) = world.keys.listing.values()
    assert (lease.ttl, lease.max_ttl) == (timedelta(minutes=10), timedelta(minutes=10))
    assert lease.data["key_id"] == key.id and lease.data["short_key"] == key.short_key
    assert lease.data["LANGSMITH_ENDPOINT"] == "http://127.0.0.1:1984"
    assert "LANGSMITH_WORKSPACE_ID" not in lease.data  # one workspace: the key implies it
    assert key.expires_at == NOW + timedelta(minutes=10) + MARGIN
    marker = Marker.parse(key.description or "")
    assert marker is not None and (marker.instance, marker.policy) == ("vault-m1", "vault.ci")
    assert (key.description or "").startswith("vault ci token ")
    assert lease.internal == {"secret_type": "langsmith_key", "key_id": key.id, "role": "ci"}
    assert world.storage.list("wal/") == [] and world.storage.list("issued/") == [key.id]


def test_the_role_ttl_is_the_default_and_a_request_may_shorten_it(world: World) -> None:
    assert world.creds.issue("ci", None, "t", LIMITS).ttl == timedelta(minutes=1)
    assert world.creds.issue("ci", timedelta(seconds=30), "t", LIMITS).ttl == timedelta(seconds=30)


def test_revoke_deletes_the_key_once_and_again_is_fine(world: World) -> None:
    lease = world.creds.issue("ci", None, "t", LIMITS)

    world.creds.revoke(lease.internal)
    world.creds.revoke(lease.internal)  # LangSmith's 404: already revoked

    assert world.keys.listing == {}
    with pytest.raises(NotFound):
        world.creds.renew(lease.internal, LIMITS)


def test_renew_moves_only_the_lease(world: World) -> None:
    lease = world.creds.issue("ci", None, "t", LIMITS)
    (key,) = world.keys.listing.values()

    assert world.creds.renew(lease.internal, LIMITS) == timedelta(minutes=1)
    assert list(world.keys.listing.values()) == [key]


class CrashAfterMint:
    """A LangSmith client whose mint succeeds, then the process dies (the call raises)."""

    def __init__(self, keys: FakeKeyService) -> None:
        self.keys = keys

    def create_service_key(self, **fields: Any) -> Any:
        self.keys.create_service_key(**fields)
        raise SystemExit("killed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.keys, name)


def test_rollback_deletes_the_key_of_a_mint_a_crash_cut_short(world: World) -> None:
    crashing = DynamicCreds(
        world.storage, lambda _c: CrashAfterMint(world.keys), world.clock, "vault-m1"
    )  # type: ignore[arg-type,return-value]
    with pytest.raises(SystemExit):
        crashing.issue("ci", None, "t", LIMITS)
    assert len(world.keys.listing) == 1 and len(world.storage.list("wal/")) == 1

    assert world.creds.rollback().orphans_deleted == []  # maybe still in flight
    world.clock.now += WAL_GRACE
    swept = world.creds.rollback()

    assert world.keys.listing == {} and world.storage.list("wal/") == []
    assert len(swept.orphans_deleted) == len(swept.wal_cleared) == 1


def test_rollback_deletes_unindexed_keys_of_this_mount_only(world: World) -> None:
    lease = world.creds.issue("ci", None, "t", LIMITS)
    ours = Marker("vault-m1", "vault.ci", "deadbeef").description()
    theirs = Marker("vault-m2", "vault.ci", "deadbeef").description()
    bridges = Marker("d0123456789ab", "tracing", "20261202T000000Z-00").description()
    stray = world.keys.seed(ours)
    kept = [world.keys.seed(theirs), world.keys.seed(bridges), world.keys.seed("by hand")]

    world.clock.now += ORPHAN_GRACE
    world.creds.rollback()

    assert stray.info.id not in world.keys.listing
    assert {k.info.id for k in kept} | {str(lease.data["key_id"])} == set(world.keys.listing)


def test_unconfigured_unknown_and_foreign_requests_are_refused() -> None:
    storage = MemoryStorage()
    creds = DynamicCreds(storage, lambda _c: FakeKeyService(), Clock(), "vault-m1")
    with pytest.raises(BadRequest, match="not configured"):
        creds.issue("ci", None, "t", LIMITS)
    Documents(storage).write("config", EngineConfig(endpoint="http://x", admin_key="k"))
    with pytest.raises(NotFound):
        creds.issue("nope", None, "t", LIMITS)
    with pytest.raises(BadRequest):
        creds.revoke({"secret_type": "other", "key_id": "k"})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60", 60), (90, 90), ("1m", 60), ("10m", 600), ("1h30m", 5400), ("30d", 2592000)],
)
def test_ttls_read_as_vault_users_write_them(text: object, seconds: int) -> None:
    assert parse_ttl(text) == timedelta(seconds=seconds)
