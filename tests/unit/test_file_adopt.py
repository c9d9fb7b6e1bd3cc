"""``adopt = true`` on a file target: a hand-written file (no marker) is taken over, a file
another policy owns never is, and observe says so before anything is written."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from bridge.config.file import FileTarget
from bridge.errors import OwnershipError
from bridge.payload import ENDPOINT, Payload
from bridge.secrets import Secret
from providers.file import FileProvider

POLICY = "adopting"


def provider(path: Path, *, adopt: bool) -> FileProvider:
    return FileProvider(FileTarget(provider="file", path=path, adopt=adopt), POLICY)


def payload(policy: str = POLICY) -> Payload:
    key = Secret("lsv2_sk_" + secrets.token_hex(16) + "_" + secrets.token_hex(5))
    return Payload(policy, "20261201T000000Z-" + secrets.token_hex(8), key, {ENDPOINT: "http://x"})


def test_a_hand_written_file_is_adoptable_and_then_ours(tmp_path: Path) -> None:
    path = tmp_path / "app.env"
    path.write_text("LANGSMITH_API_KEY=hand-placed\n")
    target = provider(path, adopt=True)
    assert target.observe({}).ownership == "adoptable"

    written = payload()
    target.publish(written)

    seen = target.observe({})
    assert (seen.ownership, seen.fingerprint) == ("ours", written.fingerprint)
    assert path.stat().st_mode & 0o777 == 0o600


def test_without_adopt_a_hand_written_file_is_foreign_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "app.env"
    path.write_text("LANGSMITH_API_KEY=hand-placed\n")
    target = provider(path, adopt=False)

    seen = target.observe({})
    assert seen.ownership == "foreign"
    assert seen.detail and "adopt = true" in seen.detail
    with pytest.raises(OwnershipError):
        target.publish(payload())
    assert path.read_text() == "LANGSMITH_API_KEY=hand-placed\n"


def test_adopt_never_takes_another_policys_file(tmp_path: Path) -> None:
    path = tmp_path / "app.env"
    other = payload("someone-else")
    FileProvider(FileTarget(provider="file", path=path), "someone-else").publish(other)
    target = provider(path, adopt=True)

    assert target.observe({}).ownership == "foreign"
    with pytest.raises(OwnershipError, match="someone-else"):
        target.publish(payload())
