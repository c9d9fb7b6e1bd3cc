"""``rotate-root``: the successor is verified and saved before the old admin key goes, a
failed verification leaves the old key in charge, and no sweep ever deletes the key in
charge."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.secrets_engine.creds import WAL_GRACE
from bridge.secrets_engine.errors import BadRequest, EngineError
from bridge.secrets_engine.models import EngineConfig
from bridge.secrets_engine.root import rotate_root
from bridge.secrets_engine.storage import Documents
from tests.secrets_engine.test_dynamic_creds import World

ADMIN_ROLE = "00000000-0000-4000-8000-0000000000aa"


def configure(world: World, **fields: object) -> EngineConfig:
    old = world.keys.seed("the admin key a person made")
    config = EngineConfig(
        endpoint="http://127.0.0.1:1984",
        admin_key=old.key.reveal(),
        admin_org_role_id=ADMIN_ROLE,
        **fields,  # type: ignore[arg-type]
    )
    if fields.get("admin_key_id") == "known":
        config = config.model_copy(update={"admin_key_id": old.info.id})
    Documents(world.storage).write("config", config)
    return config


def saved(world: World) -> EngineConfig:
    config = Documents(world.storage).read("config", EngineConfig)
    assert config is not None
    return config


def test_the_successor_takes_over_before_the_old_key_is_deleted() -> None:
    world = World()
    old = configure(world, admin_key_id="known")

    rotated = rotate_root(world.creds, sleep=lambda _s: None)

    now = saved(world)
    assert (now.admin_key_id, rotated.old_deleted) == (rotated.key_id, True)
    assert now.admin_key != old.admin_key
    assert set(world.keys.listing) == {rotated.key_id}  # the old key is gone
    assert world.keys.listing[rotated.key_id].org_role_id == ADMIN_ROLE
    assert world.storage.list("wal/") == []


def test_an_unknown_old_key_id_is_left_in_place_and_said() -> None:
    world = World()
    configure(world)

    rotated = rotate_root(world.creds, sleep=lambda _s: None)

    assert not rotated.old_deleted and "left in place" in rotated.warnings[0]
    assert len(world.keys.listing) == 2


def test_a_successor_langsmith_refuses_leaves_the_old_key_in_charge() -> None:
    world = World()
    old = configure(world, admin_key_id="known")
    world.keys.create_service_key = _rejecting(world)  # type: ignore[method-assign]

    with pytest.raises(EngineError, match="did not accept"):
        rotate_root(world.creds, sleep=lambda _s: None)

    assert saved(world) == old.model_copy(update={"admin_key_id": saved(world).admin_key_id})
    assert saved(world).admin_key == old.admin_key
    world.clock.now += WAL_GRACE
    world.creds.rollback()
    assert len(world.keys.listing) == 1  # the refused successor is swept, the old key kept


def test_the_key_in_charge_is_never_swept() -> None:
    world = World()
    configure(world, admin_key_id="known")
    rotated = rotate_root(world.creds, sleep=lambda _s: None)

    world.clock.now += timedelta(days=1)
    world.creds.rollback()

    assert rotated.key_id in world.keys.listing


def test_rotate_root_needs_the_org_role_it_gives_its_successor() -> None:
    world = World()
    Documents(world.storage).write("config", EngineConfig(endpoint="http://x", admin_key="k"))
    with pytest.raises(BadRequest, match="admin_org_role_id"):
        rotate_root(world.creds)


def _rejecting(world: World):  # type: ignore[no-untyped-def]
    create = world.keys.create_service_key

    def mint(**fields: object):  # type: ignore[no-untyped-def]
        created = create(**fields)  # type: ignore[arg-type]
        world.keys.reject(created.info.id)
        return created

    return mint
