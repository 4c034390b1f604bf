"""Reading request bodies within limits (size, optional gzip)."""

from __future__ import annotations

import zlib

from flask import request

from ..errors import BadRequest, PayloadTooLarge
from ..services import services


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
    max_out = services().config.max_decompressed_bytes
    wbits = 47 if encoding != "deflate" else 15  # 47 = auto-detect zlib/gzip header
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, max_out + 1)
        if len(out) > max_out or inflater.unconsumed_tail:
            raise PayloadTooLarge("Decompressed request body is too large")
        out += inflater.flush(max_out + 1 - len(out))
    except zlib.error:
        raise BadRequest("Request body is not valid compressed data") from None
    if len(out) > max_out:
        raise PayloadTooLarge("Decompressed request body is too large")
    if not inflater.eof:
        raise BadRequest("Request body is truncated compressed data")
    return out
