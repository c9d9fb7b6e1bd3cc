"""Client-side pacing: per key, sliding window, waits exactly as long as needed."""

from __future__ import annotations

import threading

import httpx

from bridge.langsmith import LangSmithClient, RateLimiter
from bridge.secrets import Secret


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_requests_within_the_window_do_not_wait() -> None:
    t = FakeTime()
    limiter = RateLimiter(3, 10.0, clock=t.clock, sleep=t.sleep)
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert t.slept == []


def test_the_next_request_waits_for_the_oldest_to_leave_the_window() -> None:
    t = FakeTime()
    limiter = RateLimiter(2, 10.0, clock=t.clock, sleep=t.sleep)
    limiter.acquire("k")
    t.now = 4.0
    limiter.acquire("k")
    assert limiter.acquire("k") == 6.0  # the first request leaves the window at t=10
    assert t.now == 10.0


def test_each_key_has_its_own_window() -> None:
    t = FakeTime()
    limiter = RateLimiter(1, 10.0, clock=t.clock, sleep=t.sleep)
    limiter.acquire("admin")
    assert limiter.acquire("new-key") == 0.0


def test_concurrent_callers_never_exceed_the_limit() -> None:
    limiter = RateLimiter(5, 0.2)
    stamps: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        limiter.acquire("k")
        import time

        with lock:
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    for i in range(len(stamps) - 5):
        assert stamps[i + 5] - stamps[i] >= 0.2 - 1e-3


def test_the_client_paces_every_request_through_the_limiter() -> None:
    calls: list[str] = []

    class Recording(RateLimiter):
        def acquire(self, key: str) -> float:
            calls.append(key)
            return 0.0

    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=[]))
    key = Secret("lsv2_sk_" + "a" * 32 + "_" + "b" * 10)
    with LangSmithClient(
        "http://ls.test", key, transport=transport, limiter=Recording(1)
    ) as client:
        client.list_service_keys()
        client.list_workspaces()
    assert calls == [key.fingerprint, key.fingerprint]
