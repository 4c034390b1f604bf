"""The bulk request body, written directly as NDJSON bytes.

Each document becomes its two lines (``create`` action, source) once, in the request that
owns it (mostly by the document builder, as it makes the document); a shared bulk is then
a join of those byte strings. The output is what the Elasticsearch client's own
serialiser would send (compact separators, UTF-8, no ASCII escaping), produced by orjson;
values orjson cannot encode (integers beyond 64 bits, which JSON allows and agents may
send) fall back to the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson

from ..documents import Doc, action_head


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        )


def doc_lines(doc: Doc) -> bytes:
    """The ``create`` action and the source of a document the builder did not write out
    (``doc.lines`` is None), each ending in a newline."""
    return b"%b%b}}\n%b\n" % (action_head(doc.index), orjson.dumps(doc.id), dumps(doc.source))


def body(docs: list[Doc]) -> bytes:
    return b"".join([doc.lines if doc.lines is not None else doc_lines(doc) for doc in docs])


def docs_at(lines: bytes, positions: Iterable[int]) -> list[Doc]:
    """The documents at ``positions`` of a bulk body written by :func:`body` or the
    compiled accelerator, read back. Bulk lines are the one form a document takes on its
    way to storage; only the rare answer that refuses one needs it as an object again
    (for its quarantine copy). The standard library reads them, keeping integers beyond
    64 bits exact."""
    parts = lines.split(b"\n")
    out = []
    for position in positions:
        head = json.loads(parts[2 * position])["create"]
        out.append(Doc(head["_index"], head["_id"], json.loads(parts[2 * position + 1])))
    return out
