"""``langsmith-bridge vault-plugin``: serve as OpenBao's plugin (what the host runs), or
``install --dir DIR`` the entry file and print how to register it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="langsmith-bridge vault-plugin")
    commands = parser.add_subparsers(dest="command")
    install = commands.add_parser("install", help="write the plugin's entry file")
    install.add_argument("--dir", type=Path, required=True, help="the server's plugin_directory")
    install.add_argument("--name", default="langsmith", help="the plugin's name")
    install.add_argument("--mount", default="langsmith", help="for the printed commands")
    args = parser.parse_args(list(argv))
    if args.command == "install":
        from vault_plugin.install import install as write

        installed = write(args.dir, args.name)
        print(f"wrote {installed.path}")
        print(f"sha256 {installed.sha256}")
        print("register and mount it (admin_key=- reads the key from standard input):")
        for line in installed.commands(args.mount):
            print(f"  {line}")
        print("the sha256 pins this file, not the interpreter or its packages: see the README")
        return 0
    from vault_plugin.router import LangSmithRouter
    from vault_plugin.serve import main as serve

    return serve(make_router=LangSmithRouter)


__all__ = ["main"]
