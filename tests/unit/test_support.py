"""The test support's own promises: a fake that lies makes every test built on it lie."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.config.file import FileTarget
from bridge.errors import (
    LangSmithAuthError,
    LangSmithNotFound,
    LangSmithServerError,
    LeaseHeld,
    ProviderUnavailable,
    StateConflict,
)
from bridge.payload import Payload
from bridge.secrets import KEY_PATTERN, Secret
from bridge.state import Ack, PolicyRecord
from providers import Connections
from tests.support.env import ISOLATED_PREFIXES, isolate_environment
from tests.support.fakes import FakeKeyService, MemoryState
from tests.support.faults import ALWAYS, Faults, FaultyProvider, faulty_targets
from tests.support.keys import new_key, rotation_id

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def unavailable() -> ProviderUnavailable:
    return ProviderUnavailable("down", provider="file", operation="publish", reference="x")


# -- keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sk", "pt"])
def test_new_keys_have_the_documented_shape_and_never_repeat(kind: str) -> None:
    key = new_key(kind)
    assert re.fullmatch(rf"lsv2_{kind}_[0-9a-f]{{32}}_[0-9a-f]{{10}}", key)
    assert len(key) == 51 and KEY_PATTERN.fullmatch(key)
    assert new_key(kind) != key


def test_rotation_ids_are_shaped_as_the_engine_makes_them() -> None:
    assert re.fullmatch(r"20261127T120000Z-[0-9a-f]{16}", rotation_id(T0))
    assert len(rotation_id()) == 33


# -- the environment -------------------------------------------------------------------


def test_every_test_starts_without_the_developers_credentials() -> None:
    """The root conftest's autouse fixture has run before this test."""
    assert [name for name in os.environ if name.upper().startswith(ISOLATED_PREFIXES)] == []


