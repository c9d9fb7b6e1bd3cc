"""The provider contract: what the engine may rely on from every secret store adapter.

Each scenario runs once per entry of ``FACTORIES`` (``conftest.py``), against a fresh, absent
target. A scenario speaks only through the ``Provider`` protocol and the store's ``tamper``.
"""

from __future__ import annotations

import secrets
import uuid

import pytest

from bridge.errors import OwnershipError, ProviderError
from bridge.payload import ENDPOINT, WORKSPACE_ID, Payload
from bridge.secrets import Secret
from tests.contract.conftest import Target
from tests.support.errors import full_text
from tests.support.keys import new_key

OTHER_POLICY = "someone-elses-policy"


def payload(policy: str, rotation_id: str | None = None, **settings: str) -> Payload:
    """A payload with a fresh key; settings default to an endpoint and a workspace id."""
    return Payload(
        policy=policy,
        rotation_id=rotation_id or f"20250101T000000Z-{secrets.token_hex(3)}",
        api_key=Secret(new_key()),
        settings=settings or {ENDPOINT: "http://127.0.0.1:1984", WORKSPACE_ID: str(uuid.uuid4())},
    )


# -- reading and publishing ------------------------------------------------------------


def test_read_of_an_absent_target_is_none(target: Target) -> None:
    assert target.provider.read() is None


def test_publish_then_read_returns_the_same_fingerprint_settings_policy_and_rotation(
    target: Target,
) -> None:
    written = payload(target.policy)

    version = target.provider.publish(written)
    stored = target.provider.read()

    assert stored is not None
    assert stored.fingerprint == written.fingerprint
    assert stored.api_key == written.api_key
    assert dict(stored.settings) == dict(written.settings)
    assert stored.policy == target.policy
    assert stored.rotation_id == written.rotation_id
    assert stored.version == version


def test_publishing_the_same_payload_again_writes_nothing(target: Target) -> None:
    written = payload(target.policy)
    first = target.provider.publish(written)
    before = target.tamper.snapshot()

    second = target.provider.publish(written)

    assert second == first
    assert target.tamper.snapshot() == before


def test_a_new_generation_replaces_the_old_one(target: Target) -> None:
    old, new = payload(target.policy), payload(target.policy)
    old_version = target.provider.publish(old)

    new_version = target.provider.publish(new)
    stored = target.provider.read()

    assert new_version != old_version
    assert stored is not None
    assert (stored.fingerprint, stored.rotation_id) == (new.fingerprint, new.rotation_id)


def test_changed_settings_with_the_same_key_are_written(target: Target) -> None:
    first = payload(target.policy)
    target.provider.publish(first)
    moved = Payload(
        policy=first.policy,
        rotation_id=first.rotation_id,
        api_key=first.api_key,
        settings={**first.settings, ENDPOINT: "https://eu.api.smith.langchain.com"},
    )

    target.provider.publish(moved)
    stored = target.provider.read()

    assert stored is not None
    assert stored.settings[ENDPOINT] == "https://eu.api.smith.langchain.com"


def test_a_target_deleted_out_of_band_reads_absent_and_publish_recreates_it(
    target: Target,
) -> None:
    written = payload(target.policy)
    target.provider.publish(written)
    target.tamper.delete()

    assert target.provider.read() is None
    target.provider.publish(written)
    stored = target.provider.read()
    assert stored is not None
    assert stored.fingerprint == written.fingerprint


# -- ownership -------------------------------------------------------------------------


def test_a_target_written_by_someone_else_is_never_overwritten(target: Target) -> None:
    target.tamper.write_foreign({"LANGSMITH_API_KEY": new_key(), "OWNER": "a human"})
    before = target.tamper.snapshot()

    with pytest.raises(OwnershipError) as caught:
        target.provider.publish(payload(target.policy))

    assert target.tamper.snapshot() == before
    assert caught.value.provider == target.provider.name
    assert caught.value.operation == "publish"
    assert caught.value.reference == target.provider.reference
    stored = target.provider.read()
    assert stored is not None
    assert stored.policy is None


def test_a_target_owned_by_another_policy_is_never_overwritten(target: Target) -> None:
    theirs = payload(OTHER_POLICY)
    target.tamper.write_owned_by(theirs)
    before = target.tamper.snapshot()

    with pytest.raises(OwnershipError):
        target.provider.publish(payload(target.policy))

    assert target.tamper.snapshot() == before
    stored = target.provider.read()
    assert stored is not None
    assert (stored.policy, stored.fingerprint) == (OTHER_POLICY, theirs.fingerprint)


def test_a_payload_written_by_this_policy_elsewhere_is_recognised_as_owned(
    target: Target,
) -> None:
    """An earlier run (or another replica of this bridge) wrote it: it may be replaced."""
    target.tamper.write_owned_by(payload(target.policy))
    new = payload(target.policy)

    target.provider.publish(new)

    stored = target.provider.read()
    assert stored is not None
    assert stored.fingerprint == new.fingerprint


# -- retire ----------------------------------------------------------------------------


def test_retiring_an_old_version_never_changes_what_consumers_read(target: Target) -> None:
    old_version = target.provider.publish(payload(target.policy))
    new = payload(target.policy)
    target.provider.publish(new)

    target.provider.retire(old_version)
    target.provider.retire(old_version)  # already retired: still fine

    stored = target.provider.read()
    assert stored is not None
    assert (stored.fingerprint, stored.rotation_id) == (new.fingerprint, new.rotation_id)


