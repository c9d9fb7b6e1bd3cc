"""How fast one run brings many policies up, side by side at several concurrencies.

Against the in-process emulator with added latency (so LangSmith round trips, not Python,
dominate, as they do for real), with file targets and file state in a temporary folder.
For each concurrency: a first run that mints and publishes every policy, then a run with
nothing to do. Prints policies per minute and the ratio to concurrency 1, and peak RSS.

    .venv/bin/python benchmarks/bench_run.py --policies 200 --latency-ms 25
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bridge.config import parse_config
from bridge.emulator import Emulator
from bridge.engine import Engine
from bridge.langsmith import LangSmithClient
from bridge.secrets import Secret
from bridge.state import open_store
from providers import open_provider

REGION = "us-east-1"


def config(
    emu: Emulator, root: Path, policies: int, concurrency: int, store: str
) -> dict[str, object]:
    def target(name: str) -> dict[str, str]:
        if store == "aws":
            return {"provider": "aws", "secret_id": f"langsmith/{name}", "region": REGION}
        return {"provider": "file", "path": str(root / f"out/{name}.env")}

    state = (
        {"backend": "dynamodb", "table": "bench", "region": REGION}
        if store == "aws"
        else {"backend": "file", "path": str(root / "state.json")}
    )
    return {
        "langsmith": {"endpoint": emu.url, "admin_key_env": "UNUSED"},
        "state": state,
        "run": {"concurrency": concurrency, "verify_attempts": 1},
        "policy": [
            {"name": f"p{i:04d}", "ack": "grace", "target": [target(f"p{i:04d}")]}
            for i in range(policies)
        ],
    }


def measure(policies: int, concurrency: int, latency_ms: float, store: str) -> tuple[float, float]:
    with (
        Emulator(latency_ms=latency_ms, rate_limit=100_000).start() as emu,
        tempfile.TemporaryDirectory() as tmp,
        _aws(store),
    ):
        cfg = parse_config(config(emu, Path(tmp), policies, concurrency, store))
        client = LangSmithClient(emu.url, Secret(emu.bootstrap["admin_key"]))
        with Engine(cfg, client, open_store(cfg.state), open_provider) as engine:
            selected = engine.select()
            start = time.perf_counter()
            first = engine.run(selected)
            mint = time.perf_counter() - start
            assert first.ok, [o.error for o in first.outcomes if o.error][:3]
            start = time.perf_counter()
            idle = engine.run(selected)
            noop = time.perf_counter() - start
            assert idle.ok and not any(o.done for o in idle.outcomes)
        return mint, noop


@contextlib.contextmanager
def _aws(store: str) -> Iterator[None]:
    """moto in-process with the state table, when the AWS stores are measured."""
    if store != "aws":
        yield
        return
    import boto3
    from moto import mock_aws

    from providers.dynamodb import table_definition

    for name, value in (("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x")):
        os.environ[name] = value
    with mock_aws():
        boto3.client("dynamodb", region_name=REGION).create_table(**table_definition("bench"))
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--store",
        choices=["file", "aws"],
        default="file",
        help="file targets and state, or Secrets Manager and DynamoDB on in-process moto",
    )
    args = parser.parse_args()
    print(
        f"{args.policies} policies, {args.store} stores, "
        f"emulator latency {args.latency_ms} ms per request"
    )
    header = ("concurrency", "first run", "policies/min", "speed-up", "no-op run")
    print("  ".join(f"{title:>12}" for title in header))
    baseline = None
    for concurrency in args.concurrency:
        mint, noop = measure(args.policies, concurrency, args.latency_ms, args.store)
        rate = args.policies / mint * 60
        baseline = baseline or rate
        cells = (
            f"{concurrency}",
            f"{mint:.2f}s",
            f"{rate:.0f}",
            f"{rate / baseline:.2f}x",
            f"{noop:.2f}s",
        )
        print("  ".join(f"{cell:>12}" for cell in cells))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the whole benchmark process: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
