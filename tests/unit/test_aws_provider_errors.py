"""How the Secrets Manager provider reports SDK failures: one ``ProviderError`` subclass per
kind of failure (what the retry policy reads), the SDK error chained as the cause, and no
key material anywhere in the text. A hand-written fake client stands in for boto3.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from bridge.config.targets import AwsTarget
from bridge.errors import (
    OwnershipError,
    ProviderAccessDenied,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderThrottled,
    ProviderUnavailable,
)
from bridge.payload import ENDPOINT, Payload, encode
from bridge.secrets import Secret
from providers.aws import AwsConnection
from providers.aws.secrets_manager import SecretsManagerProvider
from tests.support.aws import client_error
from tests.support.errors import full_text
from tests.support.keys import new_key

POLICY = "unit-policy"
SECRET = "team/langsmith"
TARGET = AwsTarget(provider="aws", secret_id=SECRET, region="eu-west-1")
TAGS = [
    {"Key": "langsmith-bridge:managed", "Value": "true"},
    {"Key": "langsmith-bridge:policy", "Value": POLICY},
]


def payload() -> Payload:
    rotation = "20261127T130449Z-" + secrets.token_hex(8)
    return Payload(POLICY, rotation, Secret(new_key()), {ENDPOINT: "https://api.example"})


class FakeClient:
    """One owned secret whose AWSCURRENT holds ``current``; ``fail`` names the operation
    that raises, and with what."""

    def __init__(self, current: Payload | None = None, **fail: BaseException) -> None:
        self.versions: dict[str, str] = {}
        self.current: str | None = None
        if current is not None:
            self.current = current.rotation_id
            self.versions[self.current] = encode(current.reveal_env(), "json")
        self.fail = fail
        self.calls: list[str] = []

    def _call(self, name: str, answer: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]
        return answer

    def describe_secret(self, **kwargs: Any) -> dict[str, Any]:
        stages = {self.current: ["AWSCURRENT"]} if self.current else {}
        return self._call(
            "describe_secret", {"ARN": "arn:x", "Tags": TAGS, "VersionIdsToStages": stages}
        )

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        version = kwargs.get("VersionId") or self.current
        if version not in self.versions:
            raise client_error("ResourceNotFoundException", "GetSecretValue")
        answer = {"VersionId": version, "SecretString": self.versions[version]}
        return self._call("get_secret_value", answer)

    def create_secret(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("create_secret", {"ARN": "arn:x"})

    def tag_resource(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("tag_resource", {})

    def put_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        answer = self._call("put_secret_value", {"VersionStages": kwargs["VersionStages"]})
        self.versions[kwargs["ClientRequestToken"]] = kwargs["SecretString"]
        return answer

    def update_secret_version_stage(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("update_secret_version_stage", {})


def provider(client: FakeClient) -> SecretsManagerProvider:
    return SecretsManagerProvider(TARGET, POLICY, client=client)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ResourceNotFoundException", 400, ProviderNotFound),
        ("AccessDeniedException", 400, ProviderAccessDenied),
        ("AccessDenied", 403, ProviderAccessDenied),
        ("DecryptionFailure", 400, ProviderAccessDenied),
        ("ThrottlingException", 400, ProviderThrottled),
        ("TooManyRequestsException", 429, ProviderThrottled),
        ("RequestLimitExceeded", 400, ProviderThrottled),
        ("InternalServiceError", 500, ProviderUnavailable),
        ("ServiceUnavailable", 503, ProviderUnavailable),
        ("SomethingNew", 502, ProviderUnavailable),
        ("InvalidRequestException", 400, ProviderError),
        ("InvalidParameterException", 400, ProviderError),
        ("LimitExceededException", 400, ProviderError),
    ],
)
def test_client_error_codes_map_to_the_error_tree(
    code: str, status: int, kind: type[ProviderError]
) -> None:
    cause = client_error(code, "PutSecretValue", status)

    with pytest.raises(ProviderError) as caught:
        provider(FakeClient(payload(), put_secret_value=cause)).publish(payload())

    assert type(caught.value) is kind
    assert caught.value.__cause__ is cause
    assert (caught.value.provider, caught.value.operation) == ("aws", "publish")
    assert caught.value.reference == f"{SECRET}@eu-west-1"
    assert code in str(caught.value)
    assert caught.value.retryable is (kind in (ProviderThrottled, ProviderUnavailable))


@pytest.mark.parametrize(
    "cause",
    [
        EndpointConnectionError(endpoint_url="https://secretsmanager.eu-west-1.amazonaws.com"),
        ConnectTimeoutError(endpoint_url="https://secretsmanager.eu-west-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://secretsmanager.eu-west-1.amazonaws.com"),
        ConnectionClosedError(endpoint_url="https://secretsmanager.eu-west-1.amazonaws.com"),
    ],
    ids=type,
)
def test_connection_failures_are_unavailable_and_retryable(cause: Exception) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        provider(FakeClient(payload(), get_secret_value=cause)).read()

    assert caught.value.retryable
    assert caught.value.operation == "read"
    assert caught.value.__cause__ is cause


def test_missing_credentials_are_access_denied() -> None:
    with pytest.raises(ProviderAccessDenied, match="credentials"):
        provider(FakeClient(describe_secret=NoCredentialsError())).validate()


def test_a_missing_secret_reads_as_none_but_a_denied_read_raises() -> None:
    assert provider(FakeClient()).read() is None
    assert provider(FakeClient()).staging.read_version("v" * 32) is None

    denied = client_error("AccessDeniedException", "GetSecretValue")
    with pytest.raises(ProviderAccessDenied):
        provider(FakeClient(payload(), get_secret_value=denied)).read()


def test_a_failed_write_names_the_operation_and_carries_no_key() -> None:
    current, new = payload(), payload()
    throttled = client_error("ThrottlingException", "PutSecretValue", message="Rate exceeded")
    client = FakeClient(current, put_secret_value=throttled)

    with pytest.raises(ProviderThrottled) as caught:
        provider(client).publish(new)

    assert caught.value.operation == "publish"
    assert "update_secret_version_stage" not in client.calls  # nothing moved
    text = full_text(caught.value)
    for key in (current.api_key.reveal(), new.api_key.reveal()):
        assert key not in text and key[8:40] not in text


def test_key_shaped_text_in_an_aws_message_is_redacted() -> None:
    leaked = new_key()
    cause = client_error("InvalidRequestException", "DescribeSecret", message=f"bad {leaked}")

    with pytest.raises(ProviderError) as caught:
        provider(FakeClient(describe_secret=cause)).validate()

    assert leaked not in str(caught.value) and "<redacted sha256:" in str(caught.value)


def test_a_moved_label_is_a_conflict() -> None:
    moved = client_error("InvalidParameterException", "UpdateSecretVersionStage")
    client = FakeClient(payload(), update_secret_version_stage=moved)

    with pytest.raises(ProviderConflict) as caught:
        provider(client).publish(payload())
    assert caught.value.__cause__ is moved


def test_a_non_json_current_value_is_unreadable_without_showing_it() -> None:
    key = new_key()

    class Plain(FakeClient):
        def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
            return {"VersionId": "v1", "SecretString": f"LANGSMITH_API_KEY={key}"}

    with pytest.raises(ProviderError, match="unreadable") as caught:
        provider(Plain(payload())).read()
    assert key not in full_text(caught.value)
    with pytest.raises(ProviderConflict, match="did not write") as conflict:
        provider(Plain(payload())).publish(payload())
    assert key not in full_text(conflict.value)


def test_an_untagged_secret_is_an_ownership_error_before_any_read_of_its_value() -> None:
    class Untagged(FakeClient):
        def describe_secret(self, **kwargs: Any) -> dict[str, Any]:
            return {"ARN": "arn:x", "Tags": []}

    client = Untagged(payload())
    with pytest.raises(OwnershipError):
        provider(client).publish(payload())
    assert client.calls == []


def test_the_client_is_built_lazily_and_a_missing_region_is_a_provider_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    connection = AwsConnection()
    unplaced = connection.target(AwsTarget(provider="aws", secret_id=SECRET), POLICY)
    assert connection.clients.built == 0  # nothing is built before the first call

    with pytest.raises(ProviderError, match="region") as caught:
        unplaced.read()

    assert caught.value.operation == "read"
    connection.close()
    connection.close()


@pytest.mark.parametrize("length", [1, 23, 32, 33, 36, 64, 65, 200])
def test_request_tokens_always_fit_aws_limits_and_are_stable(length: int) -> None:
    from providers.aws.secret_view import request_token

    rotation = ("r" * length)[:length]
    token = request_token(rotation)

    assert 32 <= len(token) <= 64
    assert token == request_token(rotation)
    assert (token == rotation) is (32 <= length <= 64)
    assert request_token(rotation, "s1") != request_token(rotation, "s2")
