"""A consumer replica, as a real application would be written: one process that traces
continuously with the official ``langsmith`` SDK, configured only from what
``bridge.consumer.load_settings`` exports, and picks up every key the bridge publishes.

Run it as ``python -m tests.consumers.app --config bridge.toml --consumer api --replica
api-0 --policy tracing --report api-0.json --deadline EPOCH``. Each ``--policy NAME`` (or
``NAME:noack`` for a policy whose gate does not wait for acknowledgements) gets one SDK
client; every ``--interval`` seconds, for each policy, the replica:

1. uses the client it has, as an application does between two looks at its settings:
   traces one run (``@traceable``) into a project of its own, flushes, and makes one
   cheap authenticated read (``list_projects(limit=1)``);
2. re-reads the policy's target (``load_settings(..., ack=False)``) into a mapping of its
   own (two credentials in one process must not share ``LANGSMITH_WORKSPACE_ID``);
3. when the key changed, builds a new ``langsmith.Client`` from that mapping, then flushes
   and closes the old one, so no upload with the old key is still pending;
4. only then acknowledges, with a proof, as this replica (``load_settings`` again, with
   ``ack=True``): its heartbeat; if that read found a newer key still, it switches again.

So a key is used for up to one interval after the bridge replaced it in the target, and
for as long as the replica is stalled (the test pauses some with SIGSTOP): what the
revocation gates must allow for.

Every HTTP response the SDK gets is counted through a ``requests`` response hook on the
session handed to the client, upload errors through ``tracing_error_callback``. The
report (JSON, rewritten atomically after every loop, so a test can read it whatever
happens) names keys by their short form and fingerprint only; no key is ever printed or
written. The process stops by itself at ``--deadline`` (wall clock) or when
``--stop-file`` appears.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import langsmith
import requests
from langsmith import traceable, tracing_context

from bridge.consumer import load_settings
from bridge.engine import AckError
from bridge.errors import BridgeError
from bridge.payload import API_KEY, ENDPOINT, WORKSPACE_ID
from bridge.secrets import fingerprint, redact

KEY_HEADER = "x-api-key"
MAX_EVENTS = 50  # per list in the report: enough to diagnose, bounded


def short_form(key: str) -> str:
    """The display form LangSmith and the bridge use: prefix, 4 first and 4 last digits."""
    prefix = key[:8] if key.startswith(("lsv2_sk_", "lsv2_pt_")) else ""
    return f"{prefix}{key[len(prefix) : len(prefix) + 4]}...{key[-4:]}"


def now_s() -> float:
    return round(time.time(), 3)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status behind an SDK error, from the ``requests`` error it was raised from."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        if isinstance(response, requests.Response):
            return response.status_code
        for inner in getattr(current, "exceptions", ()) or ():
            found = status_of(inner)
            if found is not None:
                return found
        current = current.__cause__ or current.__context__
    if isinstance(exc, langsmith.utils.LangSmithAuthError):
        return 401
    return None


@dataclass
class Report:
    """What this replica saw, as JSON-ready data (short keys and fingerprints only)."""

    consumer: str
    replica: str
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=now_s)
    loops: int = 0
    finished: bool = False
    crashed: str | None = None
    http: Counter[str] = field(default_factory=Counter)  # status -> responses
    http_failures: list[dict[str, Any]] = field(default_factory=list)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, bucket: list[dict[str, Any]], **item: Any) -> None:
        with self.lock:
            if len(bucket) < MAX_EVENTS:
                bucket.append({"at": now_s(), **item})

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "consumer": self.consumer,
                "replica": self.replica,
                "pid": self.pid,
                "started_at": self.started_at,
                "written_at": now_s(),
                "loops": self.loops,
                "finished": self.finished,
                "crashed": self.crashed,
                "http": dict(self.http),
                "http_failures": list(self.http_failures),
                "policies": json.loads(json.dumps(self.policies)),
            }

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=1), encoding="utf-8")
        tmp.replace(path)


class Feed:
    """One policy's credential in this replica: the current SDK client and its counts."""

    def __init__(self, app: App, policy: str, ack: bool) -> None:
        self.app = app
        self.policy = policy
        self.ack = ack
        self.project = f"{policy}.{app.replica}"
        self.environ: dict[str, str] = {}
        self.client: langsmith.Client | None = None
        self.fingerprint: str | None = None
        self.short: str | None = None
        self.stats: dict[str, Any] = {
            "project": self.project,
            "ack": ack,
            "sent": 0,
            "sent_by_key": {},  # short form -> runs traced with it
            "reads": 0,  # list_projects calls
            "acks": 0,
            "keys": [],  # [short, fingerprint, first used at]
            "switches": [],
            "load_errors": [],
            "ack_refused": [],
            "trace_errors": [],
            "read_errors": [],
        }
        app.report.policies[policy] = self.stats

    # -- the loop's steps ---------------------------------------------------------------

    def step(self) -> None:
        if self.client is not None:
            self._trace()
            self._read()
        if self._load(ack=False) and self.ack and self._load(ack=True):
            self.stats["acks"] += 1

    def close(self) -> None:
        if self.client is not None:
            self.client.flush(timeout=10)
            self.client.close(timeout=10)
            self.client = None

    def _load(self, *, ack: bool) -> bool:
        """Read the target (and acknowledge); switch clients when the key changed."""
        app = self.app
        try:
            settings = load_settings(
                self.policy,
                app.consumer,
                config=app.config,
                environ=self.environ,
                ack=ack,
                replica=app.replica,
            )
        except AckError as exc:
            # Refused: the state does not know this key (e.g. it was lost and the bridge
            # has not adopted the key yet). The key itself is still the one to use.
            self.app.report.event(self.stats["ack_refused"], key=self.short, error=redact(str(exc)))
            return False
        except BridgeError as exc:
            self.app.report.event(
                self.stats["load_errors"],
                ack=ack,
                error=f"{type(exc).__name__}: {redact(str(exc))}",
            )
            return False
        if settings.fingerprint != self.fingerprint:
            self._switch()
        return True

    def _switch(self) -> None:
        """A new client from what ``load_settings`` exported; the old one is drained first
        so that nothing is still uploading with the old key once the new one is acked."""
        key = self.environ[API_KEY]
        new_fp, new_short = fingerprint(key), short_form(key)
        client = langsmith.Client(
            api_key=key,
            api_url=self.environ[ENDPOINT],
            workspace_id=self.environ.get(WORKSPACE_ID),
            session=self.app.session(),
            tracing_error_callback=self._upload_failed_with(new_short),
        )
        old, old_short = self.client, self.short
        self.client, self.fingerprint, self.short = client, new_fp, new_short
        if old is not None:
            old.flush(timeout=10)
            old.close(timeout=10)
        with self.app.report.lock:
            self.stats["keys"].append([new_short, new_fp, now_s()])
        self.app.report.event(self.stats["switches"], old=old_short, new=new_short)

    def _trace(self) -> None:
        assert self.client is not None
        client, short = self.client, self.short

        @traceable(name="consumer-step", client=client, project_name=self.project)
        def work(i: int) -> int:
            return i * 2

        with tracing_context(enabled=True, client=client, project_name=self.project):
            work(self.stats["sent"])
        with self.app.report.lock:
            self.stats["sent"] += 1
            by_key = self.stats["sent_by_key"]
            by_key[short] = by_key.get(short, 0) + 1
        client.flush(timeout=10)

    def _read(self) -> None:
        assert self.client is not None
        self.stats["reads"] += 1
        try:
            list(self.client.list_projects(limit=1))
        except Exception as exc:  # an SDK error: classified and recorded, never fatal
            self.app.report.event(
                self.stats["read_errors"],
                key=self.short,
                status=status_of(exc),
                error=f"{type(exc).__name__}: {redact(str(exc))[:300]}",
            )

    def _upload_failed_with(self, short: str) -> Callable[[Exception], None]:
        """The ``tracing_error_callback`` of the client using the key ``short``."""

        def failed(exc: Exception) -> None:
            self.app.report.event(
                self.stats["trace_errors"],
                key=short,
                status=status_of(exc),
                error=f"{type(exc).__name__}: {redact(str(exc))[:300]}",
            )

        return failed


