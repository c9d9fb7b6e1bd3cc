"""The CLI's long-running commands: ``serve``, ``vault-plugin``, ``emulator``,
``gcp-emulator``, ``gcp-push``.

Registering them imports no server: each handler loads its own on use, so ``status`` or
``run`` never pays for starlette, grpc or functions-framework.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from bridge.config import config_path

Command = Callable[[str, Any, str], argparse.ArgumentParser]


def add_server_commands(command: Command, commands: Any) -> None:
    """Add the server commands; ``command`` makes a subcommand with the common options."""
    serve = command(
        "serve",
        _serve,
        "Serve the status page, /metrics, the HTTP ack and probes; with --every, also run "
        "the reconcile loop (a Kubernetes Deployment instead of a CronJob).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default: loopback only")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--every", metavar="DURATION", help="reconcile every DURATION (at most run.every)"
    )
    serve.add_argument(
        "--token-file",
        metavar="PATH",
        help="bearer token for the read-only endpoints; required beyond loopback",
    )
    plugin = commands.add_parser(
        "vault-plugin",
        help="Run as the OpenBao/Vault secrets-engine plugin, or `install --dir DIR` it.",
        add_help=False,
    )
    plugin.add_argument("plugin_args", nargs=argparse.REMAINDER)
    plugin.set_defaults(handler=_vault_plugin)
    emulator = command(
        "emulator", _emulator, "Serve a local LangSmith-compatible API for demos and tests."
    )
    from bridge.emulator.options import add_arguments  # the options only, not the server

    add_arguments(emulator)
    gcp_emulator = commands.add_parser(
        "gcp-emulator",
        help="Serve a local Secret Manager (insecure gRPC, loopback) for demos and checks.",
        description="A local stand-in for Google Secret Manager (Google ships no emulator): "
        "point a target at it with endpoint = '127.0.0.1:PORT' and insecure = true.",
    )
    gcp_emulator.add_argument("--host", default="127.0.0.1", help="a loopback address")
    gcp_emulator.add_argument("--port", type=int, default=8085)
    gcp_emulator.set_defaults(handler=_gcp_emulator)
    gcp_push = command(
        "gcp-push",
        _gcp_push,
        "Serve the SECRET_ROTATE push endpoint (Cloud Run, Cloud Functions) under "
        "functions-framework: each pushed event rotates its secret's policy once.",
    )
    gcp_push.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    gcp_push.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))


def _config_path(args: argparse.Namespace) -> Any:
    return config_path(args.config or args.main_config, os.environ)


def _serve(args: argparse.Namespace) -> int:
    from bridge.serve import serve

    return serve(_config_path(args), args.host, args.port, args.every, args.token_file)


def _vault_plugin(args: argparse.Namespace) -> int:
    """Loaded by name: the core's import graph never reaches grpc (an import contract)."""
    import importlib

    plugin = importlib.import_module("vault_plugin.cli")
    code: int = plugin.main(args.plugin_args)
    return code


def _emulator(args: argparse.Namespace) -> int:
    from bridge.emulator.cli import run

    return run(args)


def _gcp_emulator(args: argparse.Namespace) -> int:
    from bridge.wiring import serve_gcp_emulator

    return serve_gcp_emulator(args.host, args.port)


def _gcp_push(args: argparse.Namespace) -> int:
    from bridge.wiring import serve_gcp_push

    return serve_gcp_push(_config_path(args), args)


__all__ = ["add_server_commands"]
