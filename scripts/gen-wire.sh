#!/usr/bin/env bash
# Regenerates the Python gRPC modules for the OpenBao plugin wire from vault_plugin/wire/*.proto.
#
#   pip install 'grpcio-tools==1.85.1'   # the version the committed modules were made with
#   scripts/gen-wire.sh
#
# protoc writes sibling imports as top-level modules (`import backend_pb2`); they are rewritten
# to package-relative ones (`from . import backend_pb2`) so `import vault_plugin.wire.backend_pb2`
# works without touching sys.path.
set -euo pipefail

cd "$(dirname "$0")/.."
WIRE=vault_plugin/wire
PY=${PYTHON:-python}

"$PY" -c 'import grpc_tools.protoc' 2>/dev/null || {
    echo "gen-wire: grpcio-tools is not installed (pip install 'grpcio-tools==1.85.1')" >&2
    exit 1
}

rm -f "$WIRE"/*_pb2.py "$WIRE"/*_pb2_grpc.py "$WIRE"/*_pb2.pyi

protos=()
for f in "$WIRE"/*.proto; do protos+=("$(basename "$f")"); done

"$PY" -m grpc_tools.protoc \
    -I "$WIRE" \
    --python_out="$WIRE" \
    --grpc_python_out="$WIRE" \
    --pyi_out="$WIRE" \
    "${protos[@]}"

# Rewrite `import X_pb2 as Y` to `from . import X_pb2 as Y` for our own modules only
# (google.protobuf imports are left alone).
ours=()
for p in "${protos[@]}"; do ours+=("${p%.proto}_pb2"); done
pattern=$(IFS='|'; echo "${ours[*]}")
for gen in "$WIRE"/*_pb2.py "$WIRE"/*_pb2_grpc.py "$WIRE"/*_pb2.pyi; do
    sed -E -i "s/^import (${pattern}) as /from . import \\1 as /" "$gen"
done

[ -f vault_plugin/__init__.py ] || printf '"""OpenBao secrets-engine plugin for langsmith-bridge."""\n' > vault_plugin/__init__.py
[ -f "$WIRE"/__init__.py ] || printf '"""Generated gRPC wire modules (scripts/gen-wire.sh); do not edit by hand."""\n' > "$WIRE"/__init__.py

echo "gen-wire: generated $(ls "$WIRE"/*_pb2.py | wc -l) modules from ${#protos[@]} protos in $WIRE"
