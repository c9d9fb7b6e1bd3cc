"""Ingest body decoding and the auth decisions, as pure functions."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import pytest
import zstandard
from requests_toolbelt import MultipartEncoder  # type: ignore[import-untyped]

from bridge.emulator import bodies
from bridge.emulator.keyauth import accepts, new_key_accepted_from, touched
from bridge.emulator.records import KeyRecord
from bridge.emulator.responses import ApiError
from bridge.emulator.switches import AuthSwitches, OrgLimits

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def encoded(fields: list[tuple[str, tuple[None, bytes, str, dict[str, str]]]]) -> tuple[bytes, str]:
    """A body encoded by the same encoder the SDK uses."""
    encoder = MultipartEncoder(fields, boundary="5e0b735cf1a24782bbc7f45f5e680160")
    return encoder.to_string(), encoder.content_type


def test_parse_multipart_reads_what_the_sdks_encoder_writes():
    binary = bytes(range(256)) + b"\r\n--not-the-boundary\r\n"
    body, content_type = encoded(
        [
            ("post.1", (None, b'{"a": 1}', "application/json", {"Content-Length": "8"})),
            ("attachment.1.f", (None, binary, "image/png; length=280", {})),
        ]
    )

    parts = bodies.parse_multipart(body, bodies.boundary_of(content_type))

    assert [(p.name, p.content_type, p.data) for p in parts] == [
        ("post.1", "application/json", b'{"a": 1}'),
        ("attachment.1.f", "image/png", binary),
    ]


@pytest.mark.parametrize(
    "body",
    [b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n", b"--b\r\nno blank line", b""],
    ids=["no-name", "no-end", "empty"],
)
def test_parse_multipart_refuses_broken_framing(body: bytes):
    with pytest.raises(ValueError, match=r"."):
        bodies.parse_multipart(body, "b")


def test_boundary_may_be_quoted():
    assert bodies.boundary_of('multipart/form-data; charset=utf-8; boundary="abc"') == "abc"


@pytest.mark.parametrize("encoding", [None, "identity", "gzip", "zstd"])
def test_decode_undoes_each_supported_encoding(encoding: str | None):
    plain = b"x" * 10_000
    raw = {
        "gzip": gzip.compress(plain),
        "zstd": zstandard.ZstdCompressor().compress(plain),
    }.get(encoding or "", plain)

    assert bodies.decode(raw, encoding) == plain


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_decode_stops_at_the_size_limit(monkeypatch: pytest.MonkeyPatch, encoding: str):
    monkeypatch.setattr(bodies, "MAX_DECODED", 1000)
    plain = b"x" * 5000
    raw = gzip.compress(plain) if encoding == "gzip" else zstandard.ZstdCompressor().compress(plain)

    with pytest.raises(ApiError) as caught:
        bodies.decode(raw, encoding)

    assert caught.value.response.status == 413


def test_zstd_is_available_where_the_sdk_is_installed():
    assert bodies.zstd_available()


def record(**changes: object) -> KeyRecord:
    fields: dict[str, object] = {
        "id": "k",
        "key_hash": "h",
        "short_key": "s",
        "description": "d",
        "created_at": T0,
        "role_id": "r",
        "org_role_id": None,
        "workspace_ids": None,
    }
    return KeyRecord(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "at", "expected"),
    [
        ({}, T0, True),
        ({"deleted_at": T0}, T0 + timedelta(seconds=9), True),
        ({"deleted_at": T0}, T0 + timedelta(seconds=10), False),
        ({"revoked_at": T0}, T0 + timedelta(seconds=10), False),
        ({"expires_at": T0 + timedelta(seconds=5)}, T0 + timedelta(seconds=14), True),
        ({"expires_at": T0 + timedelta(seconds=5)}, T0 + timedelta(seconds=15), False),
    ],
    ids=["live", "deleted-cached", "deleted-gone", "revoked-gone", "expired-cached", "expired"],
)
def test_a_stopped_key_lingers_for_the_delay(
    changes: dict[str, object], at: datetime, expected: bool
):
    switches = AuthSwitches(auth_cache_delay_s=10)

    assert accepts(record(**changes), at, switches) is expected


def test_a_new_key_waits_for_the_delay_fixed_at_its_creation():
    switches = AuthSwitches(auth_cache_delay_s=10)
    new = record(accepted_from=new_key_accepted_from(T0, switches))

    assert accepts(new, T0 + timedelta(seconds=9), switches) is False
    assert accepts(new, T0 + timedelta(seconds=10), switches) is True
    assert accepts(new, T0 + timedelta(seconds=10), AuthSwitches(3600)) is True
    assert new_key_accepted_from(T0, AuthSwitches()) is None


def test_touched_moves_last_used_at_in_steps_and_never_into_the_future():
    switches = AuthSwitches(last_used_granularity_s=60)
    used = record(last_used_at=T0)

    assert touched(used, T0 + timedelta(seconds=59), switches) is used
    assert touched(used, T0 + timedelta(seconds=60), switches).last_used_at == T0 + timedelta(
        seconds=60
    )
    assert touched(used, T0 - timedelta(seconds=1), switches).last_used_at == T0 - timedelta(
        seconds=1
    )


def test_expiry_cap_refusals():
    limits = OrgLimits(max_service_key_expiry_days=30)

    assert limits.refusal("service", T0 + timedelta(days=30), T0) is None
    assert limits.refusal("pat", None, T0) is None
    assert "required" in (limits.refusal("service", None, T0) or "")
    assert "30 days" in (limits.refusal("service", T0 + timedelta(days=31), T0) or "")
