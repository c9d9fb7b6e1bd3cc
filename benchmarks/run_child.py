"""The bridge's side of the run benchmark, in a fresh process (``bench_run.py --child``).

Builds the production engine with ``bridge.wiring.build_engine`` (rate limiter, retries and
per-store bounds as deployed), with a counting ``httpx`` transport under the LangSmith
client, and runs the phases asked for, printing one JSON object per phase on stdout:

* ``first``: the first run (mints and publishes every policy);
* ``noop``: a run with nothing to do;
* ``rotate``: a run that rotates every policy (``force``), as the CLI's ``rotate`` does;
* ``settle``: the run after it, which revokes the superseded keys (``ack = "grace"``).

Each object holds the run's wall time, the steps done, the LangSmith calls by method and
path, the process's own CPU time in the phase and its peak RSS (``ru_maxrss``) so far.
With ``aws-inprocess`` moto runs in this process (``mock_aws``) and Secrets Manager and
DynamoDB calls are counted here, by a botocore ``before-send`` hook; otherwise the parent
counts them on the moto server.
"""

from __future__ import annotations

import contextlib
import json
import re
import resource
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from run_setup import Spec

if TYPE_CHECKING:
    from run_profile import Profiler

    from bridge.config import Policy
    from bridge.engine import Engine

_ID = re.compile(r"/[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}(?=/|$)")


class CountingTransport(httpx.BaseTransport):
    """An ``httpx.HTTPTransport`` that counts requests by method and path (ids elided)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = _ID.sub("/{id}", request.url.path)
        with self._lock:
            self.counts[f"{request.method} {path}"] += 1
        return self._inner.handle_request(request)

    def take(self) -> Counter[str]:
        """The counts since the last ``take``."""
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts

    def close(self) -> None:
        self._inner.close()


class AwsCounter:
    """Counts AWS requests sent by any botocore client created after ``install``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def install(self) -> None:
        from botocore.handlers import BUILTIN_HANDLERS

        BUILTIN_HANDLERS.append(("before-send", self._count))

    def _count(self, request: Any, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        action = target.decode() if isinstance(target, bytes) else str(target)
        with self._lock:
            self.counts[action or f"{request.method} {request.url}"] += 1

    def take(self) -> Counter[str]:
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts


@contextlib.contextmanager
def _in_process_aws(counter: AwsCounter) -> Iterator[None]:
    """moto in this process, with the state table, counting every call made after it."""
    from moto import mock_aws
    from run_servers import create_table

    counter.install()
    with mock_aws():
        create_table(None)
        counter.take()  # the table's creation is the benchmark's, not the bridge's
        yield


def run_phases(
    phases: list[str], spec_path: Path, profile_out: Path | None = None, profile_mode: str = "wall"
) -> None:
    """Run ``phases`` in order on one engine, printing each one's JSON result; with
    ``profile_out``, profile them (``run_profile.Profiler``) and write the results there."""
    started = time.perf_counter()
    spec = Spec.load(spec_path)
    aws = AwsCounter() if spec.store == "aws-inprocess" else None
    with contextlib.ExitStack() as stack:
        if aws is not None:
            stack.enter_context(_in_process_aws(aws))
        transport = CountingTransport()
        engine = stack.enter_context(_engine(spec, transport))
        policies = engine.select()
        setup_s = time.perf_counter() - started
        profiler = stack.enter_context(_profiling(profile_out, profile_mode))
        for phase in phases:
            result = _phase(engine, policies, phase, transport, aws, profiler)
            print(json.dumps(result | {"setup_s": setup_s}), flush=True)


@contextlib.contextmanager
def _profiling(out: Path | None, mode: str) -> Iterator[Profiler | None]:
    if out is None:
        yield None
        return
    from run_profile import Profiler

    profiler = Profiler(mode)
    yield profiler
    profiler.dump(out)


def _engine(spec: Spec, transport: httpx.BaseTransport) -> Engine:
    from bridge.config import parse_config
    from bridge.secrets import Secret
    from bridge.wiring import build_engine

    bootstrap = json.loads(Path(spec.bootstrap_file).read_text(encoding="utf-8"))
    return build_engine(
        parse_config(spec.config), transport=transport, admin_key=Secret(bootstrap["admin_key"])
    )


def _phase(
    engine: Engine,
    policies: list[Policy],
    phase: str,
    transport: CountingTransport,
    aws: AwsCounter | None,
    profiler: Profiler | None,
) -> dict[str, Any]:
    force = frozenset(p.name for p in policies) if phase == "rotate" else frozenset()
    transport.take()
    before = resource.getrusage(resource.RUSAGE_SELF)
    with profiler or contextlib.nullcontext():
        start = time.perf_counter()
        report = engine.run(policies, force=force)
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    steps = Counter(type(step).__name__ for o in report.outcomes for step in o.done)
    errors = [f"{o.policy}: {o.error}" for o in report.outcomes if o.error]
    if phase == "noop" and steps:
        errors.append(f"the no-op run did something: {dict(steps)}")
    return {
        "phase": phase,
        "wall_s": wall,
        "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "cpu_sys_s": after.ru_stime - before.ru_stime,
        "ok": report.ok and not errors,
        "errors": errors[:3],
        "steps": dict(steps),
        "langsmith": dict(transport.take()),
        "aws": dict(aws.take()) if aws is not None else None,
        "maxrss_kib": after.ru_maxrss,
    }
