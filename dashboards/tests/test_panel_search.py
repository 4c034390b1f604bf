"""The translator the dashboards-truth test runs panels with: KQL as Kibana compiles it, and
a refusal (never a guess) for what it does not translate."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from dashboards.tests.kql import KqlUnsupported, to_es_query
from dashboards.tests.panel_search import Unsupported, build, panels

NDJSON = Path(__file__).resolve().parents[1] / "flock-dashboards.ndjson"


@pytest.fixture(scope="module")
def objects():
    return [json.loads(line) for line in NDJSON.read_text(encoding="utf-8").splitlines() if line]


def one(query):
    return {"bool": {"should": [query], "minimum_should_match": 1}}


@pytest.mark.parametrize(
    ("kql", "dsl"),
    [
        ("", {"match_all": {}}),
        ("flock.kind : row", one({"match": {"flock.kind": "row"}})),
        (
            'data.columns.remote_login : "1"',
            one({"match_phrase": {"data.columns.remote_login": "1"}}),
        ),
        (
            "data.columns.name : Chrom*",
            one({"wildcard": {"data.columns.name": {"value": "Chrom*"}}}),
        ),
        ("flock.platform : *", one({"exists": {"field": "flock.platform"}})),
        ('flock.last_seen < "now-7d"', {"range": {"flock.last_seen": {"lt": "now-7d"}}}),
        ("a >= 3", {"range": {"a": {"gte": "3"}}}),
        (
            "flock.kind : row and flock.present : true",
            {
                "bool": {
                    "filter": [
                        one({"match": {"flock.kind": "row"}}),
                        one({"match": {"flock.present": "true"}}),
                    ]
                }
            },
        ),
        # "and" binds tighter than "or"; "not" tighter than both; KQL keywords in any case
        (
            "a : 1 OR b : 2 and NOT c : 3",
            {
                "bool": {
                    "should": [
                        one({"match": {"a": "1"}}),
                        {
                            "bool": {
                                "filter": [
                                    one({"match": {"b": "2"}}),
                                    {"bool": {"must_not": one({"match": {"c": "3"}})}},
                                ]
                            }
                        },
                    ],
                    "minimum_should_match": 1,
                }
            },
        ),
        (
            "(a : 1 or b : 2) and c : 3",
            {
                "bool": {
                    "filter": [
                        {
                            "bool": {
                                "should": [one({"match": {"a": "1"}}), one({"match": {"b": "2"}})],
                                "minimum_should_match": 1,
                            }
                        },
                        one({"match": {"c": "3"}}),
                    ]
                }
            },
        ),
    ],
)
def test_kql_as_kibana_compiles_it(kql, dsl):
    assert to_es_query(kql) == dsl


@pytest.mark.parametrize(
    "kql",
    ["a : (1 or 2)", "data.* : x", "a : {b : 1}", "a :", "(a : 1", "a : 1 b : 2", r"a : x\*"],
)
def test_kql_outside_the_subset_is_refused(kql):
    with pytest.raises(KqlUnsupported):
        to_es_query(kql)


def test_every_panel_of_the_file_translates(objects):
    for panel in panels(objects):
        build(panel, objects, "t0")


def test_a_panel_the_translator_cannot_run_is_refused(objects):
    (panel,) = [p for p in panels(objects) if p.vis["id"] == "flock-firewall"]
    broken = copy.deepcopy(panel.vis)
    layer = broken["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]["layer1"]
    layer["columns"]["hosts"]["operationType"] = "percentile"
    with pytest.raises(Unsupported, match="percentile"):
        build(type(panel)(panel.dashboard, broken, panel.time_range), objects, "t0")
    broken["attributes"]["state"]["query"] = {"query": "a : (1 or 2)", "language": "kuery"}
    with pytest.raises(Unsupported):
        build(type(panel)(panel.dashboard, broken, panel.time_range), objects, "t0")


def test_now_and_history_panels_search_their_data_view(objects):
    by_id = {p.vis["id"]: p for p in panels(objects)}
    now = build(by_id["flock-firewall"], objects, "t0")
    assert now.index == "t0-state"
    # no time field on the state: the time picker does not hide a host
    assert "range" not in json.dumps(now.body["query"])
    history = build(by_id["flock-fleet-firewall-turned-off"], objects, "t0")
    assert history.index == "t0-results-*"
    assert {"range": {"@timestamp": {"gte": "now-24h", "lte": "now"}}} in history.body["query"][
        "bool"
    ]["filter"]
    assert history.body["query"]["bool"]["must_not"] == [
        {"match_phrase": {"data.action": "removed"}}
    ]