def test_isolating_removes_every_credential_setting_and_keeps_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leaked = ["LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "AWS_PROFILE", "VAULT_TOKEN"]
    leaked += ["BAO_ADDR", "GOOGLE_APPLICATION_CREDENTIALS"]
    for name in leaked:
        monkeypatch.setenv(name, "from the shell")
    monkeypatch.setenv("BRIDGE_TEST_UNRELATED", "kept")

    assert isolate_environment(monkeypatch) == sorted(leaked)
    assert not set(leaked) & set(os.environ)
    assert os.environ["BRIDGE_TEST_UNRELATED"] == "kept"


# -- FakeKeyService --------------------------------------------------------------------


def test_the_fake_key_service_mints_real_secrets_and_lists_them() -> None:
    keys = FakeKeyService(clock=lambda: T0)
    created = keys.create_service_key(description="d", expires_at=T0 + timedelta(days=1))

    assert isinstance(created.key, Secret) and KEY_PATTERN.fullmatch(created.key.reveal())
    assert list(keys.list_service_keys()) == [created.info]
    assert created.info.created_at == T0 and created.info.expires_at == T0 + timedelta(days=1)
    assert not KEY_PATTERN.search(created.info.short_key)
    keys.verify_key(created.key)  # accepted while listed


def test_the_fake_key_service_answers_as_langsmith_for_deleted_and_rejected_keys() -> None:
    keys = FakeKeyService()
    deleted = keys.create_service_key(description="a")
    refused = keys.create_service_key(description="b")
    keys.delete_service_key(deleted.info.id)
    keys.reject(refused.info.id)

    with pytest.raises(LangSmithNotFound):
        keys.delete_service_key(deleted.info.id)
    for key in (deleted.key, refused.key, Secret(new_key())):
        with pytest.raises(LangSmithAuthError):
            keys.verify_key(key)


def test_the_fake_key_service_records_every_call_in_order_without_key_material() -> None:
    keys = FakeKeyService()
    created = keys.create_service_key(description="d")
    keys.verify_key(created.key)
    keys.delete_service_key(created.info.id)
    keys.list_service_keys()

    assert [(c.verb, c.arg) for c in keys.calls] == [
        ("create_service_key", "d"),
        ("verify_key", created.key.fingerprint),
        ("delete_service_key", created.info.id),
        ("list_service_keys", None),
    ]
    assert created.key.reveal() not in repr(keys.calls)


def test_the_fake_key_service_fails_a_call_once_or_always() -> None:
    keys = FakeKeyService()
    keys.fail("list_service_keys", LangSmithServerError("x", operation="list", status=502))
    keys.fail("delete_service_key", LangSmithServerError("y", operation="d"), times=ALWAYS)

    with pytest.raises(LangSmithServerError):
        keys.list_service_keys()
    assert list(keys.list_service_keys()) == []
    for _ in range(3):
        with pytest.raises(LangSmithServerError, match="y"):
            keys.delete_service_key("k")
    assert [c.failed for c in keys.calls] == [True, False, True, True, True]


# -- MemoryState -----------------------------------------------------------------------


def test_memory_state_saves_by_compare_and_swap() -> None:
    state = MemoryState()
    first = state.save(PolicyRecord(policy="p"))

    assert first.version == 1 and state.load("p") == first
    with pytest.raises(StateConflict):
        state.save(PolicyRecord(policy="p"))  # stale: version 0
    assert state.save(first).version == 2
    assert [r.version for r in state.history] == [1, 2]
    assert state.policies() == ["p"]


def test_memory_state_leases_are_exclusive_and_released_after_the_block() -> None:
    state = MemoryState()
    with state.lease("p", "one", timedelta(minutes=1)):
        with pytest.raises(LeaseHeld), state.lease("p", "two", timedelta(minutes=1)):
            pass
        with state.lease("q", "two", timedelta(minutes=1)):
            pass
    with state.lease("p", "two", timedelta(minutes=1)):
        assert state.leases == {"p": "two"}


def test_memory_state_keeps_each_consumers_latest_ack() -> None:
    state = MemoryState()
    state.record_ack("p", Ack(consumer="api", fingerprint="sha256:1", at=T0))
    state.record_ack("p", Ack(consumer="api", fingerprint="sha256:2", at=T0))
    state.record_ack("p", Ack(consumer="worker", fingerprint="sha256:1", at=T0))

    assert state.acks("p", ["api"]) == [Ack(consumer="api", fingerprint="sha256:2", at=T0)]
    assert [a.consumer for a in state.acks("p")] == ["api", "worker"] and state.acks("q") == []


# -- faults ----------------------------------------------------------------------------


def test_faults_answer_as_many_calls_as_armed() -> None:
    faults = Faults({"publish": unavailable()}, times=2)
    faults.arm("read", unavailable(), times=ALWAYS)

    assert [faults.take("publish") is not None for _ in range(3)] == [True, True, False]
    assert all(faults.take("read") is not None for _ in range(5))
    with pytest.raises(ValueError, match="at least 1"):
        faults.arm("retire", unavailable(), times=0)


def file_target(tmp_path: Path, name: str) -> FileTarget:
    return FileTarget(provider="file", path=tmp_path / name)


def payload() -> Payload:
    return Payload("p", rotation_id(), Secret(new_key()))


def test_a_faulty_provider_fails_the_named_verb_then_delegates(tmp_path: Path) -> None:
    with Connections() as connections:
        inner = connections.open(file_target(tmp_path, "a.env"), "p")
        faulty = FaultyProvider(inner, fail={"publish": unavailable()}, times=2)
        sent = payload()

        for _ in range(2):
            with pytest.raises(ProviderUnavailable):
                faulty.publish(sent)
        assert inner.read() is None  # nothing reached the store
        version = faulty.publish(sent)

        stored = faulty.read()
        assert stored is not None and stored.fingerprint == sent.fingerprint
        assert version and (faulty.name, faulty.reference) == (inner.name, inner.reference)
        assert faulty.staging is inner.staging
        assert [(c.verb, c.failed) for c in faulty.calls] == [
            ("publish", True),
            ("publish", True),
            ("publish", False),
            ("read", False),
        ]


def test_faulty_targets_match_by_suffix_and_count_failures_across_opens(tmp_path: Path) -> None:
    with Connections() as connections:
        open_target = faulty_targets(connections, {"b.json": {"publish": unavailable()}}, times=1)
        a = file_target(tmp_path, "a.env")
        b = FileTarget(provider="file", path=tmp_path / "b.json", format="json")

        open_target(a, "p").publish(payload())
        with pytest.raises(ProviderUnavailable):
            open_target(b, "p").publish(payload())
        open_target(b, "p").publish(payload())  # a new open: the one failure is spent

        assert [(c.where, c.failed) for c in open_target.calls] == [
            (a.target_id, False),
            (b.target_id, True),
            (b.target_id, False),
        ]
        assert len(open_target.opened) == 3


def test_faulty_targets_refuse_a_target_that_two_fault_keys_match(tmp_path: Path) -> None:
    with Connections() as connections:
        open_target = faulty_targets(connections, {".env": {}, "a.env": {}})
        with pytest.raises(ValueError, match="more than one"):
            open_target(file_target(tmp_path, "a.env"), "p")
