"""A ``Secret`` never shows its value, fingerprints stand in for keys, and every log line,
text or JSON, is scrubbed of anything key-shaped, wherever in the record it hides."""

from __future__ import annotations

import copy
import io
import json
import logging
import pickle
import re
import secrets
import traceback
from collections.abc import Callable

import pytest

from bridge.logs import RedactingFilter, event
from bridge.secrets import Secret, fingerprint, redact
from tests.support.keys import new_key
from tests.support.logs import configured

FINGERPRINT = re.compile(r"sha256:[0-9a-f]{16}")


def legacy_key() -> str:
    return "ls__" + secrets.token_hex(16)


def fragments(key: str) -> tuple[str, ...]:
    """The key and the pieces of it that would still help an attacker."""
    return key, key[8:40], key[-10:]


def assert_hidden(key: str, text: str) -> None:
    for fragment in fragments(key):
        assert fragment not in text


# -- Secret ----------------------------------------------------------------------------

SHOWINGS: dict[str, Callable[[Secret], str]] = {
    "str": str,
    "repr": repr,
    "f-string": lambda s: f"{s}",
    "f-string !r": lambda s: f"{s!r}",
    "f-string !a": lambda s: f"{s!a}",
    "format()": format,
    "%s": lambda s: "%s" % s,  # noqa: UP031
    "%r": lambda s: "%r" % s,  # noqa: UP031
    "str.format": "{}".format,
    "in a list": lambda s: str([s]),
    "in a dict": lambda s: repr({"key": s}),
    "in an exception": lambda s: "".join(traceback.format_exception(ValueError("bad", s))),
    "json default=str": lambda s: json.dumps({"key": s}, default=str),
    "in traceback locals": lambda s: _traceback_with_locals(s),
}


def _traceback_with_locals(secret: Secret) -> str:
    def failing(value: Secret) -> None:
        raise RuntimeError("failed")

    try:
        failing(secret)
    except RuntimeError as exc:
        return "".join(
            traceback.TracebackException.from_exception(exc, capture_locals=True).format()
        )
    raise AssertionError("unreachable")


@pytest.mark.parametrize("show", SHOWINGS.values(), ids=SHOWINGS.keys())
def test_a_secret_never_shows_its_value(show: Callable[[Secret], str]) -> None:
    key = new_key()
    secret = Secret(key)

    text = show(secret)

    assert_hidden(key, text)
    assert secret.fingerprint in text or "Secret" in text


@pytest.mark.parametrize("spec", [">80", "s", "x"])
def test_a_format_spec_cannot_reveal_a_secret(spec: str) -> None:
    key = new_key()

    try:
        text = format(Secret(key), spec)
    except TypeError as exc:  # refusing is as good as masking
        text = str(exc)

    assert_hidden(key, text)


@pytest.mark.parametrize(
    "copier",
    [pickle.dumps, lambda s: pickle.dumps(s, protocol=0), copy.copy, copy.deepcopy],
    ids=["pickle", "pickle protocol 0", "copy", "deepcopy"],
)
def test_a_secret_refuses_to_be_pickled_or_copied(copier: Callable[[Secret], object]) -> None:
    key = new_key()

    with pytest.raises(TypeError) as caught:
        copier(Secret(key))

    assert_hidden(key, str(caught.value))


def test_a_secret_reveals_only_on_request_and_compares_by_value() -> None:
    key = new_key()
    secret = Secret(key)

    assert secret.reveal() == key
    assert secret == Secret(key)
    assert secret != Secret(new_key())
    assert secret != key  # never equal to the bare string
    assert hash(secret) == hash(Secret(key))
    assert bool(secret) and not bool(Secret(""))
    with pytest.raises(AttributeError):
        secret.__dict__  # noqa: B018 -- slots only: no attribute to stumble on


def test_a_secret_wraps_only_text() -> None:
    with pytest.raises(TypeError):
        Secret(b"lsv2_sk_bytes")  # type: ignore[arg-type]


# -- fingerprint -----------------------------------------------------------------------


def test_a_fingerprint_is_sha256_and_16_hex_digits_stable_and_distinct() -> None:
    key, other = new_key(), new_key()

    assert FINGERPRINT.fullmatch(fingerprint(key))
    assert fingerprint(key) == fingerprint(key) == Secret(key).fingerprint
    assert fingerprint(key) != fingerprint(other)
    assert_hidden(key, fingerprint(key))


