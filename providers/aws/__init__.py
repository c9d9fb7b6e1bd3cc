"""AWS: Secrets Manager targets, DynamoDB state, and the Lambda's runtime calls, all on one
boto3 session and one client per service, region and endpoint (``AwsConnection``).

Modules: ``sdk`` (the botocore configuration, the client cache, the error classifier),
``secret_view`` / ``secret_calls`` / ``secret_writes`` / ``secrets_manager`` / ``staging``
(the Secrets Manager target), ``dynamodb_schema`` / ``dynamodb`` (the state backend),
``runtime`` (config and admin key from AWS, the SQS fan-out). Only boto3 is imported here.
"""

from __future__ import annotations

from bridge.config.aws import AwsTarget
from bridge.config.model import DynamoDBStateSettings
from providers.aws.dynamodb import DynamoDBStateStore
from providers.aws.runtime import AwsRuntime
from providers.aws.sdk import AwsClients
from providers.aws.secret_calls import SecretsManagerClient
from providers.aws.secrets_manager import SecretsManagerProvider
from providers.aws.sns import SnsNotifier


class AwsConnection:
    """The process's AWS clients, shared by every target, policy and run."""

    def __init__(self) -> None:
        self.clients = AwsClients()
        self.runtime = AwsRuntime(self.clients)

    def target(self, target: AwsTarget, policy: str) -> SecretsManagerProvider:
        def connect() -> SecretsManagerClient:
            client: SecretsManagerClient = self.clients.client(
                "secretsmanager", target.region, target.endpoint_url
            )
            return client

        return SecretsManagerProvider(target, policy, connect=connect)

    def notifier(self, topic_arn: str) -> SnsNotifier:
        """Alerts to ``topic_arn`` (``[alerts] sns_topic_arn``)."""
        return SnsNotifier(self.clients, topic_arn)

    def state(self, settings: DynamoDBStateSettings) -> DynamoDBStateStore:
        return DynamoDBStateStore(settings, clients=self.clients)

    def close(self) -> None:
        self.clients.close()


__all__ = ["AwsConnection"]
