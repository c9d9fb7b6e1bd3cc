"""Request bodies of the ingest routes: ``Content-Encoding`` and ``multipart/form-data``.

The SDK sends ``POST /runs/multipart`` either plain or as one zstd frame
(``Content-Encoding: zstd``) when ``/info`` advertises ``zstd_compression_enabled``;
the docs allow gzip as well. zstd needs the ``zstandard`` package, which the
``langsmith`` SDK depends on but this project does not: without it the emulator does
not advertise compression (so the SDK never sends it) and answers a zstd body 415.
"""

from __future__ import annotations

import importlib.util
import io
import zlib
from dataclasses import dataclass
from functools import cache

from bridge.emulator.responses import ApiError, detail

MAX_DECODED = 64 << 20  # far above the 20 MiB batch size the emulator advertises


@cache
def zstd_available() -> bool:
    """Whether zstd bodies can be decoded here (the ``zstandard`` package is installed)."""
    return importlib.util.find_spec("zstandard") is not None


def _too_large() -> ApiError:
    return detail(413, f"Decoded request body exceeds {MAX_DECODED} bytes")


def _gunzip(raw: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    data = inflater.decompress(raw, MAX_DECODED)
    if inflater.unconsumed_tail:
        raise _too_large()
    return data


def _unzstd(raw: bytes) -> bytes:
    try:
        import zstandard  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise detail(415, "Content-Encoding zstd needs the zstandard package") from exc
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True)
    data: bytes = reader.read(MAX_DECODED + 1)
    while len(data) <= MAX_DECODED:
        more: bytes = reader.read(MAX_DECODED + 1 - len(data))
        if not more:
            return data
        data += more
    raise _too_large()


def decode(raw: bytes, content_encoding: str | None) -> bytes:
    """The body with its ``Content-Encoding`` (none, identity, gzip or zstd) undone.

    Raises:
        ApiError: 415 for another encoding, 400 for a corrupt one, 413 past the limit.
    """
    encoding = (content_encoding or "identity").strip().lower()
    try:
        if encoding == "identity":
            return raw
        if encoding in ("gzip", "x-gzip"):
            return _gunzip(raw)
        if encoding == "zstd":
            return _unzstd(raw)
    except ApiError:
        raise
    except Exception as exc:  # zlib.error, zstandard.ZstdError
        raise detail(400, f"Request body is not valid {encoding}") from exc
    raise detail(415, f"Unsupported Content-Encoding {encoding!r}")


@dataclass(frozen=True)
class Part:
    """One part of a ``multipart/form-data`` body.

    Attributes:
        name: The ``name`` of its ``Content-Disposition``.
        content_type: Its ``Content-Type`` (without parameters), lower-cased.
        data: Its bytes.
    """

    name: str
    content_type: str
    data: bytes


def boundary_of(content_type: str | None) -> str:
    """The boundary of a ``multipart/form-data`` content type.

    Raises:
        ApiError: 415 for any other content type or a missing boundary.
    """
    media, _, params = (content_type or "").partition(";")
    if media.strip().lower() != "multipart/form-data":
        raise detail(415, "Content-Type must be multipart/form-data")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "boundary" and value.strip().strip('"'):
            return value.strip().strip('"')
    raise detail(415, "multipart/form-data needs a boundary")


def _header_value(headers: dict[str, str], name: str) -> str:
    return headers.get(name, "").strip()


def _disposition_name(disposition: str) -> str | None:
    for param in disposition.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "name":
            return value.strip().strip('"')
    return None


def _part(segment: bytes) -> Part:
    head, sep, data = segment.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("a part has no blank line after its headers")
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n"):
        header, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"malformed part header {line[:40]!r}")
        headers[header.strip().lower()] = value.strip()
    name = _disposition_name(_header_value(headers, "content-disposition"))
    if not name:
        raise ValueError("a part has no Content-Disposition name")
    media = _header_value(headers, "content-type").split(";")[0].strip().lower()
    return Part(name, media, data)


def parse_multipart(body: bytes, boundary: str) -> list[Part]:
    """The parts of a ``multipart/form-data`` body, in order (RFC 7578).

    Raises:
        ValueError: The framing is broken (no closing delimiter, a part without headers).
    """
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    segments = (b"\r\n" + body).split(delimiter)
    parts: list[Part] = []
    for segment in segments[1:]:
        if segment.startswith(b"--"):
            return parts
        if not segment.startswith(b"\r\n"):
            raise ValueError("a delimiter is not followed by a line break")
        parts.append(_part(segment[2:]))
    raise ValueError("the body has no closing delimiter")
