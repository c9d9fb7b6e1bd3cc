#!/usr/bin/env bash
# Build the AWS Lambda deployment package for infra/aws/template.yaml (python3.11, arm64):
#   scripts/lambda-package.sh [--out DIR]        (default DIR: dist/ in the repository)
# writes DIR/langsmith-bridge-lambda-<version>-arm64.zip and prints its path and size.
#
# The project is built as a wheel from a copy of its sources (the work tree gets no build/
# or egg-info), then installed with its `aws` extra for manylinux2014_aarch64 / CPython 3.11,
# binary wheels only, so every compiled extension is an aarch64 one whatever this machine is.
# boto3 is pinned in the zip rather than taken from the runtime's (older) copy.
# The zip is deterministic: entries sorted, fixed timestamps and permissions.
# Environment: PYTHON (default python3) runs the build; it needs pip and Python >= 3.11.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
out="$repo/dist"

usage() { echo "usage: $0 [--out DIR]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    -h|--help) sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# pip, without the notices this machine's pip configuration adds to every call.
quiet_pip() {
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip "$@" --quiet --disable-pip-version-check 2>&1 \
    | { grep -v -e '^WARNING: Location' -e 'ignored: it is neither' >&2 || true; }
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. The sources a wheel needs, without caches, into a scratch copy.
mkdir -p "$work/src"
(cd "$repo" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' \
  pyproject.toml README.md LICENSE MANIFEST.in CHANGELOG.md bridge providers) \
  | tar -xf - -C "$work/src"

# 2. The project's wheel (pure Python), built in an isolated environment.
quiet_pip wheel --no-deps --wheel-dir "$work/wheel" "$work/src"
wheel="$(find "$work/wheel" -name 'langsmith_bridge-*.whl' -print -quit)"
[ -n "$wheel" ] || { echo "lambda-package: no wheel was built" >&2; exit 1; }
version="$(basename "$wheel" | cut -d- -f2)"

# 3. It and its dependencies for the Lambda's platform, binary wheels only.
quiet_pip install --no-compile \
  --platform manylinux2014_aarch64 --implementation cp --python-version 3.11 --abi cp311 \
  --only-binary=:all: --target "$work/lambda" "${wheel}[aws]"

# 4. Drop what the function never loads: caches, test suites, console scripts, and the
#    installer's bookkeeping that names this build's paths and scripts (direct_url.json,
#    RECORD); each *.dist-info keeps its METADATA, so importlib.metadata still works.
find "$work/lambda" -depth -type d \( -name __pycache__ -o -name tests -o -name test \) \
  -exec rm -rf {} +
find "$work/lambda" -type f \( -name '*.pyc' -o -name direct_url.json -o -path '*.dist-info/RECORD' \) -delete
rm -rf "$work/lambda/bin"
[ -f "$work/lambda/bridge/aws_lambda.py" ] || {
  echo "lambda-package: bridge/aws_lambda.py is missing from the package" >&2; exit 1; }

# 5. A deterministic zip.
zip="$out/langsmith-bridge-lambda-$version-arm64.zip"
"$python" - "$work/lambda" "$zip" <<'PY'
import os
import sys
import zipfile
from pathlib import Path

root, target = Path(sys.argv[1]), Path(sys.argv[2])
files = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
partial = target.with_name(target.name + ".partial")
with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
    for path in files:
        info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
        info.external_attr = (0o100000 | mode) << 16
        archive.writestr(info, path.read_bytes(), compresslevel=9)
partial.replace(target)
unzipped = sum(p.stat().st_size for p in files)
print(f"{target}")
print(f"zip {target.stat().st_size / 2**20:.2f} MiB, unzipped {unzipped / 2**20:.2f} MiB,"
      f" {len(files)} files")
PY
# The unversioned name infra/aws/template.yaml's CodeUri points at.
cp "$zip" "$out/langsmith-bridge-lambda-arm64.zip"
