"""A damaged file target is one clear, non-retryable ``ProviderError`` naming its path and
never its content, whatever is there: garbage, a huge file, JSON nested 60000 deep, a
directory, a FIFO (which must not block), a dangling or looping symlink. Observing it gives
a view with an error (so the planner blocks that policy alone), and nothing is written."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.config.targets import FileTarget
from bridge.engine import observe_targets
from bridge.errors import BridgeError, OwnershipError, ProviderError
from bridge.payload import API_KEY, ENDPOINT, MAX_PAYLOAD_BYTES, Format, Payload
from bridge.secrets import Secret
from providers.file import FileProvider
from tests.support.keys import new_key, rotation_id

POLICY = "damaged"


def provider_at(path: Path, fmt: Format = "json") -> FileProvider:
    return FileProvider(FileTarget(provider="file", path=path, format=fmt), POLICY)


def payload() -> Payload:
    return Payload(POLICY, rotation_id(), Secret(new_key()), {ENDPOINT: "https://x.test"})


def hides(key: str, text: str) -> bool:
    return key not in text and key[8:40] not in text and key[-10:] not in text


# -- content that is no payload --------------------------------------------------------

CONTENT: dict[str, tuple[Format, Callable[[str], bytes], str]] = {
    "invalid JSON": ("json", lambda k: f'{{"{API_KEY}": "{k}",'.encode(), "not valid JSON"),
    "invalid dotenv": ("dotenv", lambda k: f"the key: {k}\n".encode(), "line 1 is not NAME=value"),
    "a JSON array": ("json", lambda k: json.dumps([k]).encode(), "a JSON array"),
    "a non-string value": (
        "json",
        lambda k: json.dumps({"X": k, "N": 1}).encode(),
        "is a JSON number",
    ),
    "binary garbage": ("json", lambda k: b"\xff\xfe\x00" + k.encode() + b"\x81", "not UTF-8"),
    "JSON nested 60000 deep": ("json", lambda k: b"[" * 60_000 + k.encode(), "nested too deeply"),
    "a NUL": ("dotenv", lambda k: f"{API_KEY}={k}\x00\n".encode(), "NUL"),
}


@pytest.mark.parametrize("name", CONTENT)
def test_content_that_is_no_payload_is_one_line_naming_the_file(tmp_path: Path, name: str) -> None:
    fmt, build, reason = CONTENT[name]
    key = new_key()
    path = tmp_path / "target.env"
    content = build(key)
    path.write_bytes(content)
    provider = provider_at(path, fmt)

    (view,) = observe_targets({"t": provider})
    with pytest.raises(ProviderError) as reading:
        provider.read()
    with pytest.raises(OwnershipError) as publishing:
        provider.publish(payload())

    assert view.error is not None and str(path) in view.error and reason in view.error
    assert str(reading.value) == view.error.replace("observe", "read", 1)
    for text in (view.error, str(reading.value), str(publishing.value)):
        assert hides(key, text)
        assert "\n" not in text
    assert not reading.value.retryable
    assert reading.value.__cause__ is None
    assert path.read_bytes() == content  # nothing touched


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.env"
    with path.open("wb") as handle:  # sparse: a gigabyte that costs no disk
        handle.truncate(1 << 30)
    provider = provider_at(path, "dotenv")

    with pytest.raises(ProviderError, match="too large to be a payload: 1073741824 bytes"):
        provider.read()
    with pytest.raises(ProviderError, match="too large"):
        provider.publish(payload())
    (view,) = observe_targets({"t": provider})
    assert view.error is not None and "too large" in view.error
    assert path.stat().st_size == 1 << 30


def test_a_file_just_over_the_limit_is_refused_and_one_at_the_limit_is_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.env"
    line = f"{API_KEY}={new_key()}\n"
    path.write_text(line + "#" * (MAX_PAYLOAD_BYTES - len(line) - 1) + "\n")
    assert provider_at(path, "dotenv").read() is not None

    path.write_text(path.read_text() + "#")
    with pytest.raises(ProviderError, match=f"{MAX_PAYLOAD_BYTES + 1} bytes"):
        provider_at(path, "dotenv").read()


# -- paths that are no file ------------------------------------------------------------


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere.env")


def _loop(path: Path) -> None:
    path.symlink_to(path)


def _under_a_file(path: Path) -> None:
    path.parent.rmdir()
    path.parent.write_text("a file where a folder should be\n")


NOT_A_FILE: dict[str, tuple[Callable[[Path], None], str]] = {
    "a directory": (_directory, "is a directory, not a regular file"),
    "a FIFO": (_fifo, "is a FIFO (named pipe), not a regular file"),
    "a dangling symlink": (_dangling, "is a symbolic link to a file that does not exist"),
    "a symlink loop": (_loop, "cannot stat: Too many levels of symbolic links"),
    "a path under a file": (_under_a_file, "cannot stat: Not a directory"),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", NOT_A_FILE)
def test_a_path_that_is_no_file_is_a_clear_error_at_once(tmp_path: Path, name: str) -> None:
    make, reason = NOT_A_FILE[name]
    path = tmp_path / "folder" / "target.env"
    path.parent.mkdir()
    make(path)
    provider = provider_at(path)

    outcomes: dict[str, BaseException | object] = {}

    def attempt() -> None:  # in a thread, so that a blocking open fails the test, not hangs it
        for verb, call in {
            "observe": lambda: provider.observe({}),
            "read": provider.read,
            "publish": lambda: provider.publish(payload()),
            "validate": provider.validate,
        }.items():
            try:
                outcomes[verb] = call()
            except BaseException as exc:
                outcomes[verb] = exc

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():
        if path.is_fifo():
            with path.open("w"):  # give the blocked open its writer, so the thread ends
                pass
        pytest.fail(f"reading {name} blocked")

    for verb, outcome in outcomes.items():
        assert isinstance(outcome, ProviderError), (verb, outcome)
        assert isinstance(outcome, BridgeError)
        assert not outcome.retryable, verb
        assert str(outcome) == f"file {verb} {path}: {reason}"
    (view,) = observe_targets({"t": provider})
    assert view.error == f"file observe {path}: {reason}"
    assert not (tmp_path / "folder" / "nowhere.env").exists()  # nothing written through it


def test_a_symlink_to_a_payload_is_still_read_through(tmp_path: Path) -> None:
    real, link = tmp_path / "real.env", tmp_path / "link.env"
    provider_at(real).publish(written := payload())
    link.symlink_to(real)

    stored = provider_at(link).read()

    assert stored is not None and stored.same_content(written)


def test_the_version_read_is_the_identity_of_the_file_read(tmp_path: Path) -> None:
    path = tmp_path / "target.env"
    provider = provider_at(path)
    version = provider.publish(payload())

    stored = provider.read()
    seen = provider.observe({})

    assert stored is not None and stored.version == version
    assert seen.version == version
    status = path.stat()
    assert version == f"{status.st_ino}:{status.st_mtime_ns}:{status.st_size}"
