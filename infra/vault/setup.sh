#!/usr/bin/env bash
# Set up Vault / OpenBao for langsmith-bridge: the KV v2 mount, the policies of
# bridge.hcl and consumer.hcl, and the auth roles (AppRole, Kubernetes, JWT) that hand out
# tokens holding exactly one of them. Idempotent: run it again after adding a consumer.
#
#   export VAULT_ADDR=https://vault.example.com:8200 VAULT_TOKEN=...   # an admin's token
#   CONSUMERS="tracing-prod:api tracing-prod:worker" infra/vault/setup.sh kv policies approle
#
# Steps (arguments, run in the order given; none: "kv policies approle"):
#
#   kv          enable KV version 2 at $KV_MOUNT, unless something is mounted there
#   policies    write $PREFIX"bridge" (bridge.hcl) and, for each consumer,
#               $PREFIX"consumer-<policy>-<consumer>" (consumer.hcl)
#   approle     AppRole roles of the same names as the policies (the bridge on a VM or in
#               CI); writes the bridge's role id and a secret id to $ROLE_ID_FILE and
#               $SECRET_ID_FILE when set (response-wrapped with $SECRET_ID_WRAP_TTL)
#   kubernetes  Kubernetes auth: the config and one role per service account
#   jwt         JWT auth (CI or workload-identity tokens): the config and the roles
#
# Settings (environment):
#
#   BAO              the CLI (default: bao, else vault)
#   KV_MOUNT         the KV v2 mount (secret)
#   STATE_PATH       the state folder in it (langsmith-bridge/state)
#   PREFIX           the policies' and roles' name prefix (langsmith-)
#   CONSUMERS        "<policy>:<consumer>[:<app>]" entries, space-separated; the secret is
#                    apps/<app>/langsmith, <app> defaulting to <policy>
#   TOKEN_TTL        tokens' TTL (20m) and TOKEN_MAX_TTL their max TTL (2h): the bridge
#                    renews, and logs in again past the max
#   APPROLE_MOUNT    (approle)   SECRET_ID_TTL (0: never expires)   SECRET_ID_CIDRS
#   ROLE_ID_FILE, SECRET_ID_FILE, SECRET_ID_WRAP_TTL   (the bridge's credentials; 0600)
#   K8S_MOUNT        (kubernetes)   K8S_HOST (required)   K8S_CA_CERT (a file: Vault runs
#                    outside the cluster)   K8S_REVIEWER_JWT_FILE   K8S_AUDIENCE
#   BRIDGE_SA, BRIDGE_SA_NAMESPACE   the bridge's service account (langsmith-bridge in
#                    langsmith-bridge); a consumer's is <consumer> in $CONSUMER_SA_NAMESPACE
#                    (default), "/" in its name becoming "-"
#   JWT_MOUNT        (jwt)   one of JWT_DISCOVERY_URL, JWT_JWKS_URL, JWT_PUBKEY_FILE
#   JWT_ISSUER       bound_issuer   JWT_AUDIENCE (required)   JWT_BRIDGE_SUBJECT (required)
#   JWT_SUBJECT_PREFIX  consumers' roles bind sub = <prefix><consumer> (none: no consumer
#                    roles), e.g. "system:serviceaccount:apps:" for federated pod tokens
#
# Nothing secret is printed: the role id and secret id go only to the files named.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BAO=${BAO:-$(command -v bao || command -v vault || true)}
[ -n "$BAO" ] || { echo "setup.sh: neither bao nor vault is on PATH (set BAO)" >&2; exit 2; }

KV_MOUNT=${KV_MOUNT:-secret}
STATE_PATH=${STATE_PATH:-langsmith-bridge/state}
PREFIX=${PREFIX:-langsmith-}
CONSUMERS=${CONSUMERS:-}
TOKEN_TTL=${TOKEN_TTL:-20m}
TOKEN_MAX_TTL=${TOKEN_MAX_TTL:-2h}
BRIDGE=${PREFIX}bridge

say() { echo "setup.sh: $*"; }

# The consumer's name in a Vault policy or role name, a Kubernetes service account.
flat() { echo "${1//\//-}"; }

consumer_name() { echo "${PREFIX}consumer-$1-$(flat "$2")"; }

# A policy file with the layout's mount and state folder replaced by the settings.
render() {
  sed -e "s#\"secret/#\"${KV_MOUNT}/#" -e "s#/langsmith-bridge/state/#/${STATE_PATH}/#" "$1"
}

