"""The fields the gateway owns (flock_gateway.fields): what it writes is what every daily
index template maps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flock_gateway import fields
from flock_gateway.documents import DocumentBuilder, Tag
from flock_gateway.indices import DAILY_KINDS, IndexNames
from flock_gateway.storage.results import _quarantine
from flock_gateway.storage.templates import load_templates

NAMES = IndexNames()


def daily_templates():
    by_name = {t.name: t for t in load_templates(NAMES)}
    return {kind: by_name[f"{NAMES.prefix}-{kind}"] for kind in DAILY_KINDS}


def written_gateway_fields():
    builder = DocumentBuilder(
        NAMES.prefix,
        Tag("host-1", "Alice", fields.OSQUERY),
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
