"""What the Lambda entry needs from AWS besides the stores: its configuration, the admin
key, and the SQS fan-out. Lives here, not in ``bridge``, because it imports boto3.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bridge.errors import ConfigError, ProviderError
from providers.aws.sdk import SDK_ERRORS, STANDALONE_ATTEMPTS, AwsClients, describe

# The IAM actions this module can call (for the least-privilege policy and its test).
RUNTIME_ACTIONS: tuple[str, ...] = (
    "s3:GetObject",
    "secretsmanager:GetSecretValue",
    "ssm:GetParameter",
    "sqs:SendMessage",  # SendMessageBatch is authorised as sqs:SendMessage
)


class AwsRuntime:
    """The Lambda's own AWS calls, on the process's shared clients.

    No engine retries these calls (they run before one exists, or outside it), so
    botocore's standard retries stay on for them.
    """

    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def _client(self, service: str, region: str | None = None) -> Any:
        return self._clients.client(service, region, attempts=STANDALONE_ATTEMPTS)

    def fetch_text(self, reference: str) -> str:
        """The text behind ``s3://bucket/key``, a Secrets Manager id (``arn:aws:secretsmanager:…``
        or ``secretsmanager:<name>``) or an SSM parameter (``arn:aws:ssm:…`` or ``ssm:<name>``).

        Raises:
            ConfigError: the reference has none of these forms, or cannot be read.
        """
        try:
            if reference.startswith("s3://"):
                bucket, _, key = reference.removeprefix("s3://").partition("/")
                body = self._client("s3").get_object(Bucket=bucket, Key=key)["Body"]
                return str(body.read().decode("utf-8"))
            if reference.startswith(("arn:aws:secretsmanager:", "secretsmanager:")):
                return self.secret_string(reference.removeprefix("secretsmanager:"))
            if reference.startswith(("arn:aws:ssm:", "ssm:")):
                name = reference.removeprefix("ssm:")
                response = self._client("ssm").get_parameter(Name=name, WithDecryption=True)
                return str(response["Parameter"]["Value"])
        except SDK_ERRORS as exc:
            raise ConfigError(f"cannot read {reference}: {_reason(exc)}") from exc
        raise ConfigError(f"{reference!r} is not an s3://, Secrets Manager or SSM reference")

    def secret_string(self, secret_id: str) -> str:
        """The ``AWSCURRENT`` string of a secret (the admin key, or a config)."""
        region = secret_id.split(":")[3] if secret_id.startswith("arn:") else None
        response = self._client("secretsmanager", region).get_secret_value(SecretId=secret_id)
        return str(response["SecretString"])

    def admin_key(self, secret_id: str) -> str:
        """The admin key held in a secret: the raw key, or a JSON object with
        ``LANGSMITH_API_KEY`` or ``admin_key``."""
        try:
            text = self.secret_string(secret_id).strip()
        except SDK_ERRORS as exc:
            raise ConfigError(
                f"langsmith.admin_key_secret: cannot read {secret_id}: {_reason(exc)}"
            ) from exc
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                raise ConfigError(
                    f"langsmith.admin_key_secret: {secret_id} is not valid JSON"
                ) from None
            text = str(data.get("LANGSMITH_API_KEY") or data.get("admin_key") or "").strip()
        if not text:
            raise ConfigError(f"langsmith.admin_key_secret: {secret_id} holds no key")
        return text

    def send_policies(self, queue_url: str, names: Sequence[str]) -> int:
        """Send one SQS message per policy name, ten to a batch; return how many were sent.

        Raises:
            ProviderError: SQS refused some messages (their policies are named).
        """
        sqs = self._client("sqs", _queue_region(queue_url))
        failed: list[str] = []
        for start in range(0, len(names), 10):
            chunk = names[start : start + 10]
            entries = [
                {"Id": str(i), "MessageBody": json.dumps({"policy": name})}
                for i, name in enumerate(chunk)
            ]
            try:
                response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except SDK_ERRORS as exc:
                raise ProviderError(
                    _reason(exc), provider="sqs", operation="send", reference=queue_url
                ) from exc
            failed += [chunk[int(entry["Id"])] for entry in response.get("Failed", [])]
        if failed:
            raise ProviderError(
                f"messages for {', '.join(failed)} were refused",
                provider="sqs",
                operation="send",
                reference=queue_url,
            )
        return len(names)


def _queue_region(queue_url: str) -> str | None:
    # https://sqs.<region>.amazonaws.com/<account>/<name>
    host = queue_url.split("/")[2] if "://" in queue_url else ""
    parts = host.split(".")
    return parts[1] if len(parts) > 3 and parts[0] == "sqs" else None


def _reason(exc: Exception) -> str:
    return describe(exc)
