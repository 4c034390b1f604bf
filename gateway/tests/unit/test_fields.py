"""The fields the gateway owns (flock_gateway.fields): what it writes is what every daily
index template maps."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from flock_gateway import fields
from flock_gateway.documents import DocumentBuilder, Tag
from flock_gateway.indices import DAILY_KINDS, IndexNames
from flock_gateway.state import StateLines, host_lines
from flock_gateway.storage.results import _quarantine
from flock_gateway.storage.templates import load_templates

NAMES = IndexNames()


def daily_templates():
    by_name = {t.name: t for t in load_templates(NAMES)}
    return {kind: by_name[f"{NAMES.prefix}-{kind}"] for kind in DAILY_KINDS}


def written_gateway_fields():
    builder = DocumentBuilder(
        NAMES.prefix,
        Tag("host-1", "Alice", fields.OSQUERY, platform="darwin", os_version="14.1"),
        90,
        received=datetime(2026, 11, 27, tzinfo=UTC),
    )
    (doc,) = builder.results([{"name": "q", "hostIdentifier": "host-1", "columns": {}}])
    quarantined = _quarantine(doc, "mapper_parsing_exception: x")
    return doc.source, set(doc.source[fields.GATEWAY]) | set(quarantined.source[fields.GATEWAY])


@pytest.mark.parametrize("kind", DAILY_KINDS)
def test_every_daily_template_maps_the_gateway_fields(kind):
    source, members = written_gateway_fields()
    props = daily_templates()[kind].body["template"]["mappings"]["properties"]
    assert set(fields.OWNED) <= set(source)
    assert props[fields.TIMESTAMP]["type"] == "date"
    assert set(props[fields.GATEWAY]["properties"]) == members
    assert props[fields.GATEWAY]["properties"][fields.NAME]["type"] == "keyword"


def test_the_state_template_maps_what_state_documents_hold():
    """Row and host documents of the current state (state.py): every gateway member they
    hold is mapped, and their data.* is mapped as in the results."""
    by_name = {t.name: t for t in load_templates(NAMES)}
    props = by_name[NAMES.state].body["template"]["mappings"]["properties"]
    results = by_name[f"{NAMES.prefix}-results"].body["template"]["mappings"]["properties"]
    assert props[fields.CLIENT] == results[fields.CLIENT]
    assert by_name[NAMES.state].body["index_patterns"] == [NAMES.state]
    builder = DocumentBuilder(
        NAMES.prefix,
        Tag("host-1", "Alice", fields.OSQUERY),
        90,
        received=datetime(2026, 11, 27, tzinfo=UTC),
    )
    state = StateLines(builder, NAMES.state, platform="linux", os_version="24.04")
    line = {"name": "q", "action": "added", "unixTime": 1_795_000_000, "columns": {}}
    state.differential(line, b"{}")
    rows = [orjson.loads(part) for part in state.bulk({})[0].splitlines()[1::2]]
    host = orjson.loads(
        host_lines(
            NAMES.state,
            username="host-1",
            name="Alice",
            source=fields.OSQUERY,
            last_seen="2026-11-27T00:00:00.000Z",
            seen_ms=1,
            platform="linux",
            os_version="24.04",
        ).splitlines()[1]
    )
    members = set(props[fields.GATEWAY]["properties"])
    written = {m for doc in [*rows, host] for m in doc[fields.GATEWAY]}
    assert written <= members
    assert {fields.KIND, fields.PRESENT, fields.LAST_SEEN, fields.PLATFORM} <= written
    assert props[fields.GATEWAY]["properties"][fields.PRESENT]["type"] == "boolean"
    assert props[fields.GATEWAY]["properties"][fields.LAST_SEEN]["type"] == "date"
