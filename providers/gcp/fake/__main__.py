"""``python -m providers.gcp.fake --port PORT``: a standalone local Secret Manager."""

from __future__ import annotations

import argparse
import sys

from providers.gcp.fake.server import LOOPBACK, FakeSecretManager


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m providers.gcp.fake", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", choices=sorted(LOOPBACK))
    parser.add_argument("--port", type=int, default=8085)
    args = parser.parse_args(argv)
    fake = FakeSecretManager(host=args.host, port=args.port).start()
    print(f"fake Secret Manager listening on {fake.target} (insecure gRPC)", flush=True)
    try:
        fake.wait()
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
