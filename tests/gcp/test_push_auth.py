"""The Pub/Sub push verifier against a real certificates server (``OidcIssuer``): what it
accepts, each thing it refuses, and how it caches and refetches Google's certificates."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bridge.config.gcp import PubsubPushSettings
from bridge.errors import ProviderUnavailable, RequestRefused
from providers.gcp.push_auth import PushVerifier
from tests.support.oidc import OidcIssuer

pytestmark = pytest.mark.integration

AUDIENCE = "https://bridge.example.com/gcp-push"
PUSHER = "pusher@demo-project.iam.gserviceaccount.com"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer() as oidc:
        yield oidc


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(issuer: OidcIssuer, clock: Clock) -> PushVerifier:
    settings = PubsubPushSettings(
        audience=AUDIENCE, service_account=PUSHER, certs_url=issuer.certs_url
    )
    return PushVerifier(settings, timeout=2.0, clock=clock)


def bearer(token: str) -> str:
    return f"Bearer {token}"


def refusal(verifier: PushVerifier, authorization: str | None, token: str = "") -> str:
    """The reason ``verify`` refuses with, checked never to carry the token."""
    with pytest.raises(RequestRefused) as refused:
        verifier.verify(authorization)
    message = str(refused.value)
    if token:
        assert token not in message
        assert token not in repr(refused.value)
        assert refused.value.__cause__ is None  # google-auth's messages may quote it
    return message


def test_a_good_token_returns_the_callers_email(issuer: OidcIssuer, verifier: PushVerifier) -> None:
    assert verifier.verify(bearer(issuer.token(AUDIENCE, PUSHER))) == PUSHER


@pytest.mark.parametrize("iss", ["https://accounts.google.com", "accounts.google.com"])
def test_both_google_issuer_spellings_are_accepted(
    issuer: OidcIssuer, verifier: PushVerifier, iss: str
) -> None:
    assert verifier.verify(bearer(issuer.token(AUDIENCE, PUSHER, iss=iss))) == PUSHER


def test_the_email_is_compared_case_insensitively(
    issuer: OidcIssuer, verifier: PushVerifier
) -> None:
    token = issuer.token(AUDIENCE, PUSHER.upper())
    assert verifier.verify(f"bearer {token}") == PUSHER.upper()


def test_a_token_within_the_clock_skew_is_accepted(
    issuer: OidcIssuer, verifier: PushVerifier
) -> None:
    now = int(time.time())
    token = issuer.token(AUDIENCE, PUSHER, iat=now - 3600, exp=now - 10)
    assert verifier.verify(bearer(token)) == PUSHER


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "no Authorization header"),
        ("", "no Authorization header"),
        ("Basic dXNlcjpwYXNz", "not 'Bearer <token>'"),
        ("Bearer", "not 'Bearer <token>'"),
        ("Bearer ", "not 'Bearer <token>'"),
        ("Bearer a.b.c d", "malformed JWT"),
        ("Bearer not-a-jwt", "malformed JWT"),
        ("Bearer a.b", "malformed JWT"),
        ("Bearer a.b.c", "malformed JWT"),  # segments that do not decode
        ("Bearer WzFd.e30.c2ln", "malformed JWT"),  # header is [1], not an object
        ("Bearer " + "a" * 4097, "longer than 4096"),
    ],
)
def test_a_malformed_authorization_is_refused(
    verifier: PushVerifier, authorization: str | None, reason: str
) -> None:
    assert reason in refusal(verifier, authorization)


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "ES256"])
def test_an_algorithm_other_than_rs256_is_refused(
    issuer: OidcIssuer, verifier: PushVerifier, alg: str
) -> None:
    token = issuer.token(AUDIENCE, PUSHER, alg=alg)
    assert "wrong alg" in refusal(verifier, bearer(token), token)


def test_a_token_without_kid_is_refused(issuer: OidcIssuer, verifier: PushVerifier) -> None:
    token = issuer.token(AUDIENCE, PUSHER, kid=None)
    assert "no kid" in refusal(verifier, bearer(token), token)


def test_an_unknown_kid_is_refused(issuer: OidcIssuer, verifier: PushVerifier) -> None:
    token = issuer.token(AUDIENCE, PUSHER, kid="0123abcd")
    assert "unknown signing key id" in refusal(verifier, bearer(token), token)


def test_a_token_signed_by_another_key_is_refused(
    issuer: OidcIssuer, verifier: PushVerifier
) -> None:
    token = issuer.forged_token(AUDIENCE, PUSHER)
    assert "bad signature" in refusal(verifier, bearer(token), token)


def test_a_tampered_payload_is_refused(issuer: OidcIssuer, verifier: PushVerifier) -> None:
    header, _, signature = issuer.token(AUDIENCE, PUSHER).split(".")
    _, payload, _ = issuer.token(AUDIENCE, "intruder@evil.iam.gserviceaccount.com").split(".")
    token = f"{header}.{payload}.{signature}"
    assert "bad signature" in refusal(verifier, bearer(token), token)


def test_an_expired_token_is_refused(issuer: OidcIssuer, verifier: PushVerifier) -> None:
    now = int(time.time())
    token = issuer.token(AUDIENCE, PUSHER, iat=now - 7200, exp=now - 3600)
    assert "expired" in refusal(verifier, bearer(token), token)


def test_a_token_from_the_future_is_refused(issuer: OidcIssuer, verifier: PushVerifier) -> None:
    now = int(time.time())
    token = issuer.token(AUDIENCE, PUSHER, iat=now + 600, exp=now + 4200)
    assert "future" in refusal(verifier, bearer(token), token)


@pytest.mark.parametrize("removed", [{"iat": None}, {"exp": None}])
def test_a_token_without_iat_or_exp_is_refused(
    issuer: OidcIssuer, verifier: PushVerifier, removed: dict[str, Any]
) -> None:
    token = issuer.token(AUDIENCE, PUSHER, **removed)
    assert "iat or exp" in refusal(verifier, bearer(token), token)


@pytest.mark.parametrize("aud", ["https://other.example.com/push", None, [AUDIENCE, "x"]])
def test_a_wrong_audience_is_refused(
    issuer: OidcIssuer, verifier: PushVerifier, aud: object
) -> None:
    token = issuer.token(AUDIENCE, PUSHER, aud=aud)
    assert "wrong audience" in refusal(verifier, bearer(token), token)


@pytest.mark.parametrize("iss", ["https://evil.example.com", "https://accounts.google.com/", None])
def test_a_wrong_issuer_is_refused(issuer: OidcIssuer, verifier: PushVerifier, iss: object) -> None:
    token = issuer.token(AUDIENCE, PUSHER, iss=iss)
    assert "iss" in refusal(verifier, bearer(token), token)


@pytest.mark.parametrize("email", ["other@demo-project.iam.gserviceaccount.com", None, 42])
def test_another_accounts_token_is_refused(
    issuer: OidcIssuer, verifier: PushVerifier, email: object
) -> None:
    token = issuer.token(AUDIENCE, PUSHER, email=email)
    assert "email" in refusal(verifier, bearer(token), token)


@pytest.mark.parametrize("verified", [False, "true", 1, None])
def test_an_unverified_email_is_refused(
    issuer: OidcIssuer, verifier: PushVerifier, verified: object
) -> None:
    token = issuer.token(AUDIENCE, PUSHER, email_verified=verified)
    assert "email_verified" in refusal(verifier, bearer(token), token)


def test_the_certificates_are_fetched_once_for_many_verifications(
    issuer: OidcIssuer, verifier: PushVerifier, clock: Clock
) -> None:
    for _ in range(20):
        assert verifier.verify(bearer(issuer.token(AUDIENCE, PUSHER))) == PUSHER
        clock.advance(60)  # 20 minutes in all, within max-age=3600
    assert issuer.fetches == 1


def test_concurrent_verifications_share_one_fetch(
    issuer: OidcIssuer, verifier: PushVerifier
) -> None:
    tokens = [bearer(issuer.token(AUDIENCE, PUSHER)) for _ in range(32)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        emails = list(pool.map(verifier.verify, tokens))
    assert emails == [PUSHER] * 32
    assert issuer.fetches == 1


@pytest.mark.parametrize(
    ("cache_control", "kept"),
    [
        ("public, max-age=3600", 3600),
        ("public, max-age=19856, must-revalidate, no-transform", 19856),
        ("public, max-age=5", 60),  # at least a minute
        ("public, max-age=999999999", 86400),  # at most a day
        (None, 3600),  # no header: an hour
    ],
)
def test_the_certificates_are_kept_for_their_clamped_max_age(
    issuer: OidcIssuer, verifier: PushVerifier, clock: Clock, cache_control: str | None, kept: int
) -> None:
    issuer.cache_control = cache_control
    token = bearer(issuer.token(AUDIENCE, PUSHER))
    verifier.verify(token)
    clock.advance(kept - 1)
    verifier.verify(token)
    assert issuer.fetches == 1
    clock.advance(1)
    verifier.verify(token)
    assert issuer.fetches == 2


def test_a_rotated_key_is_picked_up_by_one_refetch(
    issuer: OidcIssuer, verifier: PushVerifier, clock: Clock
) -> None:
    verifier.verify(bearer(issuer.token(AUDIENCE, PUSHER)))
    old = bearer(issuer.token(AUDIENCE, PUSHER))
    issuer.rotate()
    clock.advance(31)
    assert verifier.verify(bearer(issuer.token(AUDIENCE, PUSHER))) == PUSHER
    assert issuer.fetches == 2
    assert verifier.verify(old) == PUSHER  # the old key is still served, and now cached
    assert verifier.verify(bearer(issuer.token(AUDIENCE, PUSHER))) == PUSHER
    assert issuer.fetches == 2


def test_an_unknown_kid_refetches_at_most_once_per_30_seconds(
    issuer: OidcIssuer, verifier: PushVerifier, clock: Clock
) -> None:
    verifier.verify(bearer(issuer.token(AUDIENCE, PUSHER)))
    unknown = issuer.token(AUDIENCE, PUSHER, kid="feedface")
    for _ in range(10):
        refusal(verifier, bearer(unknown), unknown)
    assert issuer.fetches == 1  # the first fetch was under 30 s ago
    clock.advance(30)
    for _ in range(10):
        refusal(verifier, bearer(unknown), unknown)
        clock.advance(2.9)
    assert issuer.fetches == 2
    clock.advance(1)
    refusal(verifier, bearer(unknown), unknown)
    assert issuer.fetches == 3


def test_a_rotated_key_within_30_seconds_of_a_fetch_waits_for_the_next_window(
    issuer: OidcIssuer, verifier: PushVerifier, clock: Clock
) -> None:
    verifier.verify(bearer(issuer.token(AUDIENCE, PUSHER)))
    issuer.rotate()
    token = issuer.token(AUDIENCE, PUSHER)
    assert "unknown signing key id" in refusal(verifier, bearer(token), token)
    clock.advance(30)
    assert verifier.verify(bearer(token)) == PUSHER
    assert issuer.fetches == 2


def test_a_certs_server_that_is_down_makes_the_verifier_unavailable(
    issuer: OidcIssuer, verifier: PushVerifier
) -> None:
    token = issuer.token(AUDIENCE, PUSHER)
    issuer.stop()
    with pytest.raises(ProviderUnavailable) as unavailable:
        verifier.verify(bearer(token))
    assert unavailable.value.retryable
    assert unavailable.value.reference == issuer.certs_url
    assert unavailable.value.operation == "verify push"
    assert token not in str(unavailable.value)


def test_a_failing_certs_server_makes_the_verifier_unavailable(
    issuer: OidcIssuer, verifier: PushVerifier
) -> None:
    issuer.failure = 500
    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        verifier.verify(bearer(issuer.token(AUDIENCE, PUSHER)))


def test_unusable_certificates_make_the_verifier_unavailable(
    issuer: OidcIssuer, verifier: PushVerifier
) -> None:
    issuer.failure = 200  # a 200 whose body is not the certificates' JSON
    with pytest.raises(ProviderUnavailable, match="unusable certificates"):
        verifier.verify(bearer(issuer.token(AUDIENCE, PUSHER)))


def test_the_verifier_recovers_once_the_certs_server_answers_again(
    issuer: OidcIssuer, verifier: PushVerifier
) -> None:
    issuer.failure = 503
    token = bearer(issuer.token(AUDIENCE, PUSHER))
    with pytest.raises(ProviderUnavailable):
        verifier.verify(token)
    issuer.failure = None
    assert verifier.verify(token) == PUSHER
