"""``vault-plugin install``: the entry file the server runs, and the sha256 it is
registered with."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).with_name("langsmith-bridge")


def test_install_writes_an_isolated_entry_and_prints_its_sha256(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(CLI), "vault-plugin", "install", "--dir", str(tmp_path / "plugins")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    entry = tmp_path / "plugins" / "langsmith"
    digest = hashlib.sha256(entry.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in done.stdout
    assert f"bao plugin register -sha256={digest} -version=v" in done.stdout
    assert "bao secrets enable -path=langsmith langsmith" in done.stdout
    assert entry.read_text().startswith(f"#!{sys.executable} -I\n")
    assert entry.stat().st_mode & 0o777 == 0o755
