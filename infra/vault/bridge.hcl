# langsmith-bridge: the bridge's own Vault / OpenBao policy, and nothing more.
#
# Written for the example layout (change the paths if yours differs):
#
#   secret/                              a KV version 2 mount
#     apps/<app>/langsmith               the targets: [[policy.target]] mount = "secret",
#                                        path = "apps/<app>/langsmith"
#     langsmith-bridge/state/            the state: [state] backend = "vault",
#                                        mount = "secret", path = "langsmith-bridge/state"
#
# setup.sh writes it with the mount and the state folder substituted (KV_MOUNT, STATE_PATH):
# it replaces the leading "secret/" of every path and "langsmith-bridge/state".
#
# Each grant is a call the code makes (providers/vault/target.py, kv.py, state.py); none is
# broader. The bridge cannot list, delete or undelete anything, cannot touch any other
# secret of an app, cannot write an acknowledgement, cannot rewrite its deployment id, and
# cannot reach sys/ beyond asking its own capabilities. Tokens of this policy need no
# "default" policy (the token grants at the end are the part of it the bridge uses), so an
# AppRole role can set token_no_default_policy = true.
#
# tests/integration/test_vault_policies.py loads this file into a real OpenBao server, runs
# a full rotation cycle with a token holding only it, checks every call against it (and
# every grant against a call), and shows that everything outside it answers 403.

# -- the targets: KV v2 secrets at apps/<app>/langsmith -----------------------------------

# Read the current version (read-back, drift checks) and older ones (?version=N); write
# the next version with check-and-set. No "create": a new secret gets its metadata first
# (below), so every data write is an "update" of a secret the bridge has already claimed.
path "secret/data/apps/+/langsmith" {
  capabilities = ["read", "update"]
}

# Observe (a no-op run reads only this); write custom_metadata (ownership) and
# max_versions: "create" for a new secret, "update" on an adopted one or a changed setting.
path "secret/metadata/apps/+/langsmith" {
  capabilities = ["create", "read", "update"]
}

# Retire: destroy the superseded version once its key is revoked.
path "secret/destroy/apps/+/langsmith" {
  capabilities = ["update"]
}

# -- the state: KV v2 entries under langsmith-bridge/state ---------------------------------

# Policy records, run outcomes and leases: read, then written with check-and-set.
path "secret/data/langsmith-bridge/state/policies/+" {
  capabilities = ["create", "read", "update"]
}

path "secret/data/langsmith-bridge/state/runs/+" {
  capabilities = ["create", "read", "update"]
}

path "secret/data/langsmith-bridge/state/leases/+" {
  capabilities = ["create", "read", "update"]
}

# Acknowledgements are the consumers' to write (consumer.hcl); the bridge only reads them.
path "secret/data/langsmith-bridge/state/acks/*" {
  capabilities = ["read"]
}

# The deployment id (the default instance that marks this deployment's keys): created once.
path "secret/data/langsmith-bridge/state/meta/deployment" {
  capabilities = ["create", "read"]
}

# The policies the state knows (asked on the first run, to tell a new state from an old one).
path "secret/metadata/langsmith-bridge/state/policies/" {
  capabilities = ["list"]
}

# -- its own token ------------------------------------------------------------------------

# A given token (auth method "token") is looked up once to learn its TTL, and any token is
# looked up to tell a dead token from a policy denial (both answer 403).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# Renewal while the bridge runs (at two thirds of the TTL).
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# A token the bridge logged in for is revoked when it exits.
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# validate --online asks which of the above the token holds, writing nothing.
path "sys/capabilities-self" {
  capabilities = ["update"]
}
