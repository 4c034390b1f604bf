"""The kibana role's filters, on the repository's own dashboards file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roles.kibana.filter_plugins import kibana

NDJSON = Path(__file__).parents[3] / "dashboards" / "flock-dashboards.ndjson"


@pytest.fixture(scope="module")
def ndjson() -> str:
    return NDJSON.read_text(encoding="utf-8")


def _objects(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_default_prefix_leaves_the_file_as_it_is(ndjson):
    assert kibana.dashboards_for_prefix(ndjson, "flock") == ndjson


def test_data_views_follow_the_prefix(ndjson):
    before = _objects(ndjson)
    after = _objects(kibana.dashboards_for_prefix(ndjson, "fleet"))
    views = [o for o in after if o["type"] == "index-pattern"]
    assert views, "the dashboards file has no data view"
    for view in views:
        assert view["attributes"]["title"].startswith("fleet-"), view["attributes"]["title"]
    # The same objects, ids and references: only the pattern moved.
    assert [(o["type"], o["id"]) for o in after] == [(o["type"], o["id"]) for o in before]
    for old, new in zip(before, after, strict=True):
        if old["type"] != "index-pattern":
            assert old == new
        else:
            old_title = old["attributes"].pop("title")
            new_title = new["attributes"].pop("title")
            assert new_title == "fleet-" + old_title.removeprefix("flock-")
            assert old == new


def test_other_lines_are_kept_byte_for_byte(ndjson):
    before = ndjson.splitlines(keepends=True)
    after = kibana.dashboards_for_prefix(ndjson, "fleet").splitlines(keepends=True)
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert changed == [
        i for i, line in enumerate(before) if json.loads(line)["type"] == "index-pattern"
    ]


def test_a_pattern_of_another_prefix_is_left_alone():
    line = json.dumps({"type": "index-pattern", "id": "x", "attributes": {"title": "logs-*"}})
    assert kibana.dashboards_for_prefix(line + "\n", "fleet") == line + "\n"


def test_filter_is_registered_under_its_role_prefix():
    filters = kibana.FilterModule().filters()
    assert filters["kibana_dashboards_for_prefix"] is kibana.dashboards_for_prefix
