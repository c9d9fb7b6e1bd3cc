"""How fast one run brings many policies up, measured honestly against its critical path.

The bridge runs as deployed: the engine comes from ``bridge.wiring.build_engine`` (the
production rate limiter, retries and per-store bounds), in a fresh child process per phase
of each sample, so its peak RSS and CPU are its own. The servers run in their own processes
on 127.0.0.1: the LangSmith emulator with latency injected per request and, for
``--store aws``, a moto server reached over HTTP that counts the calls it serves
(``--store aws-inprocess`` runs moto inside the bridge's process instead, for comparison).

Per sample: fresh servers; the first run (mints and publishes every policy; compared with
its critical path ``L + ceil(N/C) * 2L``: one listing, then waves of create + verify); a
no-op run in a fresh process, then again through the CLI; and, in the first sample of each
main setting, a forced rotation of every policy plus the run that revokes the old keys,
whose calls are counted beside AWS's sample rotation Lambda. Settings alternate in the
outer loop, so machine noise hits all alike; tables show medians (and ranges).

    .venv/bin/python benchmarks/bench_run.py --quick               # smoke test, < 1 min
    .venv/bin/python benchmarks/bench_run.py --store file          # N=1000, 5000 at C=16
    .venv/bin/python benchmarks/bench_run.py --store aws --policies 200
    .venv/bin/python benchmarks/bench_run.py --store aws-inprocess --policies 200
    .venv/bin/python benchmarks/bench_run.py --profile 1000        # where the first run goes
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from run_samples import Sample
    from run_setup import Setting


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store",
        choices=["file", "aws", "aws-inprocess"],
        default="file",
        help="file targets + file state; Secrets Manager + DynamoDB on a moto server "
        "process; or on moto inside the bridge's process",
    )
    parser.add_argument("--policies", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--table-policies", type=int, default=200)
    parser.add_argument("--table-concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="N=50, 1 sample: a smoke test")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        help="instead of the tables: profile one first run of N policies at --concurrency",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # phases, in a child process
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-mode", default="wall", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.policies, args.table_policies, args.samples = [50], 50, 1
    return args


def main() -> None:
    args = parse_args()
    if args.child:  # a child: import only what the bridge's side needs
        from run_child import run_phases

        run_phases(args.child.split(","), args.spec, args.profile_out, args.profile_mode)
        return
    from run_setup import FAKE_AWS_ENV

    os.environ.update(FAKE_AWS_ENV | {"AWS_EC2_METADATA_DISABLED": "true"})
    print(f"$ {shlex.join(sys.orig_argv)}")
    if args.profile:
        from run_profile import profile

        profile(args.profile, args.concurrency, args.store, args.latency_ms)
        return
    report(args)


def report(args: argparse.Namespace) -> None:
    from run_report import (
        calls_table,
        counts_consistent,
        first_run_table,
        noop_table,
        rss_table,
    )
    from run_servers import round_trip_s
    from run_setup import REQUESTS_PER_10S, Setting

    main_settings = [Setting(n, args.concurrency) for n in args.policies]
    table_settings = [Setting(args.table_policies, c) for c in args.table_concurrency]
    rtt_s = round_trip_s(args.latency_ms)
    groups = collect(args, main_settings, table_settings)
    latency_s = args.latency_ms / 1000
    print(describe(args, REQUESTS_PER_10S))
    print(
        f"measured round trip of one emulator request (sequential, keep-alive, median of 20): "
        f"{rtt_s * 1000:.1f} ms"
    )
    main_groups = {s: groups[s] for s in main_settings}
    title = f"First run against its critical path L + ceil(N/C)*2L, L = {args.latency_ms:g} ms"
    print(first_run_table(title, main_groups, latency_s, rtt_s))
    title = f"Concurrency at N={args.table_policies}: first run, speed-up against C=1"
    table_groups = {s: groups[s] for s in table_settings}
    print(first_run_table(title, table_groups, latency_s, rtt_s, speedup=True))
    print(noop_table(main_groups, args.store))
    print(rss_table(main_groups, args.store))
    rotations = count_rotations(args, main_settings)
    for setting in main_settings:
        sampled = [*groups[setting], rotations[setting]]
        print(calls_table(rotations[setting], counts_consistent(sampled)))


def collect(
    args: argparse.Namespace, main_settings: list[Setting], table_settings: list[Setting]
) -> dict[Setting, list[Sample]]:
    """Every setting's samples, settings alternating in the outer loop."""
    from run_samples import run_sample

    settings = list(dict.fromkeys([*main_settings, *table_settings]))
    groups: dict[Setting, list[Sample]] = {setting: [] for setting in settings}
    for index in range(args.samples):
        for setting in settings:
            sample = run_sample(setting, args.store, args.latency_ms, rotate=False)
            groups[setting].append(sample)
            first = sample.phases["first"]
            print(
                f"  sample {index + 1}/{args.samples} {setting}: first run {first.wall_s:.2f}s, "
                f"no-op {sample.phases['noop'].wall_s:.3f}s",
                file=sys.stderr,
                flush=True,
            )
    return groups


def count_rotations(args: argparse.Namespace, settings: list[Setting]) -> dict[Setting, Sample]:
    """One more sample per setting, with a whole rotation cycle, for the calls tables only.

    It comes after every timed sample: a rotation replaces each target's file, and the
    inodes it frees would slow the file creations of a first run measured after it.
    """
    from run_samples import run_sample

    return {s: run_sample(s, args.store, args.latency_ms, rotate=True) for s in settings}


def describe(args: argparse.Namespace, requests_per_10s: int) -> str:
    stores = {
        "file": "file targets and file state (SQLite) in a temporary folder",
        "aws": "Secrets Manager targets and DynamoDB state on a moto server in its own "
        "process, over HTTP",
        "aws-inprocess": "Secrets Manager targets and DynamoDB state on moto inside the "
        "bridge's process (mock_aws)",
    }
    return "\n".join(
        [
            f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{platform.system()}; {args.samples} sample(s) per setting, settings alternated, "
            "medians (min-max)",
            f"stores: {stores[args.store]}; one target per policy, ack = grace, "
            "verify_attempts = 1",
            "engine: bridge.wiring.build_engine (production limiter, retries, "
            "per_store_concurrency default)",
            f"LangSmith: emulator process, {args.latency_ms:g} ms injected per request, "
            "--rate-limit 1000000",
            f"rate limiter: requests_per_10s = {requests_per_10s}: present but not binding. "
            "LangSmith's real limit (1000 per 10 s per key)\n  would bound minting at "
            "~100 keys/s: the admin key makes one create per key (verification uses the new "
            "key).",
        ]
    )


if __name__ == "__main__":
    main()
