"""Lambda cold start: whole-process import time of the handler against ``import boto3``.

Each statement runs in a fresh interpreter, alternating so machine noise hits all alike;
the table shows the median wall time of the process and, from ``-X importtime``, the
cumulative import time of the top-level module. Ratios are to ``import boto3``. The last
two rows add what a container's first invocation does before its first AWS call: parse a
typical configuration, then build the LangSmith client (which loads ``httpx``).

    .venv/bin/python benchmarks/cold_start.py --runs 15
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time

# A typical Lambda deployment's configuration: DynamoDB state, fan-out, AWS targets.
TYPICAL_CONFIG = """
[langsmith]
region = "eu"
admin_key_secret = "langsmith-bridge/admin-key"
organization_id = "5f0c6d2e-8d3b-4f7e-9a41-2c1b8e6a7d90"
instance = "prod"

[state]
backend = "dynamodb"
table = "langsmith-bridge-state"

[run]
concurrency = 4
fanout_queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/langsmith-bridge"

[[policy]]
name = "tracing-prod"
workspaces = ["0b8f3c1a-6e2d-4c5b-9f7a-1d2e3f4a5b6c"]
rotate_every = "30d"
key_ttl = "60d"
consumers = ["api", "worker"]

  [[policy.target]]
  provider = "aws"
  secret_id = "prod/langsmith"
  region = "eu-west-1"

[[policy]]
name = "evals"
ack = "grace"
rotate_every = "7d"
key_ttl = "14d"
min_overlap = "1d"

  [[policy.target]]
  provider = "aws"
  secret_id = "evals/langsmith"
  replica_regions = ["eu-central-1"]

  [[policy.target]]
  provider = "file"
  path = "/tmp/evals.env"
  format = "json"
"""

CASES = {
    "python -c pass": "pass",
    "import boto3": "import boto3",
    "import bridge.aws_lambda": "import bridge.aws_lambda",
    "handler + AWS adapters (first AWS call)": (
        "import bridge.aws_lambda, providers.aws.secrets_manager, providers.aws.dynamodb"
    ),
    "import + parse a typical config": (
        "import bridge.aws_lambda, tomllib; from bridge.config import parse_config; "
        f"parse_config(tomllib.loads({TYPICAL_CONFIG!r}))"
    ),
    # What a first invocation adds before any AWS call: the engine's LangSmith client.
    "  + LangSmith client (first invocation)": (
        "import bridge.aws_lambda, tomllib; from bridge.config import parse_config; "
        "from bridge.langsmith import LangSmithClient; from bridge.secrets import Secret; "
        f"config = parse_config(tomllib.loads({TYPICAL_CONFIG!r})); "
        "LangSmithClient(config.langsmith.api_endpoint, Secret('k')).close()"
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
