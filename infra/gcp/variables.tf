variable "project" {
  description = "The project id the bridge, its secrets, its state bucket and its topic live in."
  type        = string
}

variable "region" {
  description = "The region of the Cloud Run job and the Cloud Scheduler job."
  type        = string
  default     = "us-central1"
}

variable "image" {
  description = "The bridge's container image (with the gcp extra), e.g. REGION-docker.pkg.dev/P/R/langsmith-bridge:TAG."
  type        = string
}

variable "secret_prefix" {
  description = "Secret ids of the bridge's targets start with this; the Secret Manager grants are conditioned on it."
  type        = string
  default     = "langsmith-"

  validation {
    condition     = length(var.secret_prefix) > 0
    error_message = "An empty prefix would grant every secret in the project."
  }
}

variable "config_secret" {
  description = "Secret id holding the bridge's bridge.toml (mounted into the job as a file)."
  type        = string
  default     = "langsmith-bridge-config"
}

variable "admin_key_secret" {
  description = "Secret id holding the LangSmith org admin service key (passed to the job as LANGSMITH_ADMIN_KEY; set admin_key_env = \"LANGSMITH_ADMIN_KEY\" in bridge.toml)."
  type        = string
  default     = "langsmith-bridge-admin-key"
}

variable "state_bucket" {
  description = "The state bucket's name (created here): [state] bucket in bridge.toml."
  type        = string
}

variable "state_prefix" {
  description = "Object name prefix the state lives under: [state] prefix in bridge.toml."
  type        = string
  default     = "langsmith-bridge/state"
}

variable "run_every" {
  description = "Minutes between scheduled runs (`langsmith-bridge run`), 1 to 59: the Cloud Scheduler cron is */run_every."
  type        = number
  default     = 15

  validation {
    condition     = var.run_every >= 1 && var.run_every <= 59 && floor(var.run_every) == var.run_every
    error_message = "run_every is a whole number of minutes between 1 and 59."
  }
}

variable "rotation_topic" {
  description = "The Pub/Sub topic Secret Manager publishes the secrets' events (SECRET_ROTATE) to."
  type        = string
  default     = "langsmith-bridge-rotation"
}

variable "rotation_service" {
  description = "The Cloud Run service (name, in var.region) the rotation events are pushed to."
  type        = string
}

variable "rotation_push_url" {
  description = "The push endpoint: that service's URL and path, e.g. https://rotate-abc-uc.a.run.app/events."
  type        = string
}

variable "rotation_audience" {
  description = "The audience of the OIDC token Pub/Sub signs for the push; empty: the push URL."
  type        = string
  default     = ""
}

variable "consumers" {
  description = <<-EOT
    Consumers by name: each one's IAM member (e.g. serviceAccount:api@P.iam.gserviceaccount.com),
    the policy it follows and the secret id it reads. Each may read that secret's versions and
    its policy's record and last run, and write only acks/<policy>/<consumer>.json.
  EOT
  type = map(object({
    member = string
    policy = string
    secret = string
  }))
  default = {}
}