# -- redact ----------------------------------------------------------------------------

CONTEXTS = {
    "alone": "{KEY}",
    "header": "X-API-Key: {KEY}",
    "bearer": "Authorization: Bearer {KEY}\r\n",
    "query string": "GET /api/v1/info?api_key={KEY}&x=1",
    "json": '{"key": "{KEY}", "id": 3}',
    "dotenv": "LANGSMITH_API_KEY={KEY}\n",
    "python repr": "{'key': '{KEY}'}",
    "twice": "{KEY} and again {KEY}",
}
KINDS: dict[str, Callable[[], str]] = {
    "service key": new_key,
    "personal token": lambda: new_key("pt"),
    "legacy key": legacy_key,
    "key without suffix": lambda: "lsv2_sk_" + secrets.token_hex(16),
}


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
@pytest.mark.parametrize("context", CONTEXTS.values(), ids=CONTEXTS.keys())
def test_redact_replaces_every_key_with_its_fingerprint(
    context: str, kind: Callable[[], str]
) -> None:
    key = kind()

    text = redact(context.replace("{KEY}", key))

    assert_hidden(key, text)
    assert text == context.replace("{KEY}", f"<redacted {fingerprint(key)}>")
    assert redact(text) == text


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_redact_masks_a_key_glued_between_words(kind: Callable[[], str]) -> None:
    """No word boundary is needed: masking a few letters too many beats leaking a key."""
    key = kind()

    assert_hidden(key, redact(f"prefix{key}suffix."))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nothing secret here",
        "short_key lsv2_sk_a1b2c3***",  # what status output shows instead of a key
        "sha256:0123456789abcdef",
        "lsv2_sk_tooshort",
    ],
)
def test_redact_leaves_text_without_keys_alone(text: str) -> None:
    assert redact(text) == text


# -- logs ------------------------------------------------------------------------------


def lines(stream: io.StringIO) -> str:
    return stream.getvalue()


def test_keys_are_scrubbed_from_the_message(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    key = new_key()

    logger.warning(f"response echoed {key}")

    assert_hidden(key, lines(stream))
    assert fingerprint(key) in lines(stream)


def test_keys_are_scrubbed_from_format_arguments(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    key, other = new_key(), legacy_key()

    logger.info("body %s, header %r", {"key": key}, other)

    assert_hidden(key, lines(stream))
    assert_hidden(other, lines(stream))


def test_keys_are_scrubbed_from_event_fields(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    key = new_key()

    event(logger, "published", policy="p", body=f"api_key={key}", nested={"k": [key]})

    assert_hidden(key, lines(stream))
    assert "published" in lines(stream)


def test_keys_are_scrubbed_from_exception_tracebacks(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log
    key, cause_key = new_key(), new_key()

    try:
        try:
            raise ConnectionError(f"upstream said {cause_key}")
        except ConnectionError as cause:
            raise RuntimeError(f"request with {key} failed") from cause
    except RuntimeError:
        logger.exception("call failed")

    output = lines(stream)
    assert "RuntimeError" in output
    assert "ConnectionError" in output  # the chain is kept, just scrubbed
    assert_hidden(key, output)
    assert_hidden(cause_key, output)


def test_each_record_is_one_json_object_in_json_format() -> None:
    key = new_key()

    with configured("json") as (logger, stream):
        event(logger, "rotated", policy="p", short_key=key[:12] + "***", leaked=key)
        try:
            raise ValueError(key)
        except ValueError:
            logger.exception("failed")

    records = [json.loads(line) for line in lines(stream).splitlines()]
    assert [r["level"] for r in records] == ["info", "error"]
    assert records[0]["event"] == "rotated"
    assert records[0]["policy"] == "p"
    assert "ValueError" in records[1]["exception"]
    assert_hidden(key, lines(stream))


def test_the_filter_also_guards_handlers_that_format_later() -> None:
    """The filter rewrites the record itself, so any formatter after it sees only masks."""
    key = new_key()
    record = logging.LogRecord("bridge", logging.ERROR, __file__, 1, "k=%s", (key,), None)

    assert RedactingFilter().filter(record)

    assert_hidden(key, logging.Formatter("%(message)s").format(record))
