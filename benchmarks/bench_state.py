"""What one ``save`` of the file state backend costs, and how many saves threads get through.

Every store starts from the same legacy JSON state (format 1) of N policies, each record
shaped like a real one (three generations with ids, short keys, fingerprints, timestamps
and target versions): the JSON-era backend reads it as its own file, the SQLite backend
imports it on first use. Then:

* **save cost**: the median time of one ``save`` (a compare-and-swap of one existing
  policy's record) at 100, 1,000 and 5,000 policies, in several samples that alternate
  between the settings (and implementations), so that drift in the machine hits all alike;
* **threads**: saves per second with 1, 4 and 16 threads sharing one store, each saving
  its own policy (a ``load`` then a ``save``, as a reconcile does), median of the samples;
* **connection models** (``--models``): the same thread workload on the SQLite backend with
  its connection model swapped: one connection per thread and writers queued on a lock of
  the store (what ships), one shared connection behind one lock, and one connection per
  thread meeting only in SQLite's busy handler.

``--compare PATH`` loads another implementation's ``FileStateStore`` from a file and runs
it side by side, e.g. the JSON-era one::

    git show d533fc7:bridge/state/file.py > /tmp/old_file_state.py   # the JSON-era backend
    .venv/bin/python benchmarks/bench_state.py --compare /tmp/old_file_state.py

The folder (``--dir``, default the system's temporary folder) should be on the disk the
state lives on in production: every save is fsynced, so the disk sets the pace.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from bridge.secrets import fingerprint
from bridge.state import FileStateStore
from bridge.state.model import Generation, Phase, PolicyRecord

COUNTS = (100, 1000, 5000)
THREADS = (1, 4, 16)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Store(Protocol):
    def load(self, policy: str) -> PolicyRecord: ...
    def save(self, record: PolicyRecord) -> PolicyRecord: ...
    def close(self) -> None: ...


Factory = Callable[[Path], Store]


# -- the state measured ----------------------------------------------------------------


def real_record(name: str, n: int) -> PolicyRecord:
    """A record as a policy in its second rotation has one: superseded, current, minting."""
    record = PolicyRecord(policy=name, version=3, last_run_at=T0 + timedelta(hours=n))
    for g, phase in enumerate((Phase.SUPERSEDED, Phase.CURRENT, Phase.MINTING)):
        key = f"lsv2_sk_{n:016x}{g:016x}_{n:010x}"
        at = T0 + timedelta(days=30 * g, seconds=n)
        record = record.with_generation(
            Generation(
                rotation_id=f"{at:%Y%m%dT%H%M%SZ}-{n:08x}{g:08x}",
                phase=phase,
                started_at=at,
                reason="scheduled rotation",
                key_id=f"00000000-0000-4000-8000-{n:08d}{g:04d}",
                short_key=key[:12] + "***",
                fingerprint=fingerprint(key),
                created_at=at + timedelta(seconds=1),
                expires_at=at + timedelta(days=60),
                published_at=at + timedelta(seconds=2),
                superseded_at=at + timedelta(days=30) if phase is Phase.SUPERSEDED else None,
                targets={f"file:out/{name}.env": f"v{g}", f"aws:us-east-1:{name}": f"uuid-{g}"},
            )
        )
    return record


def legacy_state(path: Path, count: int) -> None:
    """``count`` policies in the JSON-era format, which either implementation opens."""
    policies = {
        f"p{i:05d}": real_record(f"p{i:05d}", i).model_dump(mode="json") for i in range(count)
    }
    data = {"format": 1, "policies": policies, "acks": {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


# -- measurements ----------------------------------------------------------------------


def save_sample(store: Store, count: int, saves: int, offset: int) -> float:
    """Median seconds of ``saves`` saves, each of a different existing policy."""
    times = []
    quiet_disk()
    for k in range(saves):
        name = f"p{(offset + k * 7919) % count:05d}"  # spread over the whole state
        record = store.load(name)
        changed = record.model_copy(update={"last_run_at": datetime.now(UTC)})
        started = time.perf_counter()
        store.save(changed)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def threads_sample(store: Store, threads: int, seconds: float) -> tuple[float, float]:
    """Saves per second of ``threads`` threads, each a load then a save of its own policy,
    and the 99th percentile of one load-and-save's seconds (a starved thread shows there)."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads + 1)
    deadline = 0.0

    def worker(i: int) -> None:
        name, mine = f"p{i:05d}", latencies[i]
        start.wait()
        while (began := time.perf_counter()) < deadline:
            record = store.load(name)
            store.save(record.model_copy(update={"last_run_at": datetime.now(UTC)}))
            mine.append(time.perf_counter() - began)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    quiet_disk()
    deadline = time.perf_counter() + seconds
    start.wait()
    began = time.perf_counter()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - began
    every = sorted(t for mine in latencies for t in mine)
    return len(every) / elapsed, every[int(len(every) * 0.99)] if every else 0.0


def quiet_disk() -> None:
    """Flush everything dirty first (the legacy files written unsynced at setup, the other
    implementation's writes), so that a sample pays only for its own fsyncs."""
    os.sync()


