"""The emulator's command-line options, apart from the emulator itself, so that the
``langsmith-bridge`` parser can offer them without importing the server."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=1984, help="port; 0 picks a free one")
    parser.add_argument(
        "--bootstrap-file",
        type=Path,
        metavar="PATH",
        help="write the bootstrap JSON (endpoint, admin key, ids) here, mode 0600",
    )
    parser.add_argument("--latency-ms", type=float, default=0, help="delay per request")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="fraction answered 5xx")
    parser.add_argument("--fault-status", type=int, default=503, help="status of faults")
    parser.add_argument("--throttle-rate", type=float, default=0.0, help="fraction answered 429")
    parser.add_argument("--rate-limit", type=int, default=1000, help="requests per key per window")
    parser.add_argument("--rate-window-s", type=float, default=10.0, help="rate window, seconds")
    parser.add_argument("--seed", type=int, default=None, help="seed for repeatable faults")
    parser.add_argument(
        "--auth-cache-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        dest="auth_cache_delay_s",
        help="a deleted or expired key still works, and a new key does not yet, for SECONDS",
    )
    parser.add_argument(
        "--last-used-granularity",
        type=float,
        default=0.0,
        metavar="SECONDS",
        dest="last_used_granularity_s",
        help="move a key's last_used_at at most every SECONDS",
    )
    parser.add_argument(
        "--max-service-key-expiry-days",
        type=int,
        default=None,
        metavar="N",
        help="organization cap on service-key expiry (creation beyond it answers 400)",
    )
    parser.add_argument(
        "--max-pat-expiry-days",
        type=int,
        default=None,
        metavar="N",
        help="organization cap on personal-access-token expiry",
    )
