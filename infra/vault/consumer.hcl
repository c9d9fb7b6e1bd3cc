# langsmith-bridge: one consumer's Vault / OpenBao policy. Write one per consumer of each
# bridge policy, with the placeholders replaced:
#
#   <app>        the app segment of its secret, secret/apps/<app>/langsmith
#   <policy>     the bridge policy ([[policy]] name), e.g. tracing-prod
#   <consumer>   the consumer, one of the policy's consumers, e.g. api
#
# for the layout of bridge.hcl (mount "secret", state folder "langsmith-bridge/state");
# setup.sh does it for every entry of CONSUMERS and substitutes the mount and the folder too.
#
# The consumer reads its secret (Vault Agent, the Vault Secrets Operator, External Secrets,
# `bao kv get`, bridge.consumer.load_settings) and acknowledges the key it uses
# (`langsmith-bridge ack ... --from-env`, load_settings): an ack reads the policy's record
# (to find the key's generation) and its run entry (read with it), then reads and rewrites
# the consumer's own entry, which all its replicas share. Nothing else: not another
# consumer's ack, not the record's history, not the leases, not another app's secret.
#
# One policy per consumer rather than one templated policy: ACL templating
# ({{identity.entity.aliases.<mount accessor>.metadata...}}) ties a policy to one auth
# mount's accessor and its alias metadata, which differ between AppRole, Kubernetes and JWT
# logins; a policy per consumer reads the same whichever way the consumer logs in.
#
# tests/integration/test_vault_policies.py loads it into a real OpenBao server and shows
# that a token holding only it can read its secret and acknowledge, and gets 403 for the
# rest.

# Its secret: every version (the superseded one stays readable until its key is revoked).
path "secret/data/apps/<app>/langsmith" {
  capabilities = ["read"]
}

# What an ack reads of the state: the policy's record and its last run.
path "secret/data/langsmith-bridge/state/policies/<policy>" {
  capabilities = ["read"]
}

path "secret/data/langsmith-bridge/state/runs/<policy>" {
  capabilities = ["read"]
}

# Its own acknowledgement entry: created by the first replica, rewritten (check-and-set)
# by every later ack and heartbeat.
path "secret/data/langsmith-bridge/state/acks/<policy>/<consumer>" {
  capabilities = ["create", "read", "update"]
}

# Its own token, without the "default" policy: looked up (a given VAULT_TOKEN), renewed,
# revoked by a consumer that logged in for it.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/revoke-self" {
  capabilities = ["update"]
}
