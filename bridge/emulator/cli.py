"""``langsmith-bridge emulator`` (and ``python -m bridge.emulator``): serve until stopped.

The bootstrap file (endpoint, admin key, ids) is how a demo or a test harness in
another process learns the emulator's secrets; the console never shows the key.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

from bridge.emulator.core import Emulator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def write_bootstrap(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically, readable by the owner only."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o600)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    with suppress(ValueError):  # not the main thread: rely on KeyboardInterrupt
        for sig in SIGNALS:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit code (0, or 2 on bad options)."""
    try:
        emulator = Emulator(
            host=args.host,
            port=args.port,
            latency_ms=args.latency_ms,
            fault_rate=args.fault_rate,
            fault_status=args.fault_status,
            throttle_rate=args.throttle_rate,
            rate_limit=args.rate_limit,
            rate_window_s=args.rate_window_s,
            seed=args.seed,
            auth_cache_delay_s=args.auth_cache_delay_s,
            last_used_granularity_s=args.last_used_granularity_s,
            max_service_key_expiry_days=args.max_service_key_expiry_days,
            max_pat_expiry_days=args.max_pat_expiry_days,
        )
    except ValueError as exc:
        print(f"langsmith emulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    with _stop_on_signals(stop):
        try:
            emulator.start()
        except OSError as exc:
            print(f"langsmith emulator: cannot listen: {exc}", file=sys.stderr)
            return 2
        try:
            if args.bootstrap_file is not None:
                write_bootstrap(args.bootstrap_file, emulator.bootstrap)
            print(f"LangSmith emulator listening on {emulator.url}", file=sys.stderr, flush=True)
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            emulator.stop()
    return 0
