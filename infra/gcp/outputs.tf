output "bridge_service_account" {
  description = "The bridge's service account (the job runs as it)."
  value       = google_service_account.bridge.email
}

output "state_bucket" {
  description = "The state bucket: [state] bucket in bridge.toml."
  value       = google_storage_bucket.state.name
}

output "state_prefix" {
  description = "The state prefix: [state] prefix in bridge.toml."
  value       = local.state_prefix
}

output "job" {
  description = "The Cloud Run job running `langsmith-bridge run`."
  value       = google_cloud_run_v2_job.bridge.id
}

output "rotation_topic" {
  description = "Set as a topic of each target secret (topics = [this]) for its SECRET_ROTATE events."
  value       = google_pubsub_topic.rotation.id
}

output "secret_condition_root" {
  description = "What every conditioned Secret Manager grant of the bridge starts with."
  value       = local.secret_root
}

output "pusher_service_account" {
  description = "The push subscription's OIDC identity: [pubsub] service_account of the rotation service."
  value       = google_service_account.pusher.email
}
