"""The compiled accelerator (gateway/rowpath) against the Python path it stands in for.

For any body it must either decline (None: the Python path then answers) or write exactly
what the Python path makes of the body: the same bulk lines byte for byte (index, id,
@timestamp, source), the same counts of documents and expired rows, the same query names.
Checked on usual bodies of every shape the row path takes, and on thousands of them
mutated field by field and byte by byte; and it must take the usual ones (a row path that
declined everything would pass the first check and save nothing).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from unittest import mock

import orjson
import pytest

from flock_gateway import accelerator, rows, validation
from flock_gateway.documents import Budget, DocumentBuilder, Tag
from flock_gateway.errors import BadRequest, PayloadTooLarge
from flock_gateway.state import StateLines

HOST = "host-1"
RECEIVED = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
NOW = int(RECEIVED.timestamp())
DAY = 86_400

# strings that need each kind of escape, and some that need none
TEXTS = [
    "macOS",
    "",
    'say "hi"',
    "back\\slash",
    "line\nbreak\ttab\r\b\f",
    "".join(map(chr, range(32))) + "\x7f",
    "é, ß, 東京, \U0001f600, \u2028",
    "</script>",
    "x" * 3000,
]


@pytest.fixture(autouse=True)
def _installed() -> None:
    assert accelerator.available(), "flock-gateway-rowpath is not installed: scripts/bootstrap.sh"


@pytest.fixture(autouse=True)
def _python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """rows.submitted without the accelerator (the tests call the accelerator directly)."""
    monkeypatch.setattr(rows, "accelerator", SimpleNamespace(parse=lambda body, wrapped: None))


def line(rng: random.Random, **fields: Any) -> dict[str, Any]:
    unix = NOW - rng.choice((0, 5, 3600, 5 * DAY, 40 * DAY, -3 * DAY, -DAY))
    row: dict[str, Any] = {
        "name": rng.choice(("apps", "os_version", "disk encryption", "é")),
        "hostIdentifier": HOST,
        "calendarTime": "Mon Nov 30 12:00:00 2026 UTC",
        "unixTime": unix,
        "epoch": rng.choice((0, 1, 2**40)),
        "counter": rng.choice((0, 7, -1)),
        "numerics": rng.choice((False, True)),
        "columns": {
            rng.choice([*TEXTS[:3], "path", "ünïcode", "a.b"]) or "k": rng.choice(TEXTS),
            "version": rng.choice(("14.1", 14, -3, True, None, 2**63 - 1)),
        },
        "action": rng.choice(("added", "removed", "snapshot")),
    }
    if rng.random() < 0.7:
        row["decorations"] = {"username": rng.choice(TEXTS), "batch": rng.randrange(99)}
    if rng.random() < 0.2:
        row["extra"] = rng.choice(("x", 1, None, False))
    row.update(fields)
    return row


def body_of(rng: random.Random) -> list[dict[str, Any]]:
    lines = [line(rng) for _ in range(rng.randint(1, 12))]
    if rng.random() < 0.3:  # identical rows: told apart by their occurrence in the ids
        lines += [dict(lines[0]) for _ in range(rng.randint(1, 3))]
    return lines


def builder(budget: Budget) -> DocumentBuilder:
    return DocumentBuilder("flock", Tag(HOST, "Laptop", "osquery"), 30, RECEIVED, budget=budget)


# what a path makes of a body: its bulk lines, documents, expired rows, query names and
# its current-state bulk lines (state.py: the accelerator's rows read back from its bulk)
Made = tuple[bytes, int, int, set[Any], bytes]


def python_path(body: bytes, budget: Budget) -> Made | None:
    names: set[Any] = set()
    sender = rows.Sender(HOST, lambda name: names.add(name) or True)
    build = builder(budget)
    state = StateLines(build, "flock-state")
    try:
        batch = rows.submitted(body, build, sender, state)
    except (BadRequest, PayloadTooLarge):
        return None
    if batch.quarantined:  # a line the Python path refuses (kept in quarantine form)
        return None
    return batch.bulk, batch.documents, batch.expired, names, state.bulk({})[0]


def compiled_path(body: bytes, budget: Budget) -> Made | None:
    """What rows makes of a body with the accelerator (its state documents written by
    the accelerator too, unless a line may tell the host's platform)."""
    tree = accelerator.parse(body, wrapped=False)
    if tree is None:
        return None
    build, names = builder(budget), set()
    state = StateLines(build, "flock-state")
    sender = rows.Sender(HOST, lambda name: names.add(name) or True)
    with mock.patch.object(rows, "accelerator", accelerator):
        batch = rows._compiled(tree, build, sender, state)
    if batch is None:
        return None
    return batch.bulk, batch.documents, build.expired, names, state.bulk({})[0]


UNLIMITED = Budget()


def agree(body: bytes, budget: Budget = UNLIMITED) -> bool:
    """Whether the compiled path took the body; fails when it wrote anything else."""
    compiled = compiled_path(body, budget)
    if compiled is not None:
        assert compiled == python_path(body, budget), body[:500]
    return compiled is not None


def test_plain_bodies_are_taken_and_written_as_the_python_path_writes_them():
    rng = random.Random(1)  # noqa: S311 - test data, seeded
    for _ in range(500):
        lines = body_of(rng)
        for text in (orjson.dumps(lines), json.dumps(lines, indent=rng.choice((None, 2))).encode()):
            assert agree(text)
    # the accelerator writes the state documents of bodies that cannot tell a platform
    lines = [line(rng, name="apps", action="added", unixTime=NOW) for _ in range(3)]
    tree = accelerator.parse(orjson.dumps(lines), wrapped=False)
    state = StateLines(builder(UNLIMITED), "flock-state")
    assert accelerator.results(tree, state.builder, HOST, None, state) is not None
    assert state.compiled_documents == 3
    assert agree(orjson.dumps(lines))
    # a body whose rows all fall out of retention: nothing to write, all counted
    old = orjson.dumps([line(rng, unixTime=NOW - 40 * DAY, name="apps")])
    assert agree(old)
    assert compiled_path(old, UNLIMITED) == (b"", 0, 1, {"apps"}, b"")


def test_escapes_and_unicode_as_orjson_writes_them():
    rng = random.Random(2)  # noqa: S311 - test data, seeded
    every = "".join(map(chr, range(0x80))) + "\u00e9\u07ff\u0800\uffff\U00010000\U0010ffff"
    for text in [every, *TEXTS]:
        body = orjson.dumps([line(rng, columns={(text or "k")[:200]: text, "v": text})])
        assert agree(body)
    # JSON escapes in the body are read, then written as orjson writes their characters
    raw = b'[{"name":"a\\/b","hostIdentifier":"host-1","calendarTime":"\\u00e9\\ud83d\\ude00",'
    raw += b'"unixTime":%d,"epoch":0,"counter":0,"numerics":false,"action":"added",' % NOW
    raw += b'"columns":{"\\u0041":"\\"\\\\\\n\\u001f"},"columns":{"b":"last wins"}}]'
    assert agree(raw)


def test_mutated_bodies_are_declined_or_written_the_same():
    rng = random.Random(3)  # noqa: S311 - test data, seeded
    values = [HOST, "HOST-1", "other", "", "12", 0, 7, -1, 1.5, 1e300, 2**63, 2**64, -(2**63),
              True, False, None, [], [HOST], {}, {"a": "1"}, {"a": {"b": 1}}, {"a": [1]},
              {"a": 1.0}, {"": "x"}, {"a..b": "x"}, {" a": "x"}, {"\x1c": "x"},
              "\ud800"]  # fmt: skip
    keys = ["hostIdentifier", "host_uuid", "name", "calendarTime", "action", "unixTime",
            "epoch", "counter", "numerics", "columns", "decorations", "snapshot", "x",
            "", " ", ".x", "x.", "a..b", "k" * 257, "\u3000", "\x1f"]  # fmt: skip
    taken = declined = 0
    for _ in range(4000):
        lines: Any = body_of(rng)
        for _ in range(rng.randint(0, 3)):
            row = rng.choice(lines)
            key = rng.choice(keys)
            if rng.random() < 0.2:
                row.pop(key, None)
            else:
                row[key] = rng.choice(values)
        if rng.random() < 0.05:
            lines = lines[0]  # one object, not an array: the original README's /submit
        try:
            body = orjson.dumps(lines)
        except TypeError:  # integers beyond 64 bits
            body = json.dumps(lines).encode()
        if rng.random() < 0.3:
            cut = rng.randrange(len(body))
            body = rng.choice(
                (body[:cut], body[:cut] + bytes([rng.randrange(256)]) + body[cut + 1 :],
                 body.replace(b'"', b"'", 1), body + b"x", body.decode().encode("utf-16"),
                 body.replace(b":0,", b":0.0,", 1), body.replace(b":0,", b":-0,", 1))
            )  # fmt: skip
        budget = Budget(
            max_docs=3 if rng.random() < 0.1 else 20_000,
            max_bytes=900 if rng.random() < 0.1 else 1 << 26,
        )
        if agree(body, budget):
            taken += 1
        else:
            declined += 1
    assert taken > 500
    assert declined > 1500


def test_only_osquerys_result_wrapper_is_read_wrapped():
    lines = body_of(random.Random(4))  # noqa: S311 - test data, seeded
    body = {"node_key": "host-1:token", "log_type": "result", "data": lines}
    parsed = accelerator.parse(orjson.dumps(body), wrapped=True)
    assert (parsed.node_key, parsed.log_type, len(parsed)) == ("host-1:token", "result", len(lines))
    assert accelerator.parse(orjson.dumps(lines), wrapped=True) is None
    assert accelerator.parse(orjson.dumps(body), wrapped=False) is None
    others = [
        {**body, "extra": 1},
        {**body, "node_key": 7},
        {**body, "data": {}},
        {**body, "data": []},
        {"node_key": "k", "log_type": "result", "lines": lines},
        {**body, "log_type": "status"},  # status lines: always the Python path's
    ]
    for other in others:
        assert accelerator.parse(orjson.dumps(other), wrapped=True) is None, other


def test_lines_of_another_host_are_left_to_the_python_path():
    lines = body_of(random.Random(5))  # noqa: S311 - test data, seeded
    parsed = accelerator.parse(orjson.dumps(lines), wrapped=False)
    assert accelerator.results(parsed, builder(UNLIMITED), "host-2", None) is None
    assert accelerator.results(parsed, builder(UNLIMITED), HOST, None) is not None


def test_the_rules_are_validations():
    """What the accelerator checks is read from validation's definitions, not restated."""
    typed = {
        *validation.RESULT_HOST_FIELDS,
        *validation.RESULT_STRING_FIELDS,
        *validation.RESULT_INT_FIELDS,
        *validation.RESULT_OBJECT_FIELDS,
        "numerics",
        "snapshot",
    }
    assert set(accelerator.PLAIN_LINE) == typed
    rng = random.Random(6)  # noqa: S311 - test data, seeded
    wide = line(rng, columns={f"c{i}": "v" for i in range(validation.MAX_KEYS_PER_OBJECT + 1)})
    long_key = line(rng, columns={"k" * (validation.MAX_KEY_LEN + 1): "v"})
    for refused in (wide, long_key):
        assert compiled_path(orjson.dumps([refused]), UNLIMITED) is None
        assert python_path(orjson.dumps([refused]), UNLIMITED) is None
