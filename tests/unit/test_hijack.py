"""File writes cannot be hijacked by someone who can add entries to a target or state
folder: temporaries get unguessable names and are created with ``O_EXCL | O_NOFOLLOW``,
lock files are opened with ``O_NOFOLLOW``, and a folder others can write is reported."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bridge import fsutil
from bridge.errors import StateError
from bridge.fsutil import atomic_write, unsafe_folder
from bridge.state.locks import open_lock


def test_two_writes_use_temporaries_nobody_can_predict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names: list[str] = []
    create = fsutil._create_temporary

    def spy(path: Path, mode: int) -> tuple[Path, int]:
        temporary, fd = create(path, mode)
        names.append(temporary.name)
        return temporary, fd

    monkeypatch.setattr(fsutil, "_create_temporary", spy)
    atomic_write(tmp_path / "out.env", "A=1\n")
    atomic_write(tmp_path / "out.env", "A=2\n")

    assert len(set(names)) == 2
    assert all(name.startswith(f".out.env.{os.getpid()}.") for name in names)
    assert all(len(name.split(".")[-2]) == 16 for name in names)  # 64 random bits


def test_a_symlink_planted_at_the_temporary_name_is_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stolen = tmp_path / "attacker-owned"
    stolen.write_text("")
    draws = iter(["a" * 16, "b" * 16])
    monkeypatch.setattr(fsutil.secrets, "token_hex", lambda _: next(draws))
    planted = tmp_path / f".out.env.{os.getpid()}.{'a' * 16}.tmp"
    planted.symlink_to(stolen)

    atomic_write(tmp_path / "out.env", "LANGSMITH_API_KEY=secret\n")

    assert stolen.read_text() == ""  # the symlink's target never saw the payload
    assert (tmp_path / "out.env").read_text() == "LANGSMITH_API_KEY=secret\n"
    assert planted.is_symlink()  # left alone: it is not ours


def test_leftovers_in_either_naming_are_recognised() -> None:
    assert fsutil._parse_temporary(".out.env.123.tmp") == ("out.env", 123)
    assert fsutil._parse_temporary(f".out.env.123.{'f' * 16}.tmp") == ("out.env", 123)
    assert fsutil._parse_temporary(".out.env.tmp") is None
    assert fsutil._parse_temporary("out.env.123.tmp") is None


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    lock = tmp_path / "state.db.locks" / "p.lease"
    lock.parent.mkdir()
    lock.symlink_to(elsewhere)

    with pytest.raises(StateError, match="symlink"):
        open_lock(lock)

    assert not elsewhere.exists()


def test_a_folder_others_can_write_is_reported_unless_sticky(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o700)
    assert unsafe_folder(folder) is None
    folder.chmod(0o777)
    reason = unsafe_folder(folder)
    assert reason is not None and "777" in reason
    folder.chmod(0o1777)  # like /tmp: others may add entries but not replace ours
    assert unsafe_folder(folder) is None


def test_publishing_into_a_folder_others_can_write_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bridge.config.file import FileTarget
    from providers.file import FileProvider
    from tests.unit.test_file_adopt import payload

    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o777)
    target = FileProvider(FileTarget(provider="file", path=folder / "a.env"), "adopting")
    with caplog.at_level(logging.WARNING, logger="bridge.providers"):
        target.publish(payload())
        target.publish(payload())

    warnings = [r for r in caplog.records if "target_folder_unsafe" in r.getMessage()]
    assert len(warnings) == 1
