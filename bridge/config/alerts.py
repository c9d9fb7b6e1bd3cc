"""``[alerts]``: where problems are announced (a Slack-compatible webhook, an SNS topic).

A webhook URL is a credential (Slack's carries its token), so it is never written in the
file itself: it comes from a variable or a file, and is never logged."""

from __future__ import annotations

from pydantic import Field, model_validator

from bridge.config.base import Frozen
from bridge.config.durations import Duration

SNS_TOPIC = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"


class AlertSettings(Frozen):
    """Announce overdue gates, failed runs, blocked targets and keys expiring before the
    next run; one message per problem until it changes, and one when it is resolved."""

    webhook_url_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Variable holding the URL."
    )
    webhook_url_file: str | None = Field(None, description="File holding the webhook URL.")
    sns_topic_arn: str | None = Field(None, pattern=SNS_TOPIC, description="An SNS topic.")
    repeat_every: Duration | None = Field(
        None, description="Announce an unchanged problem again this often (default: never)."
    )

    @model_validator(mode="after")
    def _one_url_source(self) -> AlertSettings:
        if self.webhook_url_env and self.webhook_url_file:
            raise ValueError("give one of webhook_url_env and webhook_url_file")
        return self

    @property
    def any(self) -> bool:
        return bool(self.webhook_url_env or self.webhook_url_file or self.sns_topic_arn)


__all__ = ["AlertSettings"]
