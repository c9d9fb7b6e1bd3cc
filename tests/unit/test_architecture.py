"""House rules that code review alone would let slip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLOUD_SDKS = ("boto3", "botocore", "hvac", "google", "grpc")
# Modules with code: an empty namespace package (``google``, ``google.cloud``, which the
# .pth file of a namespace-sharing distribution such as functions-framework makes at
# interpreter start) loads nothing and costs nothing.
LOADED = "[m for m, mod in list(sys.modules.items()) if getattr(mod, '__file__', None)]"


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_the_layer_contracts_hold() -> None:
    """The import-linter contracts in pyproject.toml: the layers, providers only from the
    wiring, no cloud SDK in the core, each store only its own SDK, an independent emulator."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_importing_the_cli_and_engine_loads_no_cloud_sdk() -> None:
    code = (
        "import sys, bridge.cli, bridge.engine, bridge.consumer, providers, providers.file;"
        f"print(sorted(m for m in {LOADED} if m.split('.')[0] in {CLOUD_SDKS!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "path", python_files("bridge", "providers"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 400


def test_no_key_shaped_literal_outside_tests() -> None:
    from bridge.secrets import KEY_PATTERN

    hits = [p for p in python_files("bridge", "providers") if KEY_PATTERN.search(p.read_text())]
    assert hits == []


def test_the_lambda_entry_imports_no_sdk_until_it_needs_one() -> None:
    code = (
        "import sys, bridge.aws_lambda;"
        f"print(sorted({{m.split('.')[0] for m in {LOADED}}} & "
        "{'boto3', 'botocore', 'hvac', 'google', 'grpc', 'langsmith', 'bridge.emulator'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    emulator = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, bridge.aws_lambda; print('bridge.emulator' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert emulator.stdout.strip() == "False"


def test_the_cli_loads_the_emulator_only_for_its_verb() -> None:
    code = (
        "import sys; from bridge.cli import _parser; _parser().parse_args(['status']);"
        "print(sorted(m for m in sys.modules if m.startswith('bridge.emulator.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['bridge.emulator.options']"
