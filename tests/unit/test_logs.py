"""Log lines as an operator and a log pipeline read them: text lines start with an ISO 8601
UTC timestamp; JSON lines keep each field's type; key-shaped strings are redacted wherever
they hide (nested in lists and dicts, in exception messages) in both formats; and no field,
however odd, breaks logging."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from bridge.logs import JsonFormatter, RedactingFilter, event, jsonable
from bridge.secrets import Secret, fingerprint
from tests.support.keys import new_key
from tests.support.logs import configured

FIELDS = "bridge_fields"  # where ``event`` puts its fields on a record
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def json_records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def hidden(key: str, text: str) -> bool:
    return key not in text and key[8:40] not in text and key[-10:] not in text


class Color(Enum):
    RED = 1


class Phase(StrEnum):
    CURRENT = "current"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")

    __repr__ = __str__


class BrokenMapping(Mapping[str, str]):
    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("cannot iterate")

    def __len__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return "BrokenMapping()"


# -- text ------------------------------------------------------------------------------


def test_a_text_line_starts_with_an_iso_utc_timestamp_with_milliseconds() -> None:
    with configured("text") as (logger, stream):
        before = datetime.now(UTC).replace(microsecond=0)
        event(logger, "rotated", policy="p", short_key="lsv2_sk_abc***")
        after = datetime.now(UTC) + timedelta(seconds=1)

    line = stream.getvalue()
    assert TIMESTAMP.match(line), line
    stamp, level, rest = line.split(" ", 2)
    assert before <= datetime.fromisoformat(stamp) <= after
    assert level == "INFO"
    assert line[len(stamp) + 1 :].startswith("INFO    rotated policy=p short_key=lsv2_sk_abc***")
    assert rest.endswith("\n") and line.count("\n") == 1


def test_a_text_line_renders_datetimes_as_iso_and_exceptions_as_their_message() -> None:
    moment = datetime(2026, 12, 1, 21, 40, tzinfo=UTC)
    with configured("text") as (logger, stream):
        event(logger, "e", at=moment, error=ValueError("bad thing"), empty=TimeoutError())

    assert "at=2026-12-01T21:40:00+00:00 error=bad thing empty=TimeoutError" in stream.getvalue()


# -- JSON ------------------------------------------------------------------------------


def test_json_fields_keep_their_types() -> None:
    moment = datetime(2026, 12, 1, 21, 40, 0, 123000, tzinfo=UTC)
    with configured("json") as (logger, stream):
        event(
            logger,
            "run_finished",
            policies=3,
            ratio=0.5,
            names=["a", "b"],
            pair=("x", 1),
            counts={"ok": 2, "failed": 0},
            nothing=None,
            dry_run=False,
            at=moment,
            error=ValueError("went wrong"),
            phase=Phase.CURRENT,
            color=Color.RED,
            path=Path("/tmp/out.env"),
            wait=timedelta(minutes=5),
            nan=float("nan"),
        )

    (record,) = json_records(stream)
    assert record["event"] == "run_finished"
    assert record["policies"] == 3 and record["ratio"] == 0.5
    assert record["names"] == ["a", "b"]
    assert record["pair"] == ["x", 1]
    assert record["counts"] == {"ok": 2, "failed": 0}
    assert record["nothing"] is None
    assert record["dry_run"] is False
    assert record["at"] == "2026-12-01T21:40:00.123000+00:00"
    assert record["error"] == "went wrong"
    assert record["phase"] == "current" and record["color"] == 1
    assert record["path"] == "/tmp/out.env"
    assert record["wait"] == "0:05:00"
    assert record["nan"] == "nan"


def test_a_json_line_has_the_same_timestamp_format() -> None:
    with configured("json") as (logger, stream):
        logger.info("plain message")

    (record,) = json_records(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    assert record["message"] == "plain message"
    assert record["level"] == "info" and record["logger"] == "bridge.test"


# -- redaction -------------------------------------------------------------------------


def test_a_key_nested_in_list_and_dict_fields_is_redacted(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log
    key, other, name_key = new_key(), new_key("pt"), new_key()

    event(
        logger,
        "published",
        keys=[key, ("deeper", [other])],
        body={"headers": {"x-api-key": key}, name_key: "the key as a name", "n": 1},
        secret=Secret(other),
    )

    output = stream.getvalue()
    for leaked in (key, other, name_key):
        assert hidden(leaked, output)
    assert fingerprint(key) in output


def test_a_key_in_json_fields_is_redacted_and_the_structure_kept() -> None:
    key = new_key()
    with configured("json") as (logger, stream):
        event(logger, "e", body={"items": [{"token": key}, 2]})

    (record,) = json_records(stream)
    assert record["body"] == {"items": [{"token": f"<redacted {fingerprint(key)}>"}, 2]}


def test_an_exception_message_with_a_key_is_redacted(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log
    key = new_key()

    event(logger, "policy_failed", level=logging.ERROR, error=RuntimeError(f"sent {key}"))
    try:
        raise ConnectionError(f"upstream echoed {key}")
    except ConnectionError as exc:
        event(logger, "call_failed", level=logging.ERROR, error=exc, errors=[exc])
        logger.exception("with traceback")

    output = stream.getvalue()
    assert hidden(key, output)
    assert "upstream echoed <redacted" in output
    assert "ConnectionError" in output


# -- robustness ------------------------------------------------------------------------


def test_no_field_breaks_logging(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    looped: list[Any] = []
    looped.append(looped)
    deep: list[Any] = []
    for _ in range(10_000):
        deep = [deep]

    event(
        logger,
        "odd",
        thing=Unprintable(),
        looped=looped,
        deep=deep,
        raw=b"\xff",
        obj=object(),
        huge=10**5000,
        broken=BrokenMapping(),
    )
    logger.info("arguments %s %s that do not fit", 1)
    event(logger, "after")

    output = stream.getvalue()
    assert "<unprintable Unprintable>" in output
    assert "huge=<unprintable int>" in output or '"huge": "<unprintable int>"' in output
    assert "arguments %s %s that do not fit (arguments that do not fit: (1,))" in output
    lines = output.strip().splitlines()
    assert len(lines) == 3 and "after" in lines[-1]


def test_the_json_formatter_alone_still_redacts_and_never_fails() -> None:
    """Behind a handler that lacks the filter, the formatter still cleans the fields."""
    key = new_key()
    record = logging.LogRecord("bridge", logging.INFO, __file__, 1, "m", None, None)
    setattr(record, FIELDS, {"event": "e", "k": [key], "odd": Unprintable()})

    line = JsonFormatter().format(record)

    assert hidden(key, line)
    assert json.loads(line)["odd"] == "<unprintable Unprintable>"


def test_the_filter_keeps_types_for_any_formatter() -> None:
    key = new_key()
    record = logging.LogRecord("bridge", logging.INFO, __file__, 1, "m", None, None)
    setattr(record, FIELDS, {"n": 1, "keys": [key], "flag": True})

    assert RedactingFilter().filter(record)

    fields = getattr(record, FIELDS)
    assert fields["n"] == 1 and fields["flag"] is True
    assert fields["keys"] == [f"<redacted {fingerprint(key)}>"]


def test_jsonable_is_idempotent() -> None:
    value = {"a": [1, "x", None, {"b": new_key()}], "t": datetime(2026, 1, 1, tzinfo=UTC)}

    once = jsonable(value)

    assert jsonable(once) == once
    json.dumps(once)
