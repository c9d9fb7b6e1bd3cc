"""The release artefacts: the sdist and the wheel build from the repository's files alone,
and the wheel, installed without extras into a fresh virtual environment, runs.

The sources are copied first (``git ls-files``: tracked files, plus untracked ones that are
not ignored, i.e. what the next commit would hold), so neither ``.venv`` nor caches nor a
build folder can reach the artefacts. The build runs in ``build``'s isolated environment,
which fetches the ``[build-system]`` requirements from the package index.
"""

from __future__ import annotations

import email
import email.message
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import bridge

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
VERSION = bridge.__version__
MINIMAL_CONFIG = """\
[langsmith]
endpoint = "http://127.0.0.1:1984"
admin_key_env = "LANGSMITH_ADMIN_KEY"

[state]
backend = "file"
path = "state/bridge-state.db"

[run]
every = "1h"

[[policy]]
name = "tracing-prod"
workspaces = ["00000000-0000-4000-8000-000000000001"]
rotate_every = "30d"
key_ttl = "60d"
consumers = ["api"]

  [[policy.target]]
  provider = "file"
  path = "out/tracing-prod.env"
"""


@dataclass(frozen=True)
class Release:
    wheel: Path
    sdist: Path
    venv: Path
    """A fresh virtual environment with only the wheel (and its base dependencies)."""
    scratch: Path


def clean_env() -> dict[str, str]:
    """The environment for the fresh venv's commands: nothing points back at this repo."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_ROOT_USER_ACTION"] = "ignore"
    return env


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=clean_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, (
        f"{args}: exit {done.returncode}\n{done.stdout[-3000:]}\n" + (done.stderr[-3000:])
    )
    return done


def copy_sources(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the sources")
    scratch = tmp_path_factory.mktemp("release")
    src, dist, venv = scratch / "src", scratch / "dist", scratch / "venv"
    copy_sources(src)

    started = time.monotonic()
    run(sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", dist, src, cwd=scratch)
    built = time.monotonic()
    run(sys.executable, "-m", "venv", venv, cwd=scratch)
    (wheel,) = dist.glob("*.whl")
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=scratch)
    installed = time.monotonic()
    print(
        f"\nrelease: build {built - started:.1f} s (isolated), "
        f"fresh venv + install {installed - built:.1f} s"
    )
    (sdist,) = dist.glob("*.tar.gz")
    return Release(wheel=wheel, sdist=sdist, venv=venv, scratch=scratch)


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"langsmith_bridge-{VERSION}.dist-info/METADATA").decode()
    return email.message_from_string(text)


def test_the_version_lives_only_in_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert VERSION.count(".") == 2


def test_the_artefacts_carry_the_version(release: Release) -> None:
    assert release.wheel.name == f"langsmith_bridge-{VERSION}-py3-none-any.whl"
    assert release.sdist.name == f"langsmith_bridge-{VERSION}.tar.gz"


def test_the_sdist_holds_the_license_readme_and_changelog(release: Release) -> None:
    with tarfile.open(release.sdist) as archive:
        names = set(archive.getnames())
    top = f"langsmith_bridge-{VERSION}"
    for name in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"):
        assert f"{top}/{name}" in names, name


def test_the_wheel_metadata_names_version_and_license(release: Release) -> None:
    metadata = wheel_metadata(release.wheel)
    assert metadata["Name"] == "langsmith-bridge"
    assert metadata["Version"] == VERSION
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    with zipfile.ZipFile(release.wheel) as archive:
        names = archive.namelist()
        license_text = archive.read(f"langsmith_bridge-{VERSION}.dist-info/licenses/LICENSE")
    assert b"Apache License" in license_text
    assert b"Version 2.0, January 2004" in license_text
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/"))]
    assert "bridge/py.typed" in names
    assert "providers/py.typed" in names


def test_the_installed_cli_prints_its_version(release: Release) -> None:
    done = run(release.venv / "bin" / "langsmith-bridge", "--version", cwd=release.scratch)
    assert done.stdout.strip() == f"langsmith-bridge {VERSION}"


def test_the_installed_package_is_the_wheel_and_has_no_extras(release: Release) -> None:
    code = (
        "import bridge, importlib.util, importlib.metadata as m;"
        "print(bridge.__file__);"
        "print(m.version('langsmith-bridge'));"
        "print([s for s in ('boto3', 'hvac', 'google', 'grpc') if importlib.util.find_spec(s)])"
    )
    done = run(release.venv / "bin" / "python", "-c", code, cwd=release.scratch)
    location, version, extras = done.stdout.splitlines()
    assert Path(location).is_relative_to(release.venv)
    assert version == VERSION
    assert extras == "[]"


def test_the_installed_cli_prints_the_config_schema(release: Release) -> None:
    done = run(release.venv / "bin" / "langsmith-bridge", "config-schema", cwd=release.scratch)
    schema = json.loads(done.stdout)
    assert isinstance(schema, dict)
    assert "properties" in schema


def test_the_installed_cli_validates_a_file_target_config(release: Release) -> None:
    config = release.scratch / "bridge.toml"
    config.write_text(MINIMAL_CONFIG)
    done = run(
        release.venv / "bin" / "langsmith-bridge", "-c", config, "validate", cwd=release.scratch
    )
    assert "configuration ok" in done.stdout
