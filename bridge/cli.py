"""``langsmith-bridge``: the command line.

Exit codes: 0 success; 1 failed (a policy failed, LangSmith's key listing failed, an ack
was refused, ``status --check`` found a problem); 2 bad configuration or usage, an unknown
policy included (nothing was touched); 3 skipped: another runner holds a policy's lease
(nothing else failed); 4 ``plan --detailed-exitcode``: changes are pending.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.config import (
    BridgeConfig,
    Policy,
    config_path,
    config_schema,
    load_any_config,
    load_config,
)
from bridge.consumer import resolve, send_ack
from bridge.engine import policy_status
from bridge.engine.observe import observe_policy
from bridge.engine.runner import RunReport, utcnow
from bridge.engine.status import PolicyStatus, status_problems
from bridge.errors import BridgeError, ConfigError
from bridge.logs import configure
from bridge.payload import API_KEY, decode
from bridge.render import history_text, report_text, status_json, status_table
from bridge.secrets import Secret, redact
from bridge.state import StateStore
from bridge.wiring import Connections, build_engine, connections_for, open_state, open_target

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SKIPPED, EXIT_CHANGES = 0, 1, 2, 3, 4


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure(args.log_level, args.log_format)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"configuration error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except BridgeError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    return code


def _parser() -> argparse.ArgumentParser:
    config_help = "config file (default: $LANGSMITH_BRIDGE_CONFIG, else ./bridge.toml)"
    # -c is accepted before and after the command; the two land in different attributes
    # because argparse lets a subcommand's defaults overwrite the main parser's values.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help=config_help)
    parser = argparse.ArgumentParser(
        prog="langsmith-bridge",
        description="Rotate LangSmith service keys into secret stores; "
        "revoke an old key only after its consumers acknowledge the new one.",
    )
    parser.add_argument("-c", "--config", dest="main_config", metavar="CONFIG", help=config_help)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def selection(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--policy", action="append", metavar="NAME", help="only this policy (repeatable)"
        )
        sub.add_argument(
            "--shard", type=_shard, metavar="INDEX/COUNT", help="only this shard of the policies"
        )
        sub.add_argument("--json", action="store_true", help="machine-readable output")

    run = command("run", _run, "Reconcile every due policy once.")
    run.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    selection(run)
    plan = command("plan", _plan, "Print what a run would do, changing nothing.")
    selection(plan)
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help=f"exit {EXIT_CHANGES} when changes are pending, 0 when there are none",
    )
    status = command("status", _status, "Show keys, gates and targets of each policy.")
    status.add_argument("--policy", action="append", metavar="NAME")
    status.add_argument("--json", action="store_true")
    status.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a policy is overdue, blocked, failing or has no current key",
    )
    rotate = command("rotate", _rotate, "Rotate a policy now, whatever its schedule.")
    rotate.add_argument("policy")
    rotate.add_argument("--json", action="store_true")
    rotate.add_argument(
        "--reason", help="why, for the policy's history (e.g. 'key seen in a CI log')"
    )
    history = command("history", _history, "show what was done to a policy, when, why, by whom")
    history.add_argument("policy")
    history.add_argument("--json", action="store_true")
    ack = command("ack", _ack, "Acknowledge, as a consumer, the key it now uses.")
    ack.add_argument("policy", nargs="?", help="default: a consumer config's")
    ack.add_argument("--consumer", help="default: a consumer config's")
    ack.add_argument(
        "--replica",
        help="this replica's name (default: the host name, the pod name on Kubernetes); "
        "each replica acknowledges, and re-acknowledges as a heartbeat",
    )
    source = ack.add_mutually_exclusive_group()
    source.add_argument(
        "--from-env",
        metavar="VAR",
        nargs="?",
        const=API_KEY,
        default=None,
        help=f"read the key from this variable (default {API_KEY})",
    )
    source.add_argument(
        "--from-file", type=Path, metavar="PATH", help="read the key from a dotenv or JSON payload"
    )
    validate = command(
        "validate", _validate, "Check the configuration (and, with --online, access)."
    )
    validate.add_argument(
        "--online", action="store_true", help="also check the admin key, workspaces and targets"
    )
    command("config-schema", _schema, "Print the configuration's JSON Schema.")
    from bridge.cli_servers import add_server_commands  # the options only, no server

    add_server_commands(command, commands)
    return parser


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError("use INDEX/COUNT, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError("need 0 <= INDEX < COUNT")
    return index, count


def _config(args: argparse.Namespace) -> BridgeConfig:
    return load_config(config_path(args.config or args.main_config, os.environ))


def _run(args: argparse.Namespace, *, dry_run: bool | None = None) -> int:
    config = _config(args)
    _known_policies(config, args.policy)
    with build_engine(config) as engine:
        policies = engine.select(args.policy, args.shard)
        report = engine.run(policies, dry_run=args.dry_run if dry_run is None else dry_run)
    _report(args, report)
    if dry_run and getattr(args, "detailed_exitcode", False) and report.ok and report.changes:
        return EXIT_CHANGES
    return _exit_code(report)


def _plan(args: argparse.Namespace) -> int:
    return _run(args, dry_run=True)


def _rotate(args: argparse.Namespace) -> int:
    config = _config(args)
    _known_policies(config, [args.policy])
    with build_engine(config) as engine:
        report = engine.run(
            engine.select([args.policy]), force=frozenset([args.policy]), reason=args.reason
        )
    _report(args, report)
    return _exit_code(report)


def _report(args: argparse.Namespace, report: RunReport) -> None:
    if args.json:
        _print_json(
            {
                "dry_run": report.dry_run,
                "listing_error": report.listing_error,
                "policies": [o.to_json() for o in report.outcomes],
            }
        )
    else:
        if report.listing_error:
            _print(f"LangSmith key listing failed: {report.listing_error}")
        _print(report_text(report))


def _exit_code(report: RunReport) -> int:
    if not report.ok:
        return EXIT_FAILED
    return EXIT_SKIPPED if report.skipped else EXIT_OK


def _known_policies(config: BridgeConfig, names: Sequence[str] | None) -> None:
    """Refuse (exit 2) policy names the configuration does not have."""
    unknown = sorted(set(names or ()) - {policy.name for policy in config.policy})
    if unknown:
        raise ConfigError(f"no such policy: {', '.join(unknown)}")


def _status(args: argparse.Namespace) -> int:
    config = _config(args)
    _known_policies(config, args.policy)
    now = utcnow()
    with (
        connections_for(config) as connections,
        closing(open_state(config.state, connections)) as store,
    ):
        entries = [
            _policy_status(config, policy, store, connections, now)
            for policy in config.policy
            if not args.policy or policy.name in args.policy
        ]
    if args.json:
        generated = now.isoformat().replace("+00:00", "Z")
        _print_json({"generated_at": generated, "policies": [status_json(e) for e in entries]})
    else:
        _print(status_table(entries, now))
    if args.check:
        problems = [line for entry in entries for line in status_problems(entry)]
        for line in problems:
            print(f"problem: {redact(line)}", file=sys.stderr)
        return EXIT_FAILED if problems else EXIT_OK
    return EXIT_OK


def _policy_status(
    config: BridgeConfig,
    policy: Policy,
    store: StateStore,
    connections: Connections,
    now: datetime,
) -> PolicyStatus:
    record = store.load(policy.name)
    providers = {t.target_id: open_target(t, policy.name, connections) for t in policy.target}
    acks = store.acks(policy.name, policy.consumers)
    instance = config.langsmith.instance or "-"  # orphans need a listing; status has none
    obs = observe_policy(
        config, policy, record, providers, acks, None, now=now, instance=instance, prove_acks=True
    )
    return policy_status(policy, record, obs)


def _history(args: argparse.Namespace) -> int:
    config = _config(args)
    _known_policies(config, [args.policy])
    with (
        connections_for(config) as connections,
        closing(open_state(config.state, connections)) as store,
    ):
        record = store.load(args.policy)
    if args.json:
        fields = {"policy", "last_run_at", "last_success_at", "last_error", "history"}
        _print_json(record.model_dump(mode="json", include=fields))
    else:
        _print(history_text(record))
    return EXIT_OK


def _ack(args: argparse.Namespace) -> int:
    """With the bridge's config (the state is written directly) or a consumer's own (its
    ``[ack]`` channel: the state, or ``serve``'s HTTP ack)."""
    loaded = load_any_config(config_path(args.config or args.main_config, os.environ))
    policy, consumer, _target = resolve(loaded, args.policy, args.consumer)
    key = Secret(
        _key_from_file(args.from_file)
        if args.from_file
        else _key_from_env(args.from_env or API_KEY)
    )
    with connections_for(loaded) as connections:
        acked = send_ack(loaded, connections, policy, consumer, key, args.replica)
    _print(
        f"{policy}: {consumer} acknowledged {acked.short_key} ({key.fingerprint}, {acked.phase})"
    )
    return EXIT_OK


def _key_from_env(var: str) -> str:
    value = os.environ.get(var, "").strip()
    if not value:
        raise ConfigError(f"--from-env: variable {var} is not set")
    return value


def _key_from_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--from-file: cannot read {path}: {exc.strerror}") from None
    try:
        env = decode(text, "json" if text.lstrip().startswith("{") else "dotenv")
    except ValueError as exc:
        raise ConfigError(f"--from-file: {path}: {exc}") from None
    value = env.get(API_KEY, "").strip()
    if not value:
        raise ConfigError(f"--from-file: {path} has no {API_KEY}")
    return value


def _validate(args: argparse.Namespace) -> int:
    config = _config(args)
    print(f"configuration ok: {len(config.policy)} policy(ies)")
    if not args.online:
        return EXIT_OK
    from bridge.validate import check_online

    with build_engine(config) as engine:
        problems = check_online(config, engine)
    for line in problems:
        _print(f"  problem: {line}")
    if problems:
        return EXIT_FAILED
    print("online checks ok: admin key, workspaces and targets")
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    print(config_schema())
    return EXIT_OK


def _print_json(data: Any) -> None:
    _print(json.dumps(data, indent=2, default=str))


def _print(text: str) -> None:
    """Everything the CLI prints passes the same scrubber as the logs: a last safety net."""
    print(redact(text))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
