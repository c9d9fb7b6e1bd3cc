"""The fake Secret Manager's rules for what a request may carry (labels, annotations,
aliases, filters, pages), and the status it fails with, as the API reference documents."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import TypeVar, cast

from google.cloud.secretmanager_v1.types import resources

State = resources.SecretVersion.State
_T = TypeVar("_T")

_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_ANNOTATION_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
_RESERVED_ALIASES = frozenset({"latest", "NEW"})
MAX_ALIASES = 50


class FakeStatus(Exception):
    """A failed call: the gRPC status code name (``"NOT_FOUND"``) and its message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def apply(target: resources.Secret, source: resources.Secret, path: str) -> None:
    if path == "labels":
        target.labels.clear()
        target.labels.update(source.labels)
    elif path == "annotations":
        target.annotations.clear()
        target.annotations.update(source.annotations)
    elif path == "version_aliases":
        target.version_aliases.clear()
        target.version_aliases.update(source.version_aliases)
    elif path in source:
        setattr(target, path, getattr(source, path))
    else:
        delattr(target, path)


def check_labels(labels: Mapping[str, str]) -> None:
    items = dict(labels)
    if len(items) > 64:
        raise FakeStatus("INVALID_ARGUMENT", "No more than 64 labels are allowed.")
    for key, value in items.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise FakeStatus("INVALID_ARGUMENT", f"Invalid label {key!r}.")


def check_annotations(annotations: Mapping[str, str]) -> None:
    items = dict(annotations)
    if sum(len(k.encode()) + len(v.encode()) for k, v in items.items()) >= 16 * 1024:
        raise FakeStatus("INVALID_ARGUMENT", "Annotations must total less than 16 KiB.")
    for key in items:
        if not _ANNOTATION_KEY.match(key):
            raise FakeStatus("INVALID_ARGUMENT", f"Invalid annotation key {key!r}.")


MIN_ROTATION_PERIOD = timedelta(hours=1)
MIN_ROTATION_LEAD = timedelta(minutes=5)


def check_rotation(secret: resources.Secret, now: datetime) -> None:
    """A rotation schedule needs topics to publish to, a first time at least 5 minutes
    ahead and a period of at least an hour (the API reference's rules)."""
    if "rotation" not in secret:
        return
    rotation = secret.rotation
    if not secret.topics:
        raise FakeStatus("INVALID_ARGUMENT", "A secret with a rotation needs topics.")
    if "rotation_period" in rotation and "next_rotation_time" not in rotation:
        raise FakeStatus("INVALID_ARGUMENT", "rotation_period needs next_rotation_time.")
    first = cast(datetime, rotation.next_rotation_time)  # proto-plus hands a datetime
    period = cast(timedelta, rotation.rotation_period)
    if "next_rotation_time" in rotation and first < now + MIN_ROTATION_LEAD:
        raise FakeStatus(
            "INVALID_ARGUMENT", "next_rotation_time must be at least 5 minutes in the future."
        )
    if "rotation_period" in rotation and period < MIN_ROTATION_PERIOD:
        raise FakeStatus("INVALID_ARGUMENT", "rotation_period must be at least 3600s.")


def check_aliases(existing: Collection[int], aliases: Mapping[str, int]) -> None:
    items = dict(aliases)
    if len(items) > MAX_ALIASES:
        raise FakeStatus("INVALID_ARGUMENT", f"No more than {MAX_ALIASES} aliases are allowed.")
    for alias, number in items.items():
        if not _ALIAS.match(alias) or alias in _RESERVED_ALIASES:
            raise FakeStatus("INVALID_ARGUMENT", f"Invalid version alias {alias!r}.")
        if int(number) not in existing:
            raise FakeStatus(
                "INVALID_ARGUMENT", f"Alias {alias!r} names version {number}, which does not exist."
            )


def secret_filter(text: str) -> Callable[[resources.Secret], bool]:
    """The part of the list filter syntax a target needs: ``labels.KEY=VALUE``,
    ``labels.KEY:*`` and ``name:TEXT`` terms joined by spaces or ``AND``."""
    terms = [term for term in text.split() if term != "AND"]
    checks: list[Callable[[resources.Secret], bool]] = []
    for term in terms:
        label = re.fullmatch(r"labels\.([^=:]+)([=:])(.*)", term)
        if label:
            key, op, value = label.groups()
            value = value.strip('"')
            checks.append(_label_check(key, None if op == ":" and value == "*" else value))
        elif term.startswith("name:"):
            checks.append(_name_check(term[5:].strip('"')))
        else:
            raise FakeStatus("INVALID_ARGUMENT", f"Unsupported filter term {term!r}.")
    return lambda secret: all(check(secret) for check in checks)


def _label_check(key: str, value: str | None) -> Callable[[resources.Secret], bool]:
    def check(secret: resources.Secret) -> bool:
        return key in secret.labels if value is None else secret.labels.get(key) == value

    return check


def _name_check(text: str) -> Callable[[resources.Secret], bool]:
    def check(secret: resources.Secret) -> bool:
        return text in secret.name.rsplit("/", 1)[-1]

    return check


def state_filter(text: str) -> set[int] | None:
    if not text.strip():
        return None
    states: set[int] = set()
    for term in text.replace(" OR ", " ").split():
        match = re.fullmatch(r"state:(ENABLED|DISABLED|DESTROYED)", term)
        if not match:
            raise FakeStatus("INVALID_ARGUMENT", f"Unsupported filter term {term!r}.")
        states.add(int(State.__members__[match.group(1)]))
    return states


def paged(items: list[_T], size: int, token: str) -> tuple[list[_T], str]:
    start = int(token) if token.isdigit() else 0
    if token and not token.isdigit():
        raise FakeStatus("INVALID_ARGUMENT", "Invalid page token.")
    size = size if size > 0 else 25000
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")