class App:
    """The replica: its feeds, its report and its stopping rules."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.config = Path(args.config)
        self.consumer = args.consumer
        self.replica = args.replica
        self.interval = args.interval
        self.deadline = args.deadline
        self.stop_file = Path(args.stop_file) if args.stop_file else None
        self.report_path = Path(args.report)
        self.report = Report(args.consumer, args.replica)
        self.feeds = [Feed(self, *self._policy(spec)) for spec in args.policy]

    @staticmethod
    def _policy(spec: str) -> tuple[str, bool]:
        name, _, mode = spec.partition(":")
        return name, mode != "noack"

    def session(self) -> requests.Session:
        """A session whose every response is counted (uploads included)."""
        session = requests.Session()
        session.trust_env = False  # loopback only, never a proxy
        session.hooks["response"].append(self._seen)
        return session

    def _seen(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        status = response.status_code
        with self.report.lock:
            self.report.http[str(status)] += 1
        if status >= 400:
            raw = response.request.headers.get(KEY_HEADER, "")
            key = raw.decode() if isinstance(raw, bytes) else raw
            self.report.event(
                self.report.http_failures,
                status=status,
                method=response.request.method,
                path=(response.request.path_url or "").split("?")[0],
                key=short_form(key) if key else None,
                fingerprint=fingerprint(key) if key else None,
                body=redact(response.text[:200]),
            )

    def stopping(self) -> bool:
        return time.time() >= self.deadline or bool(self.stop_file and self.stop_file.exists())

    def run(self) -> None:
        try:
            while not self.stopping():
                started = time.monotonic()
                for feed in self.feeds:
                    feed.step()
                self.report.loops += 1
                self.report.write(self.report_path)
                time.sleep(max(0.0, self.interval - (time.monotonic() - started)))
            for feed in self.feeds:
                feed.close()
            self.report.finished = True
        except Exception as exc:
            self.report.crashed = redact("".join(traceback.format_exception(exc)))[-2000:]
            raise
        finally:
            self.report.write(self.report_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--consumer", required=True)
    parser.add_argument("--replica", required=True)
    parser.add_argument("--policy", action="append", required=True, help="NAME or NAME:noack")
    parser.add_argument("--report", required=True)
    parser.add_argument("--deadline", type=float, required=True, help="wall-clock epoch")
    parser.add_argument("--stop-file")
    parser.add_argument("--interval", type=float, default=0.5)
    App(parser.parse_args(argv)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
