"""``python -m bridge.emulator``: the emulator CLI without the project's entry point."""

from __future__ import annotations

import argparse
import sys

from bridge.emulator.cli import run
from bridge.emulator.options import add_arguments


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and serve; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bridge.emulator", description="Serve a local LangSmith API emulator."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