mounted() { # mounted secrets|auth PATH (grep reads it all: no SIGPIPE under pipefail)
  "$BAO" "$1" list -format=json | grep -F "\"$2/\"" >/dev/null
}

enable_auth() { # enable_auth TYPE PATH
  if ! mounted auth "$2"; then
    "$BAO" auth enable -path="$2" "$1" >/dev/null
    say "enabled $1 auth at auth/$2"
  fi
}

token_settings() { # the token every role hands out: one policy, no default policy
  echo "token_policies=$1" token_no_default_policy=true token_type=service \
    "token_ttl=$TOKEN_TTL" "token_max_ttl=$TOKEN_MAX_TTL"
}

each_consumer() { # each_consumer FUNCTION: FUNCTION policy consumer app, for each entry
  local entry policy consumer app
  for entry in $CONSUMERS; do
    IFS=: read -r policy consumer app <<<"$entry"
    app=${app:-$policy}
    if ! [[ $policy =~ ^[A-Za-z0-9_.@-]+$ && $consumer =~ ^[A-Za-z0-9_.@/-]+$ &&
      $app =~ ^[A-Za-z0-9_.@-]+$ ]]; then
      echo "setup.sh: CONSUMERS entry '$entry' is not <policy>:<consumer>[:<app>]" >&2
      exit 2
    fi
    "$1" "$policy" "$consumer" "$app"
  done
}

step_kv() {
  if mounted secrets "$KV_MOUNT"; then
    say "a secrets engine is mounted at $KV_MOUNT/ already (the bridge checks it is KV v2)"
  else
    "$BAO" secrets enable -version=2 -path="$KV_MOUNT" kv >/dev/null
    say "enabled KV version 2 at $KV_MOUNT/"
  fi
}

write_consumer_policy() { # policy consumer app
  local name
  name=$(consumer_name "$1" "$2")
  render "$HERE/consumer.hcl" |
    sed -e "s#<app>#$3#g" -e "s#<policy>#$1#g" -e "s#<consumer>#$2#g" |
    "$BAO" policy write "$name" - >/dev/null
  say "wrote policy $name (reads apps/$3/langsmith, acknowledges as $2 of $1)"
}

step_policies() {
  render "$HERE/bridge.hcl" | "$BAO" policy write "$BRIDGE" - >/dev/null
  say "wrote policy $BRIDGE (targets $KV_MOUNT/apps/+/langsmith, state $KV_MOUNT/$STATE_PATH)"
  each_consumer write_consumer_policy
}

approle_role() { # approle_role NAME
  # shellcheck disable=SC2046
  "$BAO" write "auth/$APPROLE_MOUNT/role/$1" $(token_settings "$1") \
    "secret_id_ttl=${SECRET_ID_TTL:-0}" secret_id_num_uses=0 \
    ${SECRET_ID_CIDRS:+"secret_id_bound_cidrs=$SECRET_ID_CIDRS"} >/dev/null
  say "wrote AppRole role auth/$APPROLE_MOUNT/role/$1"
}

approle_consumer() { approle_role "$(consumer_name "$1" "$2")"; }

step_approle() {
  APPROLE_MOUNT=${APPROLE_MOUNT:-approle}
  enable_auth approle "$APPROLE_MOUNT"
  approle_role "$BRIDGE"
  each_consumer approle_consumer
  local role="auth/$APPROLE_MOUNT/role/$BRIDGE"
  (
    umask 077
    if [ -n "${ROLE_ID_FILE:-}" ]; then
      "$BAO" read -field=role_id "$role/role-id" >"$ROLE_ID_FILE"
      say "wrote the bridge's role id to $ROLE_ID_FILE"
    fi
    if [ -n "${SECRET_ID_FILE:-}" ]; then
      if [ -n "${SECRET_ID_WRAP_TTL:-}" ]; then
        "$BAO" write -f -wrap-ttl="$SECRET_ID_WRAP_TTL" -field=wrapping_token \
          "$role/secret-id" >"$SECRET_ID_FILE"
        say "wrote a wrapped secret id to $SECRET_ID_FILE (secret_id_wrapped = true)"
      else
        "$BAO" write -f -field=secret_id "$role/secret-id" >"$SECRET_ID_FILE"
        say "wrote a secret id to $SECRET_ID_FILE"
      fi
    fi
  )
}

