"""Reading request bodies within limits (size, optional gzip)."""

from __future__ import annotations

import zlib

from flask import request

from ..documents import Budget
from ..errors import BadRequest, PayloadTooLarge
from ..services import services

# Client data may expand (snapshot rows repeat their line's fields) to this many times
# the body's size, plus a fixed allowance for small bodies: memory per request stays
# proportional to what the client sent.
EXPANSION_FACTOR = 8
EXPANSION_ALLOWANCE = 1024 * 1024


def budget(body_size: int) -> Budget:
    config = services().config
    max_bytes = min(
        config.max_decompressed_bytes, EXPANSION_FACTOR * body_size + EXPANSION_ALLOWANCE
    )
    return Budget(max_docs=config.max_rows_per_request, max_bytes=max_bytes)


def read_body() -> bytes:
    """The raw body; gzip (Content-Encoding: gzip) is inflated with a bounded output.

    The compressed size is bounded by MAX_CONTENT_LENGTH (werkzeug answers 413); the
    inflated size by ``max_decompressed_bytes``, checked while inflating so a gzip bomb
    never gets expanded in memory.
    """
    raw = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A chunked body (no Content-Length) is cut off at the limit by the stream
        # wrapper without an error: treat reaching the limit as exceeding it.
        raise PayloadTooLarge("Request body is too large")
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding == "" and raw[:2] == b"\x1f\x8b":
        encoding = "gzip"  # gzip magic without the header (JSON never starts so)
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(f"Unsupported Content-Encoding {encoding[:32]!r}")
    return inflate(raw, encoding, services().config.max_decompressed_bytes)


def inflate(raw: bytes, encoding: str, max_out: int) -> bytes:
    """Inflate every gzip member (``gzip(a) + gzip(b)`` is ``a + b``, as gunzip reads it),
    or one zlib stream for ``deflate``; anything after the data is refused, never
    silently dropped, so nothing the client sent is acknowledged without being read."""
    wbits = 47 if encoding != "deflate" else 15  # 47 = auto-detect zlib/gzip header
    parts: list[bytes] = []
    size = 0
    rest = raw
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(rest, max_out + 1 - size)
            if size + len(out) > max_out or inflater.unconsumed_tail:
                raise PayloadTooLarge("Decompressed request body is too large")
            out += inflater.flush(max_out + 1 - size - len(out))
        except zlib.error:
            raise BadRequest("Request body is not valid compressed data") from None
        size += len(out)
        if size > max_out:
            raise PayloadTooLarge("Decompressed request body is too large")
        if not inflater.eof:
            raise BadRequest("Request body is truncated compressed data")
        parts.append(out)
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)
        if encoding == "deflate" or rest[:2] != b"\x1f\x8b":
            raise BadRequest("Request body has trailing bytes after the compressed data")
