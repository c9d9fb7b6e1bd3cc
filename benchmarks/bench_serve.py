"""What ``langsmith-bridge serve`` costs to look at and to talk to, at 1, 20 and 100 policies.

Each setting gets a fresh LangSmith emulator and N policies with one file target and one
consumer (``api``, explicit acks) each, brought up by one run and then rotated once, so every
card on the page shows a superseded key waiting for its consumer (the page's biggest
ordinary state). The service is the real app on uvicorn (``tests/support/serving.py``), its
snapshot taken once up front, so requests read memory as in production. Then, side by side:

* **snapshot**: one ``Watcher.take`` (state, every target read back, acks proven), median
  of 5: what the page's "as of ... (N ms)" reports and what the background thread pays;
* **page**: ``GET /`` through httpx on one keep-alive connection, median and p95 of 50;
* **chromium**: a cold load of ``/`` in headless Debian Chromium (a new context each time),
  navigation timing ``loadEventEnd - startTime``, median of 10;
* **metrics**: ``GET /metrics`` through httpx, median and p95 of 50;
* **ack**: ``POST /v1/ack`` with a valid key (the policy's current one), median and p95 of
  50 through httpx, and 50 through a ``curl`` subprocess (wall time including the process,
  and curl's own ``time_total``). The service's per-client limiter (20 at once, then 5 a
  second) is lifted for this, or most of the 50 would be answered 429.

    .venv/bin/python benchmarks/bench_serve.py                  # N = 1, 20, 100
    .venv/bin/python benchmarks/bench_serve.py --policies 1 500 --no-browser
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the served app and the browser helper

from bridge.config import BridgeConfig, load_config  # noqa: E402
from bridge.emulator import Emulator  # noqa: E402
from bridge.payload import API_KEY, decode  # noqa: E402
from bridge.serve.http_ack import Limiter  # noqa: E402
from bridge.wiring import build_engine  # noqa: E402
from tests.integration.conftest import config_text, policy_toml  # noqa: E402
from tests.support.browser import Chromium, available, chromium  # noqa: E402
from tests.support.serving import Served, served  # noqa: E402

ADMIN_KEY_ENV = "LANGSMITH_ADMIN_KEY"
GETS = 50
ACKS = 50
LOADS = 10
SNAPSHOTS = 5
UNLIMITED = Limiter(rate=1e9, burst=10**9, failures=10**9)


@dataclass
class Row:
    policies: int
    page_kb: float
    snapshot_ms: float
    page: tuple[float, float]
    chromium_ms: float | None
    metrics: tuple[float, float]
    ack_httpx: tuple[float, float]
    ack_curl: tuple[float, float]
    ack_curl_own_ms: float


def median_p95(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * len(ordered)))]


def timed_ms(action: Callable[[], object], times: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


@contextmanager
def bridge_with(policies: int, root: Path) -> Iterator[tuple[Emulator, BridgeConfig]]:
    """An emulator and N policies, published and then rotated once (all waiting for api)."""
    with Emulator(rate_limit=1_000_000).start() as emu:
        os.environ[ADMIN_KEY_ENV] = emu.bootstrap["admin_key"]
        names = [f"p{i:04d}" for i in range(policies)]
        body = "\n\n".join(
            policy_toml(n, consumers=["api"], ack="explicit", min_overlap="0s") for n in names
        )
        path = root / "bridge.toml"
        path.write_text(config_text(emu, body, run="verify_attempts = 1\nconcurrency = 16"))
        config = load_config(path)
        for force in (frozenset(), frozenset(names)):
            with build_engine(config, clock=emu.clock.now, sleep=lambda _: None) as engine:
                report = engine.run(engine.select(None), force=force)
            assert report.ok, [o.error for o in report.outcomes if o.error]
        yield emu, config


def current_key(root: Path, policy: str) -> str:
    text = (root / "out" / f"{policy}.env").read_text()
    return decode(text, "dotenv")[API_KEY]


def ack_httpx(service: Served, key: str, policy: str) -> Callable[[], object]:
    body = json.dumps({"policy": policy, "consumer": "api", "replica": "bench-httpx"})

    def ack() -> None:
        answer = service.client.post("/v1/ack", headers={"X-API-Key": key}, content=body)
        assert answer.status_code == 200, answer.text

    return ack


def ack_curl(service: Served, key: str, policy: str, own: list[float]) -> Callable[[], object]:
    body = json.dumps({"policy": policy, "consumer": "api", "replica": "bench-curl"})
    command = [
        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-X", "POST",
        f"{service.url}/v1/ack", "-H", f"X-API-Key: {key}",
        "-H", "Content-Type: application/json", "-d", body,
    ]  # fmt: skip

    def ack() -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        code, total = done.stdout.split()
        assert code == "200", done.stdout
        own.append(float(total) * 1000)

    return ack


def measure(policies: int, browser: Chromium | None) -> Row:
    with (
        tempfile.TemporaryDirectory(prefix="bench-serve-") as folder,
        bridge_with(policies, Path(folder)) as (emu, config),
        served(config, emu.clock.now, limiter=UNLIMITED) as service,
    ):
        policy = config.policy[0].name
        key = current_key(Path(folder), policy)
        snapshot = timed_ms(service.fresh, SNAPSHOTS, warmup=1)
        size = len(service.client.get("/").content) / 1024
        page = timed_ms(lambda: service.client.get("/").raise_for_status(), GETS)
        loads = [browser.load_ms(service.url) for _ in range(LOADS + 1)][1:] if browser else None
        metrics = timed_ms(lambda: service.client.get("/metrics").raise_for_status(), GETS)
        by_httpx = timed_ms(ack_httpx(service, key, policy), ACKS)
        own: list[float] = []
        by_curl = timed_ms(ack_curl(service, key, policy, own), ACKS)
        return Row(
            policies=policies,
            page_kb=size,
            snapshot_ms=statistics.median(snapshot),
            page=median_p95(page),
            chromium_ms=statistics.median(loads) if loads else None,
            metrics=median_p95(metrics),
            ack_httpx=median_p95(by_httpx),
            ack_curl=median_p95(by_curl),
            ack_curl_own_ms=statistics.median(own[-ACKS:]),
        )


def pair(values: tuple[float, float]) -> str:
    return f"{values[0]:.1f} / {values[1]:.1f}"


def cells(r: Row) -> tuple[str, ...]:
    browser = f"{r.chromium_ms:.1f}" if r.chromium_ms is not None else "-"
    return (
        str(r.policies), f"{r.page_kb:.0f}", f"{r.snapshot_ms:.1f}", pair(r.page), browser,
        pair(r.metrics), pair(r.ack_httpx), pair(r.ack_curl), f"{r.ack_curl_own_ms:.1f}",
    )  # fmt: skip


def table(rows: list[Row]) -> str:
    head = (
        "policies", "page KB", "snapshot", "GET / (httpx)", "chromium load", "GET /metrics",
        "ack (httpx)", "ack (curl, wall)", "ack (curl time_total)",
    )  # fmt: skip
    lines = [head, *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, nargs="+", default=[1, 20, 100])
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium loads")
    args = parser.parse_args()
    why = "--no-browser" if args.no_browser else available()
    print(f"python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs")
    print(
        f"times in ms; 'a / b' is median / p95 of {GETS} (acks: {ACKS}); snapshot: median of "
        f"{SNAPSHOTS}; chromium: loadEventEnd - startTime, median of {LOADS} cold loads"
    )
    if why:
        print(f"chromium skipped: {why}")
    if why:
        rows = [measure(n, None) for n in args.policies]
    else:
        with chromium() as browser:
            rows = [measure(n, browser) for n in args.policies]
    print(table(rows))


if __name__ == "__main__":
    main()
