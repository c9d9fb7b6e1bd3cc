#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up .venv, lint, type-check, run every test.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k planner`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh test
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict bridge providers vault_plugin"
.venv/bin/mypy
echo "== import-linter: the layer contracts"
.venv/bin/lint-imports --no-cache
echo "== pytest"
exec .venv/bin/pytest "$@"
