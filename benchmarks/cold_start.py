"""Lambda cold start: whole-process import time of the handler against ``import boto3``.

Each statement runs in a fresh interpreter, alternating so machine noise hits all alike;
the table shows the median wall time of the process and, from ``-X importtime``, the
cumulative import time of the top-level module. Ratios are to ``import boto3``.

    .venv/bin/python benchmarks/cold_start.py --runs 15
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": "pass",
    "import boto3": "import boto3",
    "import bridge.aws_lambda": "import bridge.aws_lambda",
    "handler + AWS adapters (first AWS call)": (
        "import bridge.aws_lambda, providers.aws, providers.dynamodb"
    ),
}


def once(statement: str) -> tuple[float, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    # The last line of -X importtime is the outermost import of the statement.
    cumulative = [int(m) for m in re.findall(r"import time:\s+\d+ \|\s+(\d+) \| \S", done.stderr)]
    return wall, (max(cumulative) / 1e6 if cumulative else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {name: [] for name in CASES}
    imports: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, statement in CASES.items():
            wall, imported = once(statement)
            walls[name].append(wall)
            imports[name].append(imported)
    base_wall = statistics.median(walls["import boto3"])
    base_import = statistics.median(imports["import boto3"])
    print(f"median of {args.runs} fresh processes each, alternating")
    print(f"{'statement':<42} {'process':>9} {'ratio':>6} {'largest import':>15} {'ratio':>6}")
    for name in CASES:
        wall, imported = statistics.median(walls[name]), statistics.median(imports[name])
        print(
            f"{name:<42} {wall * 1000:>7.0f}ms {wall / base_wall:>6.2f} "
            f"{imported * 1000:>13.0f}ms {imported / base_import if base_import else 0:>6.2f}"
        )


if __name__ == "__main__":
    main()
