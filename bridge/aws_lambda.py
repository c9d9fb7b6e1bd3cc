"""The AWS Lambda entry: ``bridge.aws_lambda.handler``.

One function serves three event types:

* **EventBridge schedule** (``source: aws.events`` or ``{"action": "run"}``): reconcile every
  policy, or, when ``[run] fanout_queue_url`` is set, send one SQS message per policy.
* **SQS** (``Records`` from ``aws:sqs``, bodies ``{"policy": NAME}``): reconcile those
  policies; failures are reported as ``batchItemFailures`` so only they are retried.
* **Secrets Manager rotation** (``Step``, ``SecretId``, ``ClientRequestToken``): the native
  four-step protocol for the policy whose target is that secret (``bridge.engine.native``).

The configuration comes from ``LANGSMITH_BRIDGE_CONFIG``: a path in the package, or
``s3://…``, a Secrets Manager id or an SSM parameter. It is loaded once per container; so
is the engine, whose HTTP and AWS clients are reused by warm invocations. Logs are JSON
lines without secrets; each run's figures are printed in Embedded Metric Format (namespace
``LangSmithBridge``), which CloudWatch turns into the metrics the template alarms on.
Importing this module pulls in no SDK at all: boto3 loads on first use, and hvac, google
and grpc never.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.config import BridgeConfig, load_config, parse_config
from bridge.engine import Engine
from bridge.engine.native import NativeRotation
from bridge.engine.tally import COUNTS, tally, total
from bridge.errors import BridgeError, ConfigError
from bridge.logs import configure, event
from bridge.wiring import Connections, build_engine, fan_out, fetch_config_text, store_options

log = logging.getLogger("bridge.lambda")
CONFIG_ENV = "LANGSMITH_BRIDGE_CONFIG"
METRIC_NAMESPACE = "LangSmithBridge"


class RunFailed(BridgeError):
    """At least one policy failed; raised so the invocation counts as an error."""


@dataclass
class Runtime:
    """What a container keeps between invocations: one set of store connections (one
    boto3 session), the configuration, and the engine built on both."""

    config: BridgeConfig
    engine: Engine
    connections: Connections


_runtime: Runtime | None = None


def handler(event_: Mapping[str, Any], context: Any = None) -> dict[str, Any] | None:
    """Dispatch one Lambda event. See the module docstring for the three shapes.

    A failure is logged as one JSON line (event type and error, never a secret) and raised,
    so the invocation counts as failed and AWS retries it as the event source does.
    """
    kind = _kind(event_)
    try:
        return _dispatch(kind, event_)
    except BridgeError as exc:
        event(log, "invocation_failed", level=logging.ERROR, event_type=kind, error=exc)
        raise


def _kind(event_: Mapping[str, Any]) -> str:
    if "Step" in event_ and "SecretId" in event_:
        return "rotation"
    records = event_.get("Records")
    if isinstance(records, list) and records and records[0].get("eventSource") == "aws:sqs":
        return "sqs"
    if event_.get("source") == "aws.events" or event_.get("action") == "run":
        return "schedule"
    return "unknown"


def _dispatch(kind: str, event_: Mapping[str, Any]) -> dict[str, Any] | None:
    if kind == "unknown":
        raise ConfigError(
            "unrecognised event: expected an EventBridge schedule, an SQS batch or a Secrets "
            "Manager rotation step"
        )
    runtime = _get_runtime()
    if kind == "rotation":
        _rotation(runtime, event_)
        return None
    if kind == "sqs":
        return _sqs(runtime, event_["Records"])
    return _scheduled(runtime)


def _get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        configure(os.environ.get("LANGSMITH_BRIDGE_LOG_LEVEL", "info"), "json")
        connections = Connections()
        config = load_reference(os.environ.get(CONFIG_ENV, "bridge.toml"), connections)
        connections.configure(store_options(config))  # Vault's, learnt from the config
        _runtime = Runtime(config, build_engine(config, connections=connections), connections)
    return _runtime


def reset_runtime() -> None:
    """Forget the cached configuration and engine (tests; a config change in place)."""
    global _runtime
    if _runtime is not None:
        _runtime.engine.close()
    _runtime = None


def load_reference(reference: str, connections: Connections | None = None) -> BridgeConfig:
    """Load the configuration a path or an ``s3://`` / Secrets Manager / SSM reference names."""
    if reference.startswith(("s3://", "arn:", "secretsmanager:", "ssm:")):
        with contextlib.ExitStack() as owned:
            if connections is None:
                connections = owned.enter_context(Connections())
            text = fetch_config_text(reference, connections)
        import tomllib  # only a remote config is TOML text here (cold start)

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{reference} is not valid TOML: {exc}") from exc
        return parse_config(raw, source=reference)
    path = Path(reference)
    if not path.is_absolute():
        path = Path(os.environ.get("LAMBDA_TASK_ROOT", ".")) / path
    return load_config(path)


