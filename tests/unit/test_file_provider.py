"""The file provider beyond the shared contract: permissions, atomicity, bad content, and the
dotenv / JSON encodings consumers parse (``bridge.payload.encode`` / ``decode``)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config.targets import FileTarget
from bridge.errors import OwnershipError, ProviderError
from bridge.payload import (
    API_KEY,
    ENDPOINT,
    MARKER,
    WORKSPACE_ID,
    Format,
    Payload,
    Stored,
    decode,
    encode,
)
from bridge.secrets import Secret
from providers.file import FileProvider
from tests.support.keys import new_key

POLICY = "file-policy"
FORMATS: list[Format] = ["dotenv", "json"]


def payload(rotation_id: str | None = None) -> Payload:
    return Payload(
        policy=POLICY,
        rotation_id=rotation_id or f"20250101T000000Z-{secrets.token_hex(3)}",
        api_key=Secret(new_key()),
        settings={ENDPOINT: "http://127.0.0.1:1984", WORKSPACE_ID: str(uuid.uuid4())},
    )


def provider_at(path: Path, fmt: Format = "dotenv") -> FileProvider:
    return FileProvider(FileTarget(provider="file", path=path, format=fmt), POLICY)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


# -- permissions -----------------------------------------------------------------------


@pytest.mark.usefixtures("permissive_umask")
@pytest.mark.parametrize("fmt", FORMATS)
def test_the_file_is_mode_0600_even_with_a_permissive_umask(tmp_path: Path, fmt: Format) -> None:
    path = tmp_path / "nested" / "out.env"
    provider = provider_at(path, fmt)

    provider.publish(payload())
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)  # loosened by hand; the next generation tightens it again
    provider.publish(payload())

    assert path.stat().st_mode & 0o777 == 0o600


# -- atomicity -------------------------------------------------------------------------


def test_publishing_leaves_no_temporary_files_behind(tmp_path: Path) -> None:
    provider = provider_at(tmp_path / "out.env")

    for _ in range(5):
        provider.publish(payload())

    assert [p.name for p in tmp_path.iterdir()] == ["out.env"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_reader_never_sees_a_partial_file_while_it_is_rewritten(
    tmp_path: Path, fmt: Format, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a reader sees depends on the rename alone; fsync buys durability across a power
    # cut, not atomicity, and would make 200 rewrites take seconds.
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    path = tmp_path / "out.env"
    writer, reader = provider_at(path, fmt), provider_at(path, fmt)
    first = payload()
    writer.publish(first)
    published = {first.rotation_id: first.fingerprint}
    seen: list[Stored | None] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def read_continuously() -> None:
        while not done.is_set():
            try:
                seen.append(reader.read())
                time.sleep(0)  # let the writer have the GIL between reads
            except BaseException as exc:  # reported below, not swallowed
                failures.append(exc)
                return

    thread = threading.Thread(target=read_continuously)
    thread.start()
    try:
        for _ in range(200):
            new = payload()
            published[new.rotation_id] = new.fingerprint
            writer.publish(new)
    finally:
        done.set()
        thread.join()

    assert failures == []
    assert len({stored.rotation_id for stored in seen if stored}) > 1  # it did overlap
    for stored in seen:
        assert stored is not None
        assert stored.rotation_id in published
        assert stored.fingerprint == published[stored.rotation_id]


# -- bad content -----------------------------------------------------------------------

GARBAGE: list[tuple[str, Format, bytes]] = [
    ("prose in a dotenv file", "dotenv", b"this is not a dotenv file: {KEY}\n"),
    ("a name starting with a digit", "dotenv", b"1ABC={KEY}\n"),
    ("truncated JSON", "json", b'{"LANGSMITH_API_KEY": "{KEY}"'),
    ("a JSON list", "json", b'["{KEY}"]'),
    ("JSON with a non-string value", "json", b'{"LANGSMITH_API_KEY": "{KEY}", "N": 1}'),
    ("bytes that are not UTF-8", "dotenv", b"\xff\xfe{KEY}\x00\x81"),
    ("bytes that are not UTF-8", "json", b"\xff\xfe{KEY}\x00\x81"),
]


@pytest.mark.parametrize(
    ("fmt", "content"),
    [(fmt, content) for _, fmt, content in GARBAGE],
    ids=[f"{fmt}: {name}" for name, fmt, _ in GARBAGE],
)
def test_garbage_content_is_an_error_that_does_not_quote_it(
    tmp_path: Path, fmt: Format, content: bytes
) -> None:
    key = new_key()
    path = tmp_path / "out.env"
    path.write_bytes(content.replace(b"{KEY}", key.encode()))
    provider = provider_at(path, fmt)

    with pytest.raises(ProviderError) as reading:
        provider.read()
    with pytest.raises(OwnershipError) as publishing:
        provider.publish(payload())

    assert not reading.value.retryable  # rereading the same bytes will not help
    for error in (reading.value, publishing.value):
        assert key[8:40] not in str(error)
        assert error.__cause__ is None  # nothing chained that could carry the content
    assert path.read_bytes() == content.replace(b"{KEY}", key.encode())


# -- access ----------------------------------------------------------------------------

# Runs in a child process so that, when the suite runs as root, it can drop to ``nobody``
# once its imports are done (root writes anywhere, so a read-only folder proves nothing to
# it, and ``nobody`` may not be able to reach the interpreter to start one itself).
_ATTEMPT = """
import json, os, sys
from pathlib import Path
from bridge.config.targets import FileTarget
from bridge.payload import Payload
from bridge.secrets import Secret
from providers.file import FileProvider

