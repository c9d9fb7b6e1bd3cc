"""Alerts to SNS, on moto: the notice arrives at a subscribed queue as plain text with a
subject naming the policy and the problems; a topic that is not there is a NotifyError."""

from __future__ import annotations

import json

import boto3
import pytest

from bridge.notify import Notice, NotifyError, Problem
from providers.aws.sdk import AwsClients
from providers.aws.sns import SnsNotifier
from tests.support.aws import REGION

OVERDUE = Problem("overdue:r1", "overdue", "key lsv2_sk_ab...cd overdue: max_wait passed", "d1")


def test_a_notice_reaches_the_topics_subscribers(aws: None) -> None:
    sns, sqs = boto3.client("sns", REGION), boto3.client("sqs", REGION)
    topic = sns.create_topic(Name="bridge-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])

    SnsNotifier(AwsClients(), topic).send(Notice("tracing", opened=(OVERDUE,)))

    (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    body = json.loads(message["Body"])
    assert body["Subject"] == "langsmith-bridge tracing: overdue"
    assert "overdue: key lsv2_sk_ab...cd overdue" in body["Message"]


def test_a_missing_topic_is_a_notify_error(aws: None) -> None:
    arn = f"arn:aws:sns:{REGION}:123456789012:nowhere"
    with pytest.raises(NotifyError, match="SNS"):
        SnsNotifier(AwsClients(), arn).send(Notice("tracing", resolved=("failed",)))
