"""Storage behaviour against the real node: templates, quarantine of rows the mapping
refuses (so nothing acknowledged is lost and an agent never loops), field-count bound."""

import json
import time
from datetime import UTC, datetime

from flock_gateway.storage.templates import load_templates, setup_storage

from .helpers import osquery_line, register, stored, submit

HOST = "host-1"


def test_setup_storage_is_idempotent(es, names):
    first = setup_storage(es, names)
    assert first["changed"] is True
    assert set(first["templates"].values()) == {"created"}
    assert first["registry_index"] == "created"
    again = setup_storage(es, names)
    assert again["changed"] is False
    assert set(again["templates"].values()) == {"unchanged"}
    for tpl in load_templates(names):
        got = es.indices.get_index_template(name=tpl.name)["index_templates"][0]
        assert got["index_template"]["index_patterns"] == tpl.body["index_patterns"]
        assert all(p.startswith(names.prefix + "-") for p in tpl.body["index_patterns"])


def test_template_upgrade_is_reported(es, names):
    setup_storage(es, names)
    (tpl,) = [t for t in load_templates(names) if t.name.endswith("-results")]
    es.indices.put_index_template(
        name=tpl.name, index_patterns=tpl.body["index_patterns"], meta={"flock_sha256": "old"}
    )
    report = setup_storage(es, names)
    assert report["changed"] is True
    assert report["templates"][tpl.name] == "updated"


def test_refused_rows_are_quarantined_not_lost(client, es, prefix):
    token = register(client, HOST)
    # twig_id is a keyword in the template: an object there is refused by the mapping
    events = [
        {"type": "enable_twig", "timestamp": int(time.time() * 1000), "twig_id": {"a": 1}},
        {"type": "server_enabled", "timestamp": int(time.time() * 1000)},
    ]
    res = submit(client, HOST, token, events, path="/submit_flock_logs")
    assert res.status_code == 200, res.data
    assert json.loads(res.data)["stored_count"] == 2
    hits = stored(es, prefix, "agent-logs", query={"exists": {"field": "flock.quarantine_reason"}})
    assert len(hits) == 1
    src = hits[0]["_source"]
    assert set(src) == {"@timestamp", "flock"}
    assert json.loads(src["flock"]["raw_json"]) == events[0]
    assert src["flock"]["username"] == HOST
    assert "parsing" in src["flock"]["quarantine_reason"]
    # re-sending the same batch stores nothing twice
    res = submit(client, HOST, token, events, path="/submit_flock_logs")
    assert res.status_code == 200
    assert len(stored(es, prefix, "agent-logs")) == 2


def test_one_agents_columns_do_not_change_anothers_rows(client, es, prefix):
    """Thousands of new column names from one agent leave the mapping as the template
    made it: another agent's rows that day are stored normally and stay searchable."""
    noisy, quiet = "noisy-1", "quiet-1"
    noisy_token, quiet_token = register(client, noisy), register(client, quiet)
    assert submit(client, quiet, quiet_token, [osquery_line(quiet)]).status_code == 200
    (first,) = stored(es, prefix)
    index = first["_index"]
    before = es.indices.get_mapping(index=index)[index]["mappings"]
    flood = [
        osquery_line(noisy, name=f"q{n}", columns={f"c{n}_{i}": "v" for i in range(999)})
        for n in range(6)
    ]
    flood.append(osquery_line(noisy, decorations={f"d{i}": i for i in range(999)}))
    res = submit(client, noisy, noisy_token, flood)
    assert res.status_code == 200, res.data
    assert json.loads(res.data)["stored_count"] == 7
    after = es.indices.get_mapping(index=index)[index]["mappings"]
    assert after == before
    line = osquery_line(quiet, columns={"name": "macOS", "version": "15.0"})
    assert submit(client, quiet, quiet_token, [line]).status_code == 200
    found = stored(
        es,
        prefix,
        query={
            "bool": {
                "filter": [
                    {"term": {"flock.username": quiet}},
                    {"term": {"data.columns.version": "15.0"}},
                ]
            }
        },
    )
    assert len(found) == 1
    assert "quarantine_reason" not in found[0]["_source"]["flock"]
    assert stored(es, prefix, query={"exists": {"field": "flock.quarantine_reason"}}) == []
    # the noisy rows are kept whole, only their unknown columns are not indexed
    noisy_rows = stored(es, prefix, query={"term": {"flock.username": noisy}})
    assert len(noisy_rows) == 7
    assert sum(len(h["_source"]["data"]["columns"]) for h in noisy_rows) >= 6 * 999


def test_weekly_indices_are_mapped_by_the_template_and_pruned(es_url, es, prefix, storage):
    from flock_gateway.app import create_app
    from flock_gateway.config import Config
    from flock_gateway.indices import IndexNames
    from flock_gateway.storage.retention import prune

    cfg = Config(es_hosts=(es_url,), index_prefix=prefix, index_granularity="week")
    client = create_app(cfg).test_client()
    token = register(client, HOST)
    line = osquery_line(HOST)
    assert submit(client, HOST, token, [line]).status_code == 200
    (hit,) = stored(es, prefix)
    year, week, _ = datetime.fromtimestamp(line["unixTime"], tz=UTC).isocalendar()
    assert hit["_index"] == f"{prefix}-results-{year}.w{week:02d}"
    mapping = es.indices.get_mapping(index=hit["_index"])[hit["_index"]]["mappings"]
    assert mapping["dynamic"] == "false"
    es.indices.create(index=f"{prefix}-results-2020.w01")
    report = prune(es, IndexNames(prefix), 90)
    assert report["deleted"] == [f"{prefix}-results-2020.w01"]