# -- validate --------------------------------------------------------------------------


def test_discarding_a_rotation_never_changes_what_consumers_read(target: Target) -> None:
    current = payload(target.policy)
    target.provider.publish(current)
    target.provider.discard(current.rotation_id)  # even the current one's: never un-published
    target.provider.discard("20250101T000000Z-0123456789abcdef")  # unknown: a no-op
    stored = target.provider.read()
    assert stored is not None and stored.fingerprint == current.fingerprint


def test_discard_of_an_absent_target_is_a_no_op(target: Target) -> None:
    target.provider.discard("20250101T000000Z-0123456789abcdef")
    assert target.provider.read() is None


def test_validate_passes_on_a_fresh_target_and_writes_nothing(target: Target) -> None:
    target.provider.validate()

    assert target.tamper.snapshot() is None
    assert target.provider.read() is None


def test_validate_passes_on_a_target_this_policy_owns(target: Target) -> None:
    target.provider.publish(payload(target.policy))
    before = target.tamper.snapshot()

    target.provider.validate()

    assert target.tamper.snapshot() == before


@pytest.mark.parametrize("owner", ["someone else", "another policy"])
def test_validate_fails_on_a_target_the_policy_does_not_own(target: Target, owner: str) -> None:
    if owner == "someone else":
        target.tamper.write_foreign({"LANGSMITH_API_KEY": new_key()})
    else:
        target.tamper.write_owned_by(payload(OTHER_POLICY))
    before = target.tamper.snapshot()

    with pytest.raises(ProviderError) as caught:
        target.provider.validate()

    assert caught.value.operation == "validate"
    assert target.tamper.snapshot() == before


# -- secret hygiene --------------------------------------------------------------------


def test_no_repr_or_error_text_reveals_a_key(target: Target) -> None:
    ours = payload(target.policy)
    target.provider.publish(ours)
    stored = target.provider.read()
    texts = [repr(ours), str(ours), repr(stored), str(stored), target.provider.reference]

    foreign_key = new_key()
    # A hand-written file may hold a key under a legacy name too; neither may show.
    target.tamper.write_foreign(
        {"LANGSMITH_API_KEY": foreign_key, "LANGCHAIN_API_KEY": foreign_key}
    )
    for attempt in (
        lambda: target.provider.publish(payload(target.policy)),
        target.provider.validate,
    ):
        with pytest.raises(ProviderError) as caught:
            attempt()
        texts.append(full_text(caught.value))

    foreign = target.provider.read()
    texts += [repr(foreign), str(foreign)]
    for key in (ours.api_key.reveal(), foreign_key):
        for fragment in (key, key[8:40], key[-10:]):
            assert not [text for text in texts if fragment in text]


def test_closing_the_connection_is_safe_to_call_twice(target: Target) -> None:
    target.provider.publish(payload(target.policy))
    target.connections.close()
    target.connections.close()


# -- observing: the one ownership decision ---------------------------------------------


def test_observing_an_absent_target_sees_it_absent(target: Target) -> None:
    seen = target.provider.observe({})

    assert (seen.ownership, seen.fingerprint, seen.exists) == ("absent", None, False)


def test_observing_a_published_target_sees_it_ours_with_its_key_and_version(
    target: Target,
) -> None:
    written = payload(target.policy)
    version = target.provider.publish(written)

    seen = target.provider.observe({})

    assert (seen.ownership, seen.fingerprint, seen.version) == (
        "ours",
        written.fingerprint,
        version,
    )
    assert seen.owner == target.policy


def test_a_recorded_version_still_current_is_observed_without_reading_the_value(
    target: Target,
) -> None:
    written = payload(target.policy)
    version = target.provider.publish(written)

    seen = target.provider.observe({version: written.fingerprint})

    assert (seen.ownership, seen.fingerprint, seen.version) == (
        "ours",
        written.fingerprint,
        version,
    )
    assert not seen.content_read


def test_a_value_changed_behind_a_recorded_version_is_read_again(target: Target) -> None:
    old = payload(target.policy)
    version = target.provider.publish(old)
    edited = payload(target.policy, rotation_id=old.rotation_id)
    target.tamper.write_owned_by(edited)  # someone edits the key in place, marker kept

    seen = target.provider.observe({version: old.fingerprint})

    assert seen.content_read
    assert (seen.ownership, seen.fingerprint) == ("ours", edited.fingerprint)


def test_a_value_the_bridge_did_not_write_is_foreign_without_adopt(target: Target) -> None:
    target.tamper.write_foreign({"LANGSMITH_API_KEY": new_key()})

    seen = target.provider.observe({})

    assert seen.ownership == "foreign"
    assert seen.detail


def test_another_policys_target_is_foreign(target: Target) -> None:
    target.tamper.write_owned_by(payload(OTHER_POLICY))

    seen = target.provider.observe({})

    assert seen.ownership == "foreign"
    assert seen.owner == OTHER_POLICY


def test_what_observe_calls_foreign_publish_refuses(target: Target) -> None:
    target.tamper.write_owned_by(payload(OTHER_POLICY))
    assert target.provider.observe({}).ownership == "foreign"
    before = target.tamper.snapshot()

    with pytest.raises(ProviderError):
        target.provider.publish(payload(target.policy))

    assert target.tamper.snapshot() == before
