"""The retry policy's delays and the reading of Retry-After hints."""

from __future__ import annotations

import email.utils
from collections.abc import Callable

import httpx
import pytest

from bridge.langsmith import RetryPolicy
from bridge.langsmith.retry import parse_retry_after

NOW = 1_800_000_000.0  # a fixed POSIX time


def const(value: float) -> Callable[[], float]:
    return lambda: value


def test_defaults_match_the_documented_policy() -> None:
    assert RetryPolicy() == RetryPolicy(
        max_attempts=4,
        base_delay=0.5,
        max_delay=20.0,
        max_retry_after=60.0,
        max_elapsed=120.0,
        rate_window=10.0,
    )


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (6, 16.0), (7, 20.0), (50, 20.0), (10_000, 20.0)],
)
def test_backoff_doubles_from_base_and_is_capped_at_max_delay(attempt: int, ceiling: float) -> None:
    policy = RetryPolicy()
    assert policy.delay(attempt, None, const(0.999999)) == pytest.approx(ceiling * 0.999999)
    assert policy.delay(attempt, None, const(0.5)) == pytest.approx(ceiling / 2)


def test_backoff_is_full_jitter_from_zero() -> None:
    assert RetryPolicy().delay(3, None, const(0.0)) == 0.0


@pytest.mark.parametrize(
    ("hint", "expected"), [(0.0, 0.0), (7.0, 7.0), (60.0, 60.0), (61.0, 60.0), (-3.0, 0.0)]
)
def test_server_hint_replaces_backoff_and_is_clamped(hint: float, expected: float) -> None:
    def rand() -> float:
        raise AssertionError("jitter must not be drawn when the server gave a hint")

    assert RetryPolicy().delay(1, hint, rand) == expected


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (7, 20.0)])
def test_a_429_without_a_hint_waits_out_the_rate_window_then_backs_off(
    attempt: int, ceiling: float
) -> None:
    policy = RetryPolicy()
    assert policy.delay(attempt, None, const(0.0), rate_limited=True) == 10.0
    assert policy.delay(attempt, None, const(0.5), rate_limited=True) == pytest.approx(
        10.0 + ceiling / 2
    )


def test_a_429_with_a_hint_waits_the_hint_not_the_window() -> None:
    assert RetryPolicy().delay(1, 2.0, const(0.5), rate_limited=True) == 2.0


def test_the_rate_window_is_a_setting() -> None:
    policy = RetryPolicy(rate_window=1.0, base_delay=0.0)
    assert policy.delay(1, None, const(0.9), rate_limited=True) == 1.0


@pytest.mark.parametrize(
    ("spent", "wait", "past"), [(0.0, 120.0, False), (100.0, 20.0, False), (100.0, 20.5, True)]
)
def test_the_deadline_counts_time_spent_and_the_next_wait(
    spent: float, wait: float, past: bool
) -> None:
    assert RetryPolicy().past_deadline(spent, wait) is past


@pytest.mark.parametrize(("hint", "too_long"), [(None, False), (60.0, False), (60.01, True)])
def test_waits_too_long_only_beyond_max_retry_after(hint: float | None, too_long: bool) -> None:
    assert RetryPolicy().waits_too_long(hint) is too_long


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay": -1.0},
        {"max_delay": float("inf")},
        {"max_retry_after": float("nan")},
        {"max_elapsed": -1.0},
        {"rate_window": float("inf")},
    ],
)
def test_policy_rejects_nonsense_bounds(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": " 2.5 "}, 2.5),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"Retry-After": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00"}, 0.0),
        ({"Retry-After": "Wed, 32 Oct 2015 07:28:00 GMT"}, None),
        ({"Retry-After-Ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After-Ms": "bogus", "Retry-After": "9"}, 9.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers), NOW) == expected
