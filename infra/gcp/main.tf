terraform {
  required_version = ">= 1.5"
  required_providers {
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 5.0"
    }
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project
}

locals {
  state_prefix = trim(var.state_prefix, "/")
  # Secret Manager names a secret by the project's number in the IAM conditions it evaluates.
  secret_root = "projects/${data.google_project.this.number}/secrets/${var.secret_prefix}"
  object_root = "projects/_/buckets/${var.state_bucket}/objects/${local.state_prefix}"
  config_dir  = "/etc/langsmith-bridge"
  audience    = var.rotation_audience != "" ? var.rotation_audience : var.rotation_push_url
}

# -- identities --------------------------------------------------------------------------

resource "google_service_account" "bridge" {
  account_id   = "langsmith-bridge"
  display_name = "langsmith-bridge (runs the reconcile job)"
}

resource "google_service_account" "scheduler" {
  account_id   = "langsmith-bridge-scheduler"
  display_name = "langsmith-bridge scheduler (starts the job)"
}

resource "google_service_account" "pusher" {
  account_id   = "langsmith-bridge-pusher"
  display_name = "langsmith-bridge rotation push (signs the push's OIDC token)"
}

# -- state -------------------------------------------------------------------------------

resource "google_storage_bucket" "state" {
  name                        = var.state_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # The state is compare-and-swap on generations; old generations are not kept.
  versioning {
    enabled = false
  }
}

# -- the job and its schedule ------------------------------------------------------------

resource "google_cloud_run_v2_job" "bridge" {
  name     = "langsmith-bridge"
  location = var.region

  template {
    task_count = 1
    template {
      service_account = google_service_account.bridge.email
      max_retries     = 0
      timeout         = "900s"

      containers {
        image   = var.image
        command = ["langsmith-bridge"]
        args    = ["run"]

        env {
          name  = "LANGSMITH_BRIDGE_CONFIG"
          value = "${local.config_dir}/bridge.toml"
        }
        env {
          name = "LANGSMITH_ADMIN_KEY"
          value_source {
            secret_key_ref {
              secret  = var.admin_key_secret
              version = "latest"
            }
          }
        }
        volume_mounts {
          name       = "config"
          mount_path = local.config_dir
        }
      }

      volumes {
        name = "config"
        secret {
          secret = var.config_secret
          items {
            version = "latest"
            path    = "bridge.toml"
          }
        }
      }
    }
  }
}

resource "google_cloud_scheduler_job" "bridge" {
  name      = "langsmith-bridge-run"
  region    = var.region
  schedule  = "*/${var.run_every} * * * *"
  time_zone = "Etc/UTC"

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project}/locations/${var.region}/jobs/${google_cloud_run_v2_job.bridge.name}:run"

    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }
}

# -- rotation events ---------------------------------------------------------------------

resource "google_pubsub_topic" "rotation" {
  name = var.rotation_topic
}

resource "google_pubsub_subscription" "rotation" {
  name                 = "${var.rotation_topic}-push"
  topic                = google_pubsub_topic.rotation.id
  ack_deadline_seconds = 60
  # Only the event that matters; the others (SECRET_VERSION_ADD, ...) are the bridge's own.
  filter = "attributes.eventType = \"SECRET_ROTATE\""

  push_config {
    push_endpoint = var.rotation_push_url
    oidc_token {
      service_account_email = google_service_account.pusher.email
      audience              = local.audience
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
}

provider "google-beta" {
  project = var.project
  region  = var.region
}