def provider(path):
    return FileProvider(FileTarget(provider="file", path=Path(path)), "file-policy")

# Everything is built before privileges are dropped: ``nobody`` cannot read the interpreter's
# own library here, and models build (and import) lazily on first use.
writer, reader = provider(sys.argv[1]), provider(sys.argv[2])
payload = Payload(policy="file-policy", rotation_id="r1", api_key=Secret("lsv2_sk_" + "0" * 32))
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)

attempts = {
    "publish": lambda: writer.publish(payload),
    "validate": lambda: writer.validate(),
    "read": lambda: reader.read(),
}
outcome = {}
for name, attempt in attempts.items():
    try:
        attempt()
        outcome[name] = "ok"
    except Exception as exc:
        outcome[name] = type(exc).__name__
print(json.dumps(outcome))
"""


@pytest.fixture
def locked_folder() -> Iterator[Path]:
    """A folder outside pytest's private tmp tree, so that ``nobody`` can reach it."""
    base = Path(tempfile.mkdtemp(prefix="bridge-locked-"))
    try:
        base.chmod(0o755)
        yield base
    finally:
        for path in (base, *base.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(base)


def test_an_unwritable_folder_or_unreadable_file_is_access_denied(locked_folder: Path) -> None:
    read_only = locked_folder / "read-only"
    read_only.mkdir(mode=0o555)
    read_only.chmod(0o555)
    private = locked_folder / "private.env"
    provider_at(private).publish(payload())  # mode 0600, owned by whoever runs the suite
    private.chmod(0o000)

    result = subprocess.run(
        [sys.executable, "-c", _ATTEMPT, str(read_only / "out.env"), str(private)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd=locked_folder,
    )

    assert json.loads(result.stdout) == {
        "publish": "ProviderAccessDenied",
        "validate": "ProviderAccessDenied",
        "read": "ProviderAccessDenied",
    }
    assert list(read_only.iterdir()) == []


# -- what consumers parse --------------------------------------------------------------

AWKWARD_VALUES = {
    "plain": "http://127.0.0.1:1984/api/v1",
    "empty": "",
    "spaces": "  two  spaces  ",
    "double_quotes": 'say "hi"',
    "single_quotes": "'quoted'",
    "apostrophe": "it's",
    "backslashes": "C:\\path\\to\\",
    "escaped_n": "a\\nb",
    "newline": "line one\nline two",
    "carriage_return": "a\rb\r\n",
    "tab": "a\tb",
    "hash": "value # not a comment",
    "equals": "a=b=c",
    "dollar": "$HOME and ${PATH}",
    "unicode": "żółw ✓",
    "line_separator": "a\u2028b\x85c\x0bd\x0ce",
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_value_survives_encode_then_decode(fmt: Format) -> None:
    env = {
        "LANGSMITH_API_KEY": new_key(),
        **{name.upper(): v for name, v in AWKWARD_VALUES.items()},
    }

    assert decode(encode(env, fmt), fmt) == env


def test_dotenv_output_is_a_comment_then_one_assignment_per_line() -> None:
    env = {"A": "1", "B": "two words", "C": "x\ny"}

    lines = encode(env, "dotenv").splitlines()

    assert lines[0].startswith("#")
    assert [line.split("=", 1)[0] for line in lines[1:]] == ["A", "B", "C"]


HAND_WRITTEN_DOTENV = [
    ("bare", "KEY=value", "value"),
    ("export prefix", "export KEY=value", "value"),
    ("spaces around =", "KEY = value", "value"),
    ("double quotes", 'KEY="two words"', "two words"),
    ("single quotes keep backslashes", "KEY='a\\nb $x'", "a\\nb $x"),
    ("escaped quote", 'KEY="say \\"hi\\""', 'say "hi"'),
    ("escaped newline", 'KEY="a\\nb"', "a\nb"),
    ("empty", "KEY=", ""),
    ("indented", "   KEY=value   ", "value"),
]


@pytest.mark.parametrize(
    ("line", "value"),
    [(line, value) for _, line, value in HAND_WRITTEN_DOTENV],
    ids=[name for name, _, _ in HAND_WRITTEN_DOTENV],
)
def test_hand_written_dotenv_lines_decode(line: str, value: str) -> None:
    text = f"# a comment\n\n  # an indented comment\n{line}\r\nOTHER=1\n"

    assert decode(text, "dotenv") == {"KEY": value, "OTHER": "1"}


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("NOT A LINE {KEY}", "dotenv"),
        ("KEY-WITH-DASH={KEY}", "dotenv"),
        ('{"a": "{KEY}",}', "json"),
        ('"{KEY}"', "json"),
        ('{"a": ["{KEY}"]}', "json"),
    ],
)
def test_decode_errors_never_quote_the_text(text: str, fmt: Format) -> None:
    key = new_key()

    with pytest.raises(ValueError, match=r"line|JSON") as caught:
        decode(text.replace("{KEY}", key), fmt)

    assert key[8:40] not in str(caught.value)


def test_the_marker_names_the_policy_and_rotation_and_is_split_from_the_settings() -> None:
    written = payload("20250102T030405Z-abcdef")

    stored = Stored.from_env(decode(encode(written.reveal_env(), "dotenv"), "dotenv"))

    assert written.reveal_env()[MARKER] == f"policy={POLICY} rotation=20250102T030405Z-abcdef"
    assert (stored.policy, stored.rotation_id) == (POLICY, "20250102T030405Z-abcdef")
    assert API_KEY not in stored.settings
    assert MARKER not in stored.settings
    assert stored.same_content(written)


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_a_published_dotenv_file_can_be_sourced_by_a_shell(tmp_path: Path) -> None:
    path = tmp_path / "out.env"
    written = payload()
    provider_at(path).publish(written)

    result = subprocess.run(
        ["sh", "-c", f'set -a; . "$1"; printf "%s\\n" "${API_KEY}" "${MARKER}"', "sh", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
        env={},
    )

    assert result.stdout.splitlines() == [written.api_key.reveal(), written.reveal_env()[MARKER]]