def _scheduled(runtime: Runtime) -> dict[str, Any]:
    engine = runtime.engine
    policies = engine.select()
    queue = runtime.config.run.fanout_queue_url
    if queue:
        sent = fan_out(queue, [p.name for p in policies], runtime.connections)
        event(log, "fanned_out", queue=queue, policies=sent)
        return {"fanned_out": sent}
    started = time.monotonic()
    report = engine.run(policies)
    publish_metrics(report.outcomes, time.monotonic() - started)
    summary = _summary(report.outcomes)
    event(log, "run_finished", **{k: v for k, v in summary.items() if k != "failed"})
    if report.listing_error:
        raise RunFailed(f"LangSmith key listing failed: {report.listing_error}")
    if not report.ok:
        raise RunFailed(
            f"{len(summary['failed'])} policy(ies) failed: {', '.join(summary['failed'])}"
        )
    return summary


def _sqs(runtime: Runtime, records: list[dict[str, Any]]) -> dict[str, Any]:
    engine = runtime.engine
    by_policy: dict[str, list[str]] = {}
    failures: list[str] = []
    known = {p.name for p in runtime.config.policy}
    for record in records:
        message_id = str(record.get("messageId"))
        try:
            name = json.loads(record.get("body") or "")["policy"]
        except (ValueError, KeyError, TypeError):
            name = None
        if not isinstance(name, str) or name not in known:
            event(log, "bad_message", level=logging.ERROR, message_id=message_id)
            failures.append(message_id)
            continue
        by_policy.setdefault(name, []).append(message_id)
    if by_policy:
        started = time.monotonic()
        report = engine.run(engine.select(sorted(by_policy)))
        publish_metrics(report.outcomes, time.monotonic() - started)
        for outcome in report.outcomes:
            # Without LangSmith's listing nothing was done: every message is retried.
            if not outcome.ok or report.listing_error:
                failures += by_policy[outcome.policy]
        event(log, "batch_finished", **_summary(report.outcomes))
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}


def _rotation(runtime: Runtime, event_: Mapping[str, Any]) -> None:
    step, secret, token = event_["Step"], event_["SecretId"], event_.get("ClientRequestToken")
    if not isinstance(token, str) or not token:
        raise ConfigError("rotation event without a ClientRequestToken")
    NativeRotation(runtime.engine).step(step, secret, token)


def publish_metrics(outcomes: list[Any], seconds: float, out: Any = None) -> None:
    """Print the run's figures in CloudWatch's Embedded Metric Format: one line for the
    whole run (no dimensions: what the template's alarms watch), one per policy
    (dimension ``Policy``). CloudWatch Logs turns them into metrics; no API call is made."""
    out = out or sys.stdout
    stamp = int(time.time() * 1000)
    tallies = [tally(o) for o in outcomes]
    for one in [total(tallies), *tallies]:
        dimensions: list[list[str]] = [["Policy"]] if one.policy else [[]]
        names = [{"Name": name, "Unit": "Count"} for name in COUNTS]
        fields: dict[str, Any] = dict(one.counts)
        if one.policy is None:
            names.append({"Name": "RunDuration", "Unit": "Seconds"})
            fields["RunDuration"] = round(seconds, 3)
        else:
            fields["Policy"] = one.policy
        metrics = {"Namespace": METRIC_NAMESPACE, "Dimensions": dimensions, "Metrics": names}
        document = {"_aws": {"Timestamp": stamp, "CloudWatchMetrics": [metrics]}, **fields}
        print(json.dumps(document, separators=(",", ":")), file=out, flush=True)


def _summary(outcomes: list[Any]) -> dict[str, Any]:
    return {
        "policies": len(outcomes),
        "changed": sum(1 for o in outcomes if o.done),
        "skipped": sum(1 for o in outcomes if o.skipped),
        "failed": [o.policy for o in outcomes if not o.ok],
    }