@contextlib.contextmanager
def opened(factory: Factory, root: Path, label: str, count: int) -> Iterator[Store]:
    path = root / label.replace(" ", "-") / str(count) / "bridge-state.json"
    if not path.exists():
        legacy_state(path, count)
    store = factory(path)
    try:
        store.load("p00000")  # the SQLite backend imports the JSON here, outside any timing
        yield store
    finally:
        store.close()


def bench_saves(impls: dict[str, Factory], root: Path, rounds: int, saves: int) -> None:
    samples: dict[tuple[str, int], list[float]] = {}
    with contextlib.ExitStack() as stack:
        live = {
            (label, count): stack.enter_context(opened(factory, root, label, count))
            for label, factory in impls.items()
            for count in COUNTS
        }
        order = list(live.items())
        for n in range(rounds):  # every round alternates settings and implementations,
            for (label, count), store in order[n % len(order) :] + order[: n % len(order)]:
                sample = save_sample(store, count, saves, n * saves)  # from a new place
                samples.setdefault((label, count), []).append(sample)
    print(f"\nOne save, median of {rounds} samples x {saves} saves (ms):")
    print(f"  {'policies':>10}" + "".join(f"{label:>16}" for label in impls))
    for count in COUNTS:
        cells = (statistics.median(samples[label, count]) * 1000 for label in impls)
        print(f"  {count:>10}" + "".join(f"{cell:>16.3f}" for cell in cells))


def bench_threads(
    impls: dict[str, Factory], root: Path, rounds: int, seconds: float, *, tails: bool = False
) -> None:
    count = 1000
    rates: dict[tuple[str, int], list[float]] = {}
    p99s: dict[tuple[str, int], list[float]] = {}
    with contextlib.ExitStack() as stack:
        live = {
            label: stack.enter_context(opened(factory, root, label, count))
            for label, factory in impls.items()
        }
        for n in range(rounds):
            for threads in THREADS:
                order = list(live.items())
                for label, store in order[n % len(order) :] + order[: n % len(order)]:
                    rate, p99 = threads_sample(store, threads, seconds)
                    rates.setdefault((label, threads), []).append(rate)
                    p99s.setdefault((label, threads), []).append(p99)
    title = f"\nSaves per second, threads sharing one store of {count} policies, median of {rounds}"
    print(title + (" (p99 of one load-and-save in ms):" if tails else ":"))
    width = 22 if tails else 16
    print(f"  {'threads':>10}" + "".join(f"{label:>{width}}" for label in impls))
    for threads in THREADS:
        cells = []
        for label in impls:
            rate = statistics.median(rates[label, threads])
            p99 = statistics.median(p99s[label, threads]) * 1000
            cells.append(f"{rate:>10.0f} (p99 {p99:5.1f})" if tails else f"{rate:>{width}.0f}")
        print(f"  {threads:>10}" + "".join(cells))


# -- alternative connection models, for --models ---------------------------------------


class SharedConnection(FileStateStore):
    """One connection for every thread, every call behind one lock."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._shared: sqlite3.Connection | None = None
        self._reading = self._serialised(self._reading)  # type: ignore[method-assign]

    def _serialised(self, reading: Any) -> Any:
        @contextlib.contextmanager
        def locked() -> Iterator[Any]:
            with self._write_lock, reading() as conn:
                yield conn

        return locked

    def _thread_connection(self) -> sqlite3.Connection:
        if self._shared is None:
            self._shared = super()._thread_connection()
        return self._shared


class BusyHandlerOnly(FileStateStore):
    """One connection per thread; writers meet only in SQLite's (sleeping) busy handler."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._write_lock = contextlib.nullcontext()  # type: ignore[assignment]


def load_store_class(path: Path) -> Factory:
    spec = importlib.util.spec_from_file_location(f"compared_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    store_class: Factory = module.FileStateStore
    return store_class


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="another FileStateStore module, side by side")
    parser.add_argument("--models", action="store_true", help="also compare connection models")
    parser.add_argument("--dir", type=Path, help="where the state files go (the disk matters)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--saves", type=int, default=20, help="saves per sample")
    parser.add_argument("--seconds", type=float, default=1.0, help="per thread sample")
    args = parser.parse_args()

    impls: dict[str, Factory] = {"sqlite": FileStateStore}
    if args.compare:
        impls = {"compared": load_store_class(args.compare), **impls}
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-state-") as tmp:
        root = Path(tmp)
        print(f"State files in {root}")
        bench_saves(impls, root, args.rounds, args.saves)
        bench_threads(impls, root, args.rounds, args.seconds)
        if args.models:
            models: dict[str, Factory] = {
                "thread+lock": FileStateStore,
                "shared conn": SharedConnection,
                "busy handler": BusyHandlerOnly,
            }
            print("\nConnection models of the SQLite backend:", end="")
            bench_threads(models, root, args.rounds, args.seconds, tails=True)


if __name__ == "__main__":
    main()
