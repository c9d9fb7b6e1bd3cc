"""``bao path-help`` answers, one per path, and the engine's own."""

from __future__ import annotations

ROOT_HELP = """\
The LangSmith secrets engine mints LangSmith service keys.

Configure it once with an organization admin key:

    bao write langsmith/config endpoint=https://api.smith.langchain.com admin_key=lsv2_sk_...

then define roles and read keys under leases Vault renews and revokes:

    bao write langsmith/roles/ci workspaces=<workspace uuid> ttl=1m max_ttl=10m
    bao read langsmith/creds/ci

Paths: config, rotate-root, tidy, roles/, roles/<name>, creds/<name>, static-roles/<name>,
static-roles/<name>/ack, static-creds/<name>, rotate-role/<name>. Every key expires in
LangSmith shortly after its lease's max_ttl, even if every revocation failed.
"""

HELP = {
    "config": """\
Where LangSmith is, and the admin key the engine mints with.

Fields: endpoint (the API URL), admin_key (write-only; never read back), admin_key_id (its
id, so rotate-root can delete it), admin_org_role_id (the org role rotate-root gives the
successor), organization_id (X-Organization-Id), public_endpoint (LANGSMITH_ENDPOINT for
consumers, when it differs). A write keeps the fields it does not name.
""",
    "rotate-root": """\
Replace the admin key: mint a successor (an org-scoped key with admin_org_role_id), verify
it, save it, then delete the old key (when its id is known). The old key stays in charge
if anything before the save fails.
""",
    "tidy": """\
Run now what the server's periodic rollback runs: delete the keys of mints a crash cut
short and keys no lease holds (older than the config's sweep_after), then rotate and revoke
the static roles' keys as their schedules and gates say.
""",
    "roles/": """\
A role: the LangSmith keys creds/<name> mints.

Fields: workspaces (one or more workspace UUIDs, comma-separated), role_id (the workspace
role; LangSmith's default is Admin), default_workspace (LANGSMITH_WORKSPACE_ID when there
are several), ttl and max_ttl (the lease; 0 = the mount's defaults), description (the key's
description in LangSmith; {{role}}, {{display_name}} and {{unix_time}} are filled in).
""",
    "creds/": """\
Read a new LangSmith key under a renewable lease: api_key, key_id, short_key, expires_at,
LANGSMITH_ENDPOINT and, for several workspaces, LANGSMITH_WORKSPACE_ID. The optional ttl
shortens the lease; renewals never pass the role's max_ttl, and the key expires in
LangSmith shortly after it. Revoking the lease deletes the key.
""",
    "static-roles/": """\
A static role: one long-lived LangSmith key, rotated by the bridge's engine on its schedule
(rotate_every) and revoked only behind its gate. Fields as a bridge policy: workspaces,
default_workspace, role_id, rotate_every, key_ttl, consumers, ack (explicit, usage, grace),
min_overlap, max_wait, on_timeout, replica_ttl, usage_quiet.
""",
    "static-roles/ack": """\
A consumer replica acknowledges the key it now uses: consumer, replica and api_key (the key
itself, which proves it holds it). The previous key is revoked once every consumer's live
replicas have acknowledged.
""",
    "static-creds/": """\
The static role's current key and settings, and previous_api_key while the previous key
still waits for its consumers.
""",
    "rotate-role/": """\
Rotate the static role's key now; the old key stays until its gate opens.
""",
}

__all__ = ["HELP", "ROOT_HELP"]
