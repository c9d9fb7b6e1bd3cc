"""Alerts to an SNS topic: ``bridge.notify.Notice`` as a plain-text message (email,
chatbot and SQS subscribers all read it), on the process's shared boto3 clients."""

from __future__ import annotations

from bridge.notify import Notice, NotifyError
from providers.aws.sdk import SDK_ERRORS, STANDALONE_ATTEMPTS, AwsClients, describe

SNS_ACTIONS: tuple[str, ...] = ("sns:Publish",)
"""The IAM actions alerts need (only when ``[alerts] sns_topic_arn`` is set)."""

SUBJECT_MAX = 100  # SNS refuses a longer subject


class SnsNotifier:
    name = "sns"

    def __init__(self, clients: AwsClients, topic_arn: str) -> None:
        self._clients = clients
        self.topic_arn = topic_arn

    def send(self, notice: Notice) -> None:
        kinds = sorted({p.kind for p in (*notice.opened, *notice.repeated)})
        subject = f"langsmith-bridge {notice.policy}: " + (", ".join(kinds) or "resolved")
        region = self.topic_arn.split(":")[3]
        client = self._clients.client("sns", region, attempts=STANDALONE_ATTEMPTS)
        try:
            client.publish(
                TopicArn=self.topic_arn, Subject=subject[:SUBJECT_MAX], Message=notice.text()
            )
        except SDK_ERRORS as exc:
            raise NotifyError(f"SNS {self.topic_arn}: {describe(exc)}") from exc


__all__ = ["SNS_ACTIONS", "SnsNotifier"]
