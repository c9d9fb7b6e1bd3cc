# Least-privilege IAM. Custom roles hold exactly the permissions the adapters' calls need
# (providers/gcp/sm_calls.py SECRET_MANAGER_PERMISSIONS, the GCS calls of
# providers/gcp/gcs_objects.py); tests/gcp/test_infra_gcp.py holds them to those calls.
#
# Secret Manager cannot condition IAM on a secret's labels (resource.labels is not an
# attribute it offers), so the bridge's secrets are reached by name: every target secret id
# starts with var.secret_prefix. The managed-by=langsmith-bridge label the bridge sets stays
# its own ownership check, made in code before it touches a secret.

# -- the bridge: Secret Manager ----------------------------------------------------------

resource "google_project_iam_custom_role" "bridge_secrets" {
  role_id     = "langsmithBridgeSecrets"
  title       = "langsmith-bridge secrets"
  description = "Read, update and rotate the versions of the bridge's secrets."
  permissions = [
    "secretmanager.secrets.get",
    "secretmanager.secrets.update",
    "secretmanager.versions.add",
    "secretmanager.versions.access",
    "secretmanager.versions.get",
    "secretmanager.versions.list",
    "secretmanager.versions.disable",
    "secretmanager.versions.destroy",
  ]
}

resource "google_project_iam_member" "bridge_secrets" {
  project = var.project
  role    = google_project_iam_custom_role.bridge_secrets.id
  member  = "serviceAccount:${google_service_account.bridge.email}"

  condition {
    title       = "langsmith-bridge secrets"
    description = "Only secrets (and their versions) whose id starts with the bridge's prefix."
    expression  = "resource.name.startsWith(\"${local.secret_root}\")"
  }
}

# CreateSecret is authorized on the parent project, not on the secret to be, so a name
# condition cannot narrow it (it would deny every create). This role holds nothing else: a
# secret it creates outside the prefix is one the bridge can then neither read nor write.
resource "google_project_iam_custom_role" "bridge_secret_create" {
  role_id     = "langsmithBridgeSecretCreate"
  title       = "langsmith-bridge secret create"
  description = "Create the bridge's target secrets."
  permissions = ["secretmanager.secrets.create"]
}

resource "google_project_iam_member" "bridge_secret_create" {
  project = var.project
  role    = google_project_iam_custom_role.bridge_secret_create.id
  member  = "serviceAccount:${google_service_account.bridge.email}"
}

# The job's own inputs: the configuration file and the admin key (read at start by Cloud Run
# as the job's service account).
resource "google_secret_manager_secret_iam_member" "bridge_config" {
  secret_id = var.config_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.bridge.email}"
}

resource "google_secret_manager_secret_iam_member" "bridge_admin_key" {
  secret_id = var.admin_key_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.bridge.email}"
}

# -- the bridge: the state bucket --------------------------------------------------------

# get: read (bytes and generation); create: every write (ifGenerationMatch=0 creates);
# delete: an overwrite (ifGenerationMatch=N) replaces the object, which GCS authorizes as
# create plus delete. No delete call is ever made.
resource "google_project_iam_custom_role" "bridge_state" {
  role_id     = "langsmithBridgeState"
  title       = "langsmith-bridge state objects"
  description = "Read and conditionally write the bridge's state objects."
  permissions = [
    "storage.objects.get",
    "storage.objects.create",
    "storage.objects.delete",
  ]
}

resource "google_storage_bucket_iam_member" "bridge_state" {
  bucket = google_storage_bucket.state.name
  role   = google_project_iam_custom_role.bridge_state.id
  member = "serviceAccount:${google_service_account.bridge.email}"

  condition {
    title       = "state prefix"
    description = "Only objects under the state prefix."
    expression  = "resource.name.startsWith(\"${local.object_root}/\")"
  }
}

# A list is authorized on the bucket, so it is conditioned on the prefix listed instead.
resource "google_project_iam_custom_role" "bridge_state_list" {
  role_id     = "langsmithBridgeStateList"
  title       = "langsmith-bridge state list"
  description = "List the bridge's state objects."
  permissions = ["storage.objects.list"]
}

resource "google_storage_bucket_iam_member" "bridge_state_list" {
  bucket = google_storage_bucket.state.name
  role   = google_project_iam_custom_role.bridge_state_list.id
  member = "serviceAccount:${google_service_account.bridge.email}"

  condition {
    title       = "state prefix list"
    description = "Only listings under the state prefix."
    expression  = "api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"${local.state_prefix}/\")"
  }
}

# -- starting the job, pushing the events ------------------------------------------------

resource "google_cloud_run_v2_job_iam_member" "scheduler" {
  name     = google_cloud_run_v2_job.bridge.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

resource "google_cloud_run_v2_service_iam_member" "pusher" {
  name     = var.rotation_service
  location = var.region
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.pusher.email}"
}

# Pub/Sub's service agent mints the push's OIDC token as the pusher.
resource "google_service_account_iam_member" "pubsub_token" {
  service_account_id = google_service_account.pusher.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# Secret Manager's service agent publishes the secrets' events to the topic.
resource "google_project_service_identity" "secretmanager" {
  provider = google-beta
  project  = var.project
  service  = "secretmanager.googleapis.com"
}

resource "google_pubsub_topic_iam_member" "secretmanager_publisher" {
  topic  = google_pubsub_topic.rotation.name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_project_service_identity.secretmanager.email}"
}

# -- consumers ---------------------------------------------------------------------------

resource "google_secret_manager_secret_iam_member" "consumer_secret" {
  for_each  = var.consumers
  secret_id = each.value.secret
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value.member
}

resource "google_project_iam_custom_role" "consumer_read" {
  role_id     = "langsmithBridgeConsumerRead"
  title       = "langsmith-bridge consumer read"
  description = "Read a policy's record and last run."
  permissions = ["storage.objects.get"]
}

resource "google_storage_bucket_iam_member" "consumer_read" {
  for_each = var.consumers
  bucket   = google_storage_bucket.state.name
  role     = google_project_iam_custom_role.consumer_read.id
  member   = each.value.member

  condition {
    title       = "policy ${each.value.policy} for ${each.key}"
    description = "Only the record and the last run of the consumer's policy."
    expression  = "resource.name == \"${local.object_root}/policies/${each.value.policy}.json\" || resource.name == \"${local.object_root}/runs/${each.value.policy}.json\""
  }
}

# The ack is read, then overwritten with ifGenerationMatch (create plus delete, as above).
resource "google_project_iam_custom_role" "consumer_ack" {
  role_id     = "langsmithBridgeConsumerAck"
  title       = "langsmith-bridge consumer ack"
  description = "Read and conditionally write a consumer's own ack."
  permissions = [
    "storage.objects.get",
    "storage.objects.create",
    "storage.objects.delete",
  ]
}

resource "google_storage_bucket_iam_member" "consumer_ack" {
  for_each = var.consumers
  bucket   = google_storage_bucket.state.name
  role     = google_project_iam_custom_role.consumer_ack.id
  member   = each.value.member

  condition {
    title       = "own ack of ${each.key}"
    description = "Only acks/<policy>/<consumer>.json."
    expression  = "resource.name == \"${local.object_root}/acks/${each.value.policy}/${each.key}.json\""
  }
}
