"""The bulk request body, written directly as NDJSON bytes.

Each document becomes its two lines (``create`` action, source) once, in the thread of
the request that owns it; a shared bulk is then a join of those byte strings. The output
is what the Elasticsearch client's own serialiser would send (compact separators, UTF-8,
no ASCII escaping), produced by orjson; values orjson cannot encode (integers beyond 64
bits, which JSON allows and agents may send) fall back to the standard library.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from ..documents import Doc


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        )


def _action_head(index: str) -> bytes:
    return b'{"create":{"_index":%b,"_id":' % orjson.dumps(index)


def doc_lines(doc: Doc, head: bytes | None = None) -> bytes:
    """The ``create`` action and the source of one document, each ending in a newline."""
    if head is None:
        head = _action_head(doc.index)
    return b"%b%b}}\n%b\n" % (head, orjson.dumps(doc.id), dumps(doc.source))


def body(docs: list[Doc]) -> bytes:
    # the documents of a request share one or two indices: each action's start built once
    heads: dict[str, bytes] = {}
    parts = []
    line = orjson.dumps
    for doc in docs:
        head = heads.get(doc.index)
        if head is None:
            head = heads[doc.index] = _action_head(doc.index)
        try:
            source = doc.line if doc.line is not None else line(doc.source)
            parts.append(b"%b%b}}\n%b\n" % (head, line(doc.id), source))
        except TypeError:
            parts.append(doc_lines(doc, head))
    return b"".join(parts)
