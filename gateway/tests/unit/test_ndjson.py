"""The NDJSON bulk body the gateway writes itself, against the Elasticsearch client's own
serialiser (what the gateway sent before it wrote bodies directly)."""

import json

import pytest
from elasticsearch.serializer import NdjsonSerializer

from flock_gateway.documents import Doc
from flock_gateway.storage import ndjson

SOURCES = [
    {"name": "q", "columns": {"path": "/Applications/Café.app", "user": "ユーザー"}},
    {"emoji": "🦆 duck", "quote": 'say "hi"\\', "ctl": "tab\there\nnewline\x00\x1f\x7f"},
    {"big": 2**64 + 1, "neg": -(2**70), "max": 2**63 - 1, "min": -(2**63)},
    {"f": 1.5, "tiny": 1e-7, "huge": 1e300, "t": True, "n": None, "list": [1, "a", {"b": []}]},
    {"sep": "\u2028\u2029", "empty": {}, "nested": {"a": {"b": {"c": [1, [2, [3]]]}}}},
]


def client_body(docs):
    ops = []
    for d in docs:
        ops += [{"create": {"_index": d.index, "_id": d.id}}, d.source]
    return NdjsonSerializer().dumps(ops)


@pytest.mark.parametrize("source", SOURCES)
def test_same_documents_as_the_client(source):
    docs = [Doc("flock-results-2026.11.30", "a" * 40, source)]
    ours = ndjson.body(docs)
    theirs = client_body(docs)
    assert ours.endswith(b"\n")
    assert [json.loads(x) for x in ours.splitlines()] == [
        json.loads(x) for x in theirs.splitlines()
    ]


@pytest.mark.parametrize(
    "source", [s for s in SOURCES if not any(isinstance(v, float) for v in s.values())]
)
def test_byte_identical_without_floats(source):
    # floats may be spelt differently (1e-07 / 1e-7); everything else is byte for byte
    docs = [Doc("i", "x", source), Doc("j", "y", {"k": 1})]
    assert ndjson.body(docs) == client_body(docs)


def test_big_integers_keep_every_digit():
    line = ndjson.dumps({"v": 123456789012345678901234567890})
    assert line == b'{"v":123456789012345678901234567890}'


def test_non_ascii_is_utf8_not_escaped():
    assert ndjson.dumps({"v": "é✓🦆"}) == '{"v":"é✓🦆"}'.encode()


def test_two_lines_per_document():
    body = ndjson.body([Doc("i1", "a", {"x": "1\n2"}), Doc("i2", "b", {"y": 2})])
    lines = body.split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(x) for x in lines[:-1]] == [
        {"create": {"_index": "i1", "_id": "a"}},
        {"x": "1\n2"},
        {"create": {"_index": "i2", "_id": "b"}},
        {"y": 2},
    ]


def test_builder_documents_carry_their_source_line():
    """The builder hands plain rows' source lines over ready (the canonical row spliced
    in): what the body holds must still be each document's source, whatever the row."""
    from datetime import UTC, datetime

    from flock_gateway.documents import DocumentBuilder, Tag

    rows = [{"name": "q", "hostIdentifier": "h", "unixTime": 1795766400, "columns": s}
            for s in SOURCES]  # fmt: skip
    builder = DocumentBuilder("flock", Tag("h", "Ann \"A\" é", "flock-agent"), 90,
                              received=datetime(2026, 11, 27, tzinfo=UTC))  # fmt: skip
    docs = builder.results(rows) + builder.agent_logs([{"type": "t", "timestamp": 1, "v": 2**65}])
    assert all(d.lines is not None for d in docs)
    lines = ndjson.body(docs).split(b"\n")[:-1]  # (not splitlines: U+2028 is no line end)
    assert [json.loads(x) for x in lines[1::2]] == [d.source for d in docs]
    assert [json.loads(x)["create"]["_id"] for x in lines[0::2]] == [d.id for d in docs]


def test_documents_read_back_from_their_lines():
    # what a refused document's quarantine copy is made from
    docs = [Doc(f"flock-results-2026.11.{i:02d}", f"{i:040x}", s) for i, s in enumerate(SOURCES)]
    every = range(len(docs))
    assert ndjson.docs_at(ndjson.body(docs), every) == [
        (d.index, d.id, d.source, None) for d in docs
    ]
    assert ndjson.docs_at(ndjson.body(docs), [2]) == [
        (docs[2].index, docs[2].id, docs[2].source, None)
    ]
