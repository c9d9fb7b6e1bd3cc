"""Parsing a stored payload is total: whatever text a target holds ends as an env map or as
one ``PayloadFormatError`` that says why without quoting the text, which may hold a key."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

import pytest

from bridge.payload import (
    API_KEY,
    MAX_PAYLOAD_BYTES,
    Format,
    PayloadFormatError,
    decode,
    encode,
    oversize,
)
from tests.support.keys import new_key

FORMATS: list[Format] = ["dotenv", "json"]

# Each builds, from a key, text that is not a payload of the format.
DAMAGED: dict[str, tuple[Format, Callable[[str], str]]] = {
    "prose": ("dotenv", lambda key: f"my key is {key}\n"),
    "truncated JSON": ("json", lambda key: f'{{"{API_KEY}": "{key}"'),
    "empty JSON": ("json", lambda key: ""),
    "a JSON array": ("json", lambda key: json.dumps([key])),
    "a JSON string": ("json", lambda key: json.dumps(key)),
    "a JSON number": ("json", lambda key: "12345"),
    "JSON null": ("json", lambda key: "null"),
    "JSON true": ("json", lambda key: "true"),
    "a number value": ("json", lambda key: json.dumps({API_KEY: key, "N": 1})),
    "a null value": ("json", lambda key: json.dumps({API_KEY: None, "X": key})),
    "a boolean value": ("json", lambda key: json.dumps({API_KEY: key, "B": False})),
    "a list value": ("json", lambda key: json.dumps({API_KEY: [key]})),
    "an object value": ("json", lambda key: json.dumps({API_KEY: {"k": key}})),
    "a key as the name of a number": ("json", lambda key: json.dumps({key: 1})),
    "NaN": ("json", lambda key: f'{{"{API_KEY}": "{key}", "N": NaN}}'),
    "a 5000-digit integer": ("json", lambda key: f'{{"{API_KEY}": "{key}", "N": {"9" * 5000}}}'),
    "arrays nested 60000 deep": ("json", lambda key: "[" * 60_000 + json.dumps(key)),
    "objects nested 12000 deep": ("json", lambda key: '{"a":' * 12_000 + json.dumps(key)),
    "a NUL in a dotenv value": ("dotenv", lambda key: f"{API_KEY}={key}\x00\n"),
    "a NUL in a JSON value": ("json", lambda key: json.dumps({API_KEY: key + "\x00"})),
    "a lone surrogate": ("json", lambda key: f'{{"{API_KEY}": "{key}\\ud800"}}'),
    "over the size limit": ("dotenv", lambda key: f"{API_KEY}={key}\n# {'x' * MAX_PAYLOAD_BYTES}"),
    "over the limit in JSON": ("json", lambda key: json.dumps({API_KEY: key, "P": "x" * 70_000})),
}


def hides(key: str, error: BaseException) -> bool:
    text = str(error) + repr(error.args)
    return key not in text and key[8:40] not in text and key[-10:] not in text


@pytest.mark.parametrize("name", DAMAGED)
def test_damaged_text_is_one_clear_error_that_quotes_nothing(name: str) -> None:
    fmt, build = DAMAGED[name]
    key = new_key()

    with pytest.raises(PayloadFormatError) as caught:
        decode(build(key), fmt)

    assert isinstance(caught.value, ValueError)  # what callers have always caught
    assert hides(key, caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ or caught.value.__context__ is None
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[]", "a JSON array, not an object of string values"),
        ('{"LANGSMITH_API_KEY": 7}', "LANGSMITH_API_KEY is a JSON number, not a string"),
        ('{"OTHER": null}', "a value is a JSON null, not a string"),
        ("[" * 60_000, "JSON nested too deeply to be a payload"),
        ('{"A": "b"', "not valid JSON (line 1)"),
        ('{"A": ' + "9" * 5000 + "}", "holds a number with too many digits to read"),
    ],
)
def test_the_reason_names_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(PayloadFormatError, match="^" + re.escape(reason) + "$"):
        decode(text, "json")


def test_the_size_limit_counts_utf8_bytes() -> None:
    at_limit = "A=" + "é" * ((MAX_PAYLOAD_BYTES - 2) // 2)  # two bytes each

    assert decode(at_limit, "dotenv")["A"]
    with pytest.raises(PayloadFormatError, match="too large to be a payload"):
        decode(at_limit + "é", "dotenv")
    assert oversize(MAX_PAYLOAD_BYTES) is None
    assert oversize(MAX_PAYLOAD_BYTES + 1) == (
        f"too large to be a payload: {MAX_PAYLOAD_BYTES + 1} bytes (at most {MAX_PAYLOAD_BYTES})"
    )


def test_text_of_another_type_is_an_error_not_a_crash() -> None:
    with pytest.raises(PayloadFormatError, match="not text but bytes"):
        decode(b'{"A": "b"}', "json")  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_what_encode_writes_still_decodes(fmt: Format) -> None:
    env = {API_KEY: new_key(), "LANGSMITH_ENDPOINT": "https://x.test", "EMPTY": ""}

    assert decode(encode(env, fmt), fmt) == env


@pytest.mark.parametrize("fmt", FORMATS)
def test_random_damage_never_escapes_as_anything_but_a_format_error(fmt: Format) -> None:
    """Seeded mutations of a real payload (flipped, dropped, doubled and random bytes):
    each decodes to a map of strings or fails with a ``PayloadFormatError``."""
    rng = random.Random(f"payload-fuzz-{fmt}")  # reproducible, not secret
    key = new_key()
    original = encode({API_KEY: key, "LANGSMITH_ENDPOINT": "https://x.test"}, fmt)
    failures: list[PayloadFormatError] = []
    for _ in range(2000):
        try:
            env = decode(_mutate(rng, original), fmt)
        except PayloadFormatError as exc:
            failures.append(exc)
            continue
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())

    assert failures  # the mutations did damage
    assert all(hides(key, exc) for exc in failures)


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(chars) or 1)
        kind = rng.randrange(4)
        if kind == 0 and chars:
            del chars[at]
        elif kind == 1:
            chars.insert(at, chr(rng.choice([0, 0x0B, 0x85, 0xD800, 0x2028, rng.randrange(0x80)])))
        elif kind == 2 and chars:
            chars[at:at] = chars[at : at + rng.randint(1, 40)] * rng.randint(1, 50)
        else:
            chars.insert(at, rng.choice(['"', "{", "[", "]", "}", ":", ",", "\\", "\n", "="]))
    return "".join(chars)
