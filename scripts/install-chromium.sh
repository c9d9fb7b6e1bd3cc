#!/usr/bin/env bash
# Make Debian's headless Chromium available for the status-page browser tests
# (tests/integration/test_status_page_browser.py, benchmarks/bench_serve.py).
# Idempotent: does nothing when `chromium` is already on PATH. Installs only from apt; the
# tests drive it with Playwright's bundled driver (`executable_path`), never a downloaded browser.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-chromium.sh: 'chromium' is not on PATH and this is not root." >&2
  echo "  Install it as root:  apt-get update && apt-get install -y chromium" >&2
  echo "  (the browser tests are skipped without it)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "install-chromium.sh: chromium still missing" >&2; exit 1; }
