"""``validate --online``: prove the admin key, the workspace ids, the roles, the expiry
caps and the targets work, without changing anything.

Each check reads what LangSmith would otherwise refuse only at the next rotation, when a
mint fails half-way through a run: a workspace that is gone, a ``role_id`` that is not a
role of the organisation (or of the wrong kind), a ``key_ttl`` longer than the
organisation lets a service key live.
"""

from __future__ import annotations

from datetime import timedelta

from bridge.config import BridgeConfig, Policy
from bridge.engine import Engine
from bridge.errors import BridgeError
from bridge.langsmith import LangSmithClient, OrgInfo, Role


def check_online(config: BridgeConfig, engine: Engine) -> list[str]:
    """Every problem found, as one line each; empty when all is well."""
    problems: list[str] = []
    client = engine.keys
    try:
        client.list_service_keys()
    except BridgeError as exc:
        problems.append(f"admin key cannot list service keys: {exc}")
    if isinstance(client, LangSmithClient):
        problems += _workspace_problems(config, client)
        problems += _expiry_problems(config, client)
        problems += _role_problems(config, client)
    for policy in config.policy:
        try:
            for provider in engine.providers(policy).values():
                provider.validate()
        except BridgeError as exc:
            problems.append(f"policy {policy.name}: {exc}")
    return problems


def _workspace_problems(config: BridgeConfig, client: LangSmithClient) -> list[str]:
    try:
        known = {w.id for w in client.list_workspaces() if not w.is_deleted}
    except BridgeError as exc:
        return [f"admin key cannot list workspaces: {exc}"]
    problems = []
    for policy in config.policy:
        missing = sorted(set(policy.workspaces or ()) - known)
        if missing:
            problems.append(f"policy {policy.name}: unknown workspace(s) {', '.join(missing)}")
    return problems


def _expiry_problems(config: BridgeConfig, client: LangSmithClient) -> list[str]:
    """A ``key_ttl`` beyond the org's ``max_service_key_expiry_days``: every mint would ask
    for an ``expires_at`` the organisation does not allow."""
    try:
        info: OrgInfo = client.org_info()
    except BridgeError as exc:
        return [f"admin key cannot read the organization's settings: {exc}"]
    cap = info.max_service_key_expiry_days
    if cap is None:
        return []
    return [
        f"policy {policy.name}: key_ttl of {_days(policy.key_ttl)} exceeds the organization's "
        f"limit for service keys (max_service_key_expiry_days = {cap})"
        for policy in config.policy
        if policy.key_ttl > timedelta(days=cap)
    ]


def _role_problems(config: BridgeConfig, client: LangSmithClient) -> list[str]:
    """Each ``role_id``/``org_role_id`` must be a role of the org, of the kind the field
    takes. ``role_id`` is the key's *workspace* role, for org-wide keys as for workspace
    keys (LangSmith defaults it to the workspace Admin role for both); ``org_role_id`` is
    an org-wide key's *organisation* role. A role's ``access_scope`` says which it is."""
    if not any(policy.role_id or policy.org_role_id for policy in config.policy):
        return []  # not every server lists roles; ask only when there is something to check
    try:
        roles = {role.id: role for role in client.list_roles()}
    except BridgeError as exc:
        return [f"admin key cannot list the organization's roles: {exc}"]
    problems = []
    for policy in config.policy:
        problems += _role_problem(policy, "role_id", policy.role_id, "workspace", roles)
        problems += _role_problem(policy, "org_role_id", policy.org_role_id, "organization", roles)
    return problems


def _role_problem(
    policy: Policy, field: str, role_id: str | None, scope: str, roles: dict[str, Role]
) -> list[str]:
    if role_id is None:
        return []
    role = roles.get(role_id)
    where = f"policy {policy.name}: {field} {role_id}"
    if role is None:
        return [f"{where} is not a role of this organization"]
    if role.access_scope is not None and role.access_scope != scope:
        name = role.display_name or role.name or "?"
        article = "an" if scope[0] in "aeiou" else "a"
        return [
            f"{where} is the {role.access_scope} role '{name}'; "
            f"{field} takes {article} {scope} role"
        ]
    return []


def _days(ttl: timedelta) -> str:
    days = ttl.total_seconds() / 86400
    return f"{days:g} day{'' if days == 1 else 's'}"
