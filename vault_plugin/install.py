"""``langsmith-bridge vault-plugin install --dir DIR``: the plugin's entry file for OpenBao's
plugin directory, and the commands that register and mount it.

The entry is a three-line script run by this very interpreter in isolated mode (``-I``: no
``PYTHONPATH``, no user site, no current directory on the path), since the host passes its
whole environment on to the plugin. ``bao plugin register -sha256`` pins that file only, not
the interpreter or the packages it imports; how to pin the rest is in the README.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from bridge import __version__

ENTRY = """\
#!{python} -I
# langsmith-bridge {version}: the OpenBao/Vault secrets-engine plugin (do not edit: its
# sha256 is what the server was registered with).
from vault_plugin.serve import main
from vault_plugin.router import LangSmithRouter

raise SystemExit(main(make_router=LangSmithRouter))
"""


@dataclass(frozen=True)
class Installed:
    path: Path
    sha256: str
    name: str
    version: str

    def commands(self, mount: str = "langsmith") -> list[str]:
        return [
            f"bao plugin register -sha256={self.sha256} -version={self.version} secret {self.name}",
            f"bao secrets enable -path={mount} {self.name}",
            f"bao write {mount}/config endpoint=https://api.smith.langchain.com admin_key=-",
        ]


def install(directory: Path, name: str = "langsmith", python: str | None = None) -> Installed:
    """Write the entry file ``DIR/NAME`` (mode 0755, replaced atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    text = ENTRY.format(python=python or sys.executable, version=__version__)
    partial = path.with_name(f".{name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.chmod(0o755)  # a program the server runs: it holds no secret
    partial.replace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Installed(path, digest, name, f"v{__version__}")


__all__ = ["ENTRY", "Installed", "install"]
