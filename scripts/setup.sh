#!/usr/bin/env bash
# Create .venv (once) and install the project with the given extras, e.g. `scripts/setup.sh test`.
# Sourced by demo.sh and test.sh; safe to run again (pip skips what is installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" 2>&1 \
  | { grep -v -e '^WARNING: Location' -e 'ignored: it is neither' || true; }
# The status page tests drive Debian's Chromium (no browser download is possible or needed).
if [ "$extras" = "test" ]; then
  scripts/install-chromium.sh
fi
