"""Config text for tests that write their own TOML."""

from __future__ import annotations


def with_default_workspace(policies: str, workspace: str) -> str:
    """Give each org-wide ``[[policy]]`` (no ``workspaces``) the ``default_workspace``
    LangSmith requires of its consumers, right after its ``name`` line."""
    blocks = policies.split("[[policy]]")
    for index, block in enumerate(blocks[1:], start=1):
        if "workspaces =" not in block and "default_workspace" not in block:
            head, _, rest = block.partition("\n")
            name, _, rest = rest.partition("\n")
            blocks[index] = f'{head}\n{name}\ndefault_workspace = "{workspace}"\n{rest}'
    return "[[policy]]".join(blocks)
