"""``scripts/lambda-package.sh``: the zip infra/aws/template.yaml deploys (python3.11 on
arm64) holds the handler, aarch64 extensions only, no test suites, fits Lambda's limits,
and comes out byte for byte the same when built twice."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import bridge

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "lambda-package.sh"
ZIP_NAME = f"langsmith-bridge-lambda-{bridge.__version__}-arm64.zip"
MIB = 2**20
ZIP_LIMIT = 50 * MIB
"""Lambda's limit on a zip uploaded directly."""
UNZIPPED_LIMIT = 250 * MIB
"""Lambda's limit on the unzipped function, layers included."""
EM_AARCH64 = 183
EXTENSION = re.compile(r"\.so(\.\d+)*$")


@dataclass(frozen=True)
class Package:
    path: Path
    stdout: str


def build(out: Path) -> Package:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PYTHON"] = sys.executable
    done = subprocess.run(
        ["bash", str(SCRIPT), "--out", str(out)],
        cwd=out.parent,  # any folder: the script finds the repository itself
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Package(path=out / ZIP_NAME, stdout=done.stdout)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    return build(tmp_path_factory.mktemp("lambda") / "out")


def elf_header(data: bytes) -> tuple[int, int, int]:
    """(EI_CLASS, EI_DATA, e_machine) of an ELF file; e_machine read in its own byte order."""
    assert data[:4] == b"\x7fELF", "not an ELF file"
    ei_class, ei_data = data[4], data[5]
    (machine,) = struct.unpack_from("<H" if ei_data == 1 else ">H", data, 18)
    return ei_class, ei_data, machine


def test_the_script_prints_the_zip_path_and_size(package: Package) -> None:
    lines = package.stdout.splitlines()
    assert lines[0] == str(package.path)
    assert re.match(r"zip \d+\.\d\d MiB, unzipped \d+\.\d\d MiB, \d+ files$", lines[1])
    assert package.path.is_file()


def test_every_compiled_extension_is_elf64_little_endian_aarch64(package: Package) -> None:
    with zipfile.ZipFile(package.path) as archive:
        extensions = [n for n in archive.namelist() if EXTENSION.search(n)]
        headers = {n: elf_header(archive.read(n)[:64]) for n in extensions}
    assert extensions, "no compiled extension at all: pydantic-core ships one"
    assert any(n.startswith("pydantic_core/") for n in extensions)
    wrong = {n: h for n, h in headers.items() if h != (2, 1, EM_AARCH64)}
    assert not wrong, f"(EI_CLASS, EI_DATA, e_machine) not (2, 1, {EM_AARCH64}): {wrong}"


def test_the_zip_holds_the_handler_and_its_dependencies(package: Package) -> None:
    with zipfile.ZipFile(package.path) as archive:
        names = set(archive.namelist())
        metadata = archive.read(
            f"langsmith_bridge-{bridge.__version__}.dist-info/METADATA"
        ).decode()
    assert "bridge/aws_lambda.py" in names
    assert "providers/aws/__init__.py" in names
    for module in ("httpx/__init__.py", "pydantic/__init__.py", "boto3/__init__.py"):
        assert module in names, module
    assert f"\nVersion: {bridge.__version__}\n" in metadata


def test_the_zip_holds_no_tests_caches_or_install_records(package: Package) -> None:
    with zipfile.ZipFile(package.path) as archive:
        names = archive.namelist()
    parts = [set(Path(n).parts) for n in names]
    assert not [n for n, p in zip(names, parts, strict=True) if p & {"tests", "test"}]
    assert not [n for n, p in zip(names, parts, strict=True) if "__pycache__" in p]
    assert not [n for n in names if n.endswith((".pyc", "/RECORD", "/direct_url.json"))]
    assert not [n for n in names if n.startswith("bin/")]
    assert names == sorted(names)


def test_the_zip_fits_lambdas_limits(package: Package, record_property: object) -> None:
    with zipfile.ZipFile(package.path) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
        entries = len(archive.infolist())
    zipped = package.path.stat().st_size
    print(
        f"\n{package.path.name}: zip {zipped / MIB:.2f} MiB, "
        f"unzipped {unzipped / MIB:.2f} MiB, {entries} files"
    )
    assert callable(record_property)
    record_property("lambda_zip_mib", round(zipped / MIB, 2))
    record_property("lambda_unzipped_mib", round(unzipped / MIB, 2))
    assert zipped < ZIP_LIMIT
    assert unzipped < UNZIPPED_LIMIT


def test_two_builds_make_the_same_zip(package: Package, tmp_path: Path) -> None:
    again = build(tmp_path / "out")
    digest = hashlib.sha256(package.path.read_bytes()).hexdigest()
    if hashlib.sha256(again.path.read_bytes()).hexdigest() != digest:
        with zipfile.ZipFile(package.path) as one, zipfile.ZipFile(again.path) as two:
            first = {i.filename: (i.CRC, i.external_attr) for i in one.infolist()}
            second = {i.filename: (i.CRC, i.external_attr) for i in two.infolist()}
        differ = sorted(n for n in first.keys() | second.keys() if first.get(n) != second.get(n))
        pytest.fail(f"the second build differs in {differ[:20]} ({len(differ)} entries)")