kubernetes_role() { # kubernetes_role NAME SERVICE_ACCOUNT NAMESPACE
  # shellcheck disable=SC2046
  "$BAO" write "auth/$K8S_MOUNT/role/$1" $(token_settings "$1") \
    "bound_service_account_names=$2" "bound_service_account_namespaces=$3" \
    ${K8S_AUDIENCE:+"audience=$K8S_AUDIENCE"} >/dev/null
  say "wrote Kubernetes role auth/$K8S_MOUNT/role/$1 (service account $3/$2)"
}

kubernetes_consumer() {
  kubernetes_role "$(consumer_name "$1" "$2")" "$(flat "$2")" "${CONSUMER_SA_NAMESPACE:-default}"
}

step_kubernetes() {
  K8S_MOUNT=${K8S_MOUNT:-kubernetes}
  : "${K8S_HOST:?setup.sh kubernetes: set K8S_HOST, the API server URL}"
  enable_auth kubernetes "$K8S_MOUNT"
  local config=("kubernetes_host=$K8S_HOST")
  if [ -n "${K8S_CA_CERT:-}" ]; then # Vault outside the cluster: no pod files to fall back on
    config+=("kubernetes_ca_cert=@$K8S_CA_CERT" disable_local_ca_jwt=true)
  fi
  if [ -n "${K8S_REVIEWER_JWT_FILE:-}" ]; then
    config+=("token_reviewer_jwt=@$K8S_REVIEWER_JWT_FILE")
  fi
  "$BAO" write "auth/$K8S_MOUNT/config" "${config[@]}" >/dev/null
  say "configured auth/$K8S_MOUNT for $K8S_HOST"
  kubernetes_role "$BRIDGE" "${BRIDGE_SA:-langsmith-bridge}" \
    "${BRIDGE_SA_NAMESPACE:-langsmith-bridge}"
  each_consumer kubernetes_consumer
}

jwt_role() { # jwt_role NAME SUBJECT
  # shellcheck disable=SC2046
  "$BAO" write "auth/$JWT_MOUNT/role/$1" $(token_settings "$1") role_type=jwt \
    user_claim=sub "bound_subject=$2" "bound_audiences=$JWT_AUDIENCE" >/dev/null
  say "wrote JWT role auth/$JWT_MOUNT/role/$1 (sub $2)"
}

jwt_consumer() { jwt_role "$(consumer_name "$1" "$2")" "$JWT_SUBJECT_PREFIX$2"; }

step_jwt() {
  JWT_MOUNT=${JWT_MOUNT:-jwt}
  : "${JWT_AUDIENCE:?setup.sh jwt: set JWT_AUDIENCE}"
  : "${JWT_BRIDGE_SUBJECT:?setup.sh jwt: set JWT_BRIDGE_SUBJECT, the sub claim of the bridge token}"
  enable_auth jwt "$JWT_MOUNT"
  local config=()
  if [ -n "${JWT_DISCOVERY_URL:-}" ]; then
    config+=("oidc_discovery_url=$JWT_DISCOVERY_URL")
  elif [ -n "${JWT_JWKS_URL:-}" ]; then
    config+=("jwks_url=$JWT_JWKS_URL")
  elif [ -n "${JWT_PUBKEY_FILE:-}" ]; then
    config+=("jwt_validation_pubkeys=@$JWT_PUBKEY_FILE")
  else
    echo "setup.sh jwt: set JWT_DISCOVERY_URL, JWT_JWKS_URL or JWT_PUBKEY_FILE" >&2
    exit 2
  fi
  config+=(${JWT_ISSUER:+"bound_issuer=$JWT_ISSUER"})
  "$BAO" write "auth/$JWT_MOUNT/config" "${config[@]}" >/dev/null
  say "configured auth/$JWT_MOUNT"
  jwt_role "$BRIDGE" "$JWT_BRIDGE_SUBJECT"
  if [ -n "${JWT_SUBJECT_PREFIX:-}" ]; then
    each_consumer jwt_consumer
  fi
}

each_consumer true # every CONSUMERS entry is well formed before anything is written
[ $# -gt 0 ] || set -- kv policies approle
for step in "$@"; do
  case "$step" in
    kv | policies | approle | kubernetes | jwt) "step_$step" ;;
    *)
      echo "setup.sh: unknown step '$step' (kv, policies, approle, kubernetes, jwt)" >&2
      exit 2
      ;;
  esac
done
