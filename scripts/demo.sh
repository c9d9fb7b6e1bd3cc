#!/usr/bin/env bash
# The whole rotation cycle, locally: set up .venv, start the bundled LangSmith emulator,
# then mint -> publish -> rotate -> acknowledge -> revoke into a local file, with `status`
# after every stage. Everything lives in ./demo (deleted and recreated on each run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh test >/dev/null
bin=$PWD/.venv/bin
rm -rf demo && mkdir -p demo && cd demo

stage() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
masked() { sed -E 's/(lsv2_(sk|pt)_[0-9a-f]{4})[0-9a-f_]+/\1…(masked)/' "$1"; }

stage "Start the LangSmith emulator (127.0.0.1, a free port)"
"$bin/langsmith-bridge" emulator --port 0 --bootstrap-file emulator.json 2>emulator.log &
emulator_pid=$!
trap 'kill $emulator_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s emulator.json ] && break; sleep 0.05; done
[ -s emulator.json ] || { cat emulator.log; exit 1; }
cat emulator.log
read -r endpoint workspace < <("$bin/python" -c '
import json; b = json.load(open("emulator.json")); print(b["endpoint"], b["workspace_ids"][0])')
# The admin key goes from the bootstrap file into the environment, never onto the screen.
LANGSMITH_ADMIN_KEY=$("$bin/python" -c 'import json; print(json.load(open("emulator.json"))["admin_key"])')
export LANGSMITH_ADMIN_KEY
sed -e "s#http://127.0.0.1:1984#$endpoint#" -e "s#WORKSPACE_ID#$workspace#" ../examples/bridge.toml >bridge.toml
export LANGSMITH_BRIDGE_CONFIG=$PWD/bridge.toml
echo "config: demo/bridge.toml (from examples/bridge.toml), endpoint $endpoint, workspace $workspace"

stage "Check the configuration and the admin key"
show "$bin/langsmith-bridge" validate --online

stage "First run: mint, verify, publish"
show "$bin/langsmith-bridge" plan
show "$bin/langsmith-bridge" run
show "$bin/langsmith-bridge" status
echo "--- out/tracing-prod.env (mode $(stat -c %a out/tracing-prod.env)), key masked for the screen:"
masked out/tracing-prod.env

stage "A consumer: the official langsmith SDK, configured only from the published file"
(set -a; . out/tracing-prod.env; set +a; LANGSMITH_TRACING=false "$bin/python" -c '
from langsmith import Client
print("projects visible:", [p.name for p in Client().list_projects()])')

stage "Rotate now: the old key stays until both consumers acknowledge the new one"
show "$bin/langsmith-bridge" rotate tracing-prod
show "$bin/langsmith-bridge" status
show "$bin/langsmith-bridge" run

stage "Consumers acknowledge (api from the file, worker from its environment)"
show "$bin/langsmith-bridge" ack tracing-prod --consumer api --from-file out/tracing-prod.env
show "$bin/langsmith-bridge" status
(set -a; . out/tracing-prod.env; set +a; show "$bin/langsmith-bridge" ack tracing-prod --consumer worker --from-env)
show "$bin/langsmith-bridge" status

stage "Next run: the gate is open, the old key is deleted in LangSmith"
show "$bin/langsmith-bridge" run
show "$bin/langsmith-bridge" status
show "$bin/langsmith-bridge" status --json
echo
echo "Done. State: demo/state/bridge-state.db (no key material in it). Emulator stopped."
