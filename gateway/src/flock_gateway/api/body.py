"""Reading request bodies within limits (size, optional gzip)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from flask import request

from ..documents import Budget
from ..errors import BadRequest, PayloadTooLarge
from ..services import services

# Client data may expand (snapshot rows repeat their line's fields) to this many times
# the body's size, plus a fixed allowance for small bodies: memory per request stays
# proportional to what the client sent.
EXPANSION_FACTOR = 8
EXPANSION_ALLOWANCE = 1024 * 1024

# gzip members one body may hold: clients send one; each member costs a decompressor.
MAX_GZIP_MEMBERS = 64
# compressed bytes handed to zlib at a time, and inflated bytes taken out at a time
_IN_CHUNK = 64 * 1024
_OUT_CHUNK = 256 * 1024


def budget(body_size: int) -> Budget:
    config = services().config
    max_bytes = min(
        config.max_decompressed_bytes, EXPANSION_FACTOR * body_size + EXPANSION_ALLOWANCE
    )
    return Budget(max_docs=config.max_rows_per_request, max_bytes=max_bytes)


class Body:
    """A request body; a compressed one is inflated on demand, a step at a time, so a
    caller can look at its start or end before paying for all of it. What :meth:`head`
    inflated is kept, and :meth:`whole` goes on from there."""

    def __init__(self, raw: bytes, encoding: str, max_out: int) -> None:
        self.raw = raw
        self._encoding = encoding
        self._max_out = max_out
        self._whole: bytes | None = raw if encoding == "" else None
        self._parts: list[bytes] = []
        self._rest: Iterator[bytes] = iter(()) if encoding == "" else self._inflate()

    @property
    def compressed(self) -> bool:
        return self._whole is None

    def _inflate(self) -> Iterator[bytes]:
        return inflated(self.raw, self._encoding, self._max_out)

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes (all of it when shorter), inflating no further."""
        if self._whole is not None:
            return self._whole[:size]
        got = sum(map(len, self._parts))
        try:
            while got < size:
                chunk = next(self._rest, None)
                if chunk is None:
                    break
                self._parts.append(chunk)
                got += len(chunk)
        except Exception:
            # a refused body stays refused: whole() must not return the part before it
            self._rest = self._inflate()
            self._parts = []
            raise
        return b"".join(self._parts)[:size]

    def tail(self, size: int) -> bytes:
        """The last ``size`` bytes; a compressed body is inflated to its end (every limit
        applies) keeping only them."""
        if self._whole is not None:
            return self._whole[-size:]
        kept = b""
        for chunk in self._inflate():
            kept = (kept + chunk)[-size:]
        return kept

    def whole(self) -> bytes:
        if self._whole is None:
            self._whole = b"".join([*self._parts, *self._rest])
            self._parts = []
        return self._whole


def request_body(*, small: bool = False) -> Body:
    """The request's body. ``small``: an endpoint that needs a few KB (register, enroll,
    config): compressed and inflated, it may not exceed ``max_small_body_bytes``, and no
    more than that is read or inflated.

    The compressed size is bounded by the request's max_content_length (werkzeug answers
    413 from Content-Length alone); the inflated size by ``max_decompressed_bytes``,
    checked while inflating so a gzip bomb never gets expanded in memory.
    """
    config = services().config
    max_out = config.max_decompressed_bytes
    if small:
        limit_body(config.max_small_body_bytes)
        max_out = min(max_out, config.max_small_body_bytes)
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
        return Body(raw, "", max_out)
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(f"Unsupported Content-Encoding {encoding[:32]!r}")
    return Body(raw, encoding, max_out)


def limit_body(max_bytes: int) -> None:
    """Refuse (413) this request's body beyond ``max_bytes``, before reading it."""
    if request.max_content_length is None or max_bytes < request.max_content_length:
        request.max_content_length = max_bytes


def read_body() -> bytes:
    """The raw body; gzip (Content-Encoding: gzip) is inflated with a bounded output."""
    return request_body().whole()


def inflate(raw: bytes, encoding: str, max_out: int) -> bytes:
    """:func:`inflated`, joined."""
    return b"".join(inflated(raw, encoding, max_out))


def inflated(raw: bytes, encoding: str, max_out: int) -> Iterator[bytes]:
    """Inflate every gzip member (``gzip(a) + gzip(b)`` is ``a + b``, as gunzip reads it;
    at most MAX_GZIP_MEMBERS), or one zlib stream for ``deflate``, in chunks; anything
    after the data is refused, never silently dropped, so nothing the client sent is
    acknowledged without being read. Never holds more than a chunk of input or output
    beyond what the caller keeps, and never inflates past ``max_out``."""
    wbits = 47 if encoding != "deflate" else 15  # 47 = auto-detect zlib/gzip header
    view = memoryview(raw)
    end = len(raw)
    pos = 0
    size = 0
    members = 0
    while True:
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise BadRequest(f"Request body has more than {MAX_GZIP_MEMBERS} gzip members")
        inflater = zlib.decompressobj(wbits)
        while not inflater.eof:
            data = inflater.unconsumed_tail
            if not data and pos < end:
                data = view[pos : pos + _IN_CHUNK]
                pos += len(data)
            try:
                # no more input: only what zlib still holds comes out
                out = inflater.decompress(data, _OUT_CHUNK)
            except zlib.error:
                raise BadRequest("Request body is not valid compressed data") from None
            if not out and not data:
                raise BadRequest("Request body is truncated compressed data")
            size += len(out)
            if size > max_out:
                raise PayloadTooLarge("Decompressed request body is too large")
            if out:
                yield out
        pos -= len(inflater.unused_data)
        if pos >= end:
            return
        if encoding == "deflate" or raw[pos : pos + 2] != b"\x1f\x8b":
            raise BadRequest("Request body has trailing bytes after the compressed data")
