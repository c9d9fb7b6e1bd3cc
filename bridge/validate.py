"""``validate --online``: prove the admin key, the workspace ids and the targets work,
without changing anything."""

from __future__ import annotations

from bridge.config import BridgeConfig
from bridge.engine import Engine
from bridge.errors import BridgeError
from bridge.langsmith import LangSmithClient


def check_online(config: BridgeConfig, engine: Engine) -> list[str]:
    """Every problem found, as one line each; empty when all is well."""
    problems: list[str] = []
    client = engine.keys
    try:
        client.list_service_keys()
    except BridgeError as exc:
        problems.append(f"admin key cannot list service keys: {exc}")
    if isinstance(client, LangSmithClient):
        try:
            known = {w.id for w in client.list_workspaces() if not w.is_deleted}
        except BridgeError as exc:
            problems.append(f"admin key cannot list workspaces: {exc}")
        else:
            for policy in config.policy:
                missing = sorted(set(policy.workspaces or ()) - known)
                if missing:
                    problems.append(
                        f"policy {policy.name}: unknown workspace(s) {', '.join(missing)}"
                    )
    for policy in config.policy:
        try:
            for provider in engine.providers(policy).values():
                provider.validate()
        except BridgeError as exc:
            problems.append(f"policy {policy.name}: {exc}")
    return problems
