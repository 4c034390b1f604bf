"""Storage behaviour against the real node: templates, quarantine of rows the mapping
refuses (so nothing acknowledged is lost and an agent never loops), field-count bound."""

import json

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


def test_conflicting_types_are_quarantined_not_lost(client, es, prefix):
    token = register(client, HOST)
    first = osquery_line(HOST, extra={"a": "text"})
    assert submit(client, HOST, token, [first]).status_code == 200
    # same field, now a string where an object was mapped: the mapping refuses it
    clash = osquery_line(HOST, name="other", extra="plain string")
    batch = [clash, osquery_line(HOST, name="fine")]
    res = submit(client, HOST, token, batch)
    assert res.status_code == 200
    assert json.loads(res.data)["stored_count"] == 2
    hits = stored(es, prefix, query={"exists": {"field": "flock.quarantine_reason"}})
    assert len(hits) == 1
    src = hits[0]["_source"]
    assert src["flock"]["raw"]["extra"] == "plain string"
    assert src["flock"]["raw"]["columns"] == clash["columns"]
    assert src["name"] == "other"
    assert src["flock"]["username"] == HOST
    assert (
        "mapper" in src["flock"]["quarantine_reason"]
        or "object" in src["flock"]["quarantine_reason"]
    )
    # re-sending the same batch stores nothing twice
    res = submit(client, HOST, token, batch)
    assert res.status_code == 200
    assert len(stored(es, prefix)) == 3


def test_field_explosion_is_bounded(client, es, prefix):
    token = register(client, HOST)
    wide = osquery_line(HOST, columns={f"c{i}": "v" for i in range(900)})
    wider = osquery_line(HOST, name="wider", columns={f"d{i}": "v" for i in range(900)})
    wider3 = osquery_line(HOST, name="wider3", columns={f"e{i}": "v" for i in range(900)})
    res = submit(client, HOST, token, [wide, wider, wider3])
    assert res.status_code == 200
    hits = stored(es, prefix)
    assert len(hits) == 3
    quarantined = [h for h in hits if "quarantine_reason" in h["_source"]["flock"]]
    assert quarantined  # the total_fields limit stopped the mapping from growing
    index = hits[0]["_index"]
    mapping = es.indices.get_mapping(index=index)[index]["mappings"]
    assert len(json.dumps(mapping)) < 500_000
