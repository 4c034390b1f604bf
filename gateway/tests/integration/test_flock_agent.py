"""Requests exactly as Flock agent's FlockApiClient makes them.

flock_agent/daemon/api_client.py: ``requests.request(method, url, json=data,
headers={"User-Agent": "Flock Agent <version>", ["Authorization": "Basic ..."]})``;
401 -> PermissionDenied; any other non-200 -> BadStatusCode; a 200 body must be JSON with
``error`` (and ``error_msg`` when true). Result lines come from osqueryd's results log
(host_identifier=uuid, a ``username`` decorator); flock logs are
``{"type", "twig_ids", "timestamp" (ms)}``.
"""

import json
import time

from .helpers import basic, osquery_line, stored

UA = {"User-Agent": "Flock Agent 0.1.4"}
UUID = "5A1F4E2B-3C4D-5E6F-7A8B-9C0D1E2F3A4B"


def agent_request(client, method, path, token=None, data=None):
    headers = dict(UA)
    if token is not None:
        headers.update(basic(UUID, token))
    kwargs = {"headers": headers}
    if data is not None:
        kwargs["json"] = data
    res = client.open(path, method=method.upper(), **kwargs)
    if res.status_code == 200 and res.data:
        obj = json.loads(res.data)
        assert "error" in obj
        if obj["error"]:
            assert "error_msg" in obj
    return res


def test_agent_lifecycle(client, es, prefix):
    res = agent_request(client, "post", "/register", data={"username": UUID, "name": "Nick Fury"})
    assert res.status_code == 200
    token = json.loads(res.data)["auth_token"]

    assert agent_request(client, "get", "/ping", token).status_code == 200
    assert agent_request(client, "get", "/ping", "0" * 32).status_code == 401

    snapshot = osquery_line(UUID, name="launchd", action="snapshot")
    del snapshot["columns"]
    snapshot["snapshot"] = [
        {"name": "com.apple.a", "program": "/usr/libexec/a", "run_at_load": "1"},
        {"name": "com.evil.b", "program": "/tmp/b", "run_at_load": "1"},
    ]
    lines = [
        osquery_line(UUID),
        osquery_line(UUID, name="firewall", columns={"global_state": "1"}, counter=3),
        osquery_line(UUID, name="firewall", columns={"global_state": "0"}, action="removed"),
        snapshot,
    ]
    res = agent_request(client, "post", "/submit", token, lines)
    assert res.status_code == 200
    body = json.loads(res.data)
    assert body["error"] is False
    assert body["processed_count"] == 4
    assert body["stored_count"] == 5  # the snapshot is one document per row

    now_ms = int(time.time() * 1000)
    logs = [
        {"type": "server_enabled", "twig_ids": None, "timestamp": now_ms - 2000},
        {"type": "twigs_enabled", "twig_ids": ["os_version", "firewall"], "timestamp": now_ms},
    ]
    res = agent_request(client, "post", "/submit_flock_logs", token, logs)
    assert res.status_code == 200
    assert json.loads(res.data)["processed_count"] == 2

    # nothing new to send: the agent posts an empty list
    assert agent_request(client, "post", "/submit", token, []).status_code == 200
    assert agent_request(client, "post", "/submit_flock_logs", token, []).status_code == 200

    docs = [h["_source"] for h in stored(es, prefix)]
    assert len(docs) == 5
    by_name = {}
    for d in docs:
        by_name.setdefault(d["data"]["name"], []).append(d["data"])
        assert d["data"]["hostIdentifier"] == UUID
        assert d["flock"]["username"] == UUID
        assert d["flock"]["name"] == "Nick Fury"
        assert d["flock"]["source"] == "flock-agent"
        assert d["data"]["decorations"] == {"username": "nick"}
        assert d["@timestamp"].endswith("Z")
    assert sorted(r["columns"]["name"] for r in by_name["launchd"]) == [
        "com.apple.a",
        "com.evil.b",
    ]
    assert {r["action"] for r in by_name["launchd"]} == {"snapshot"}
    assert {r["action"] for r in by_name["firewall"]} == {"added", "removed"}

    event_docs = [h["_source"] for h in stored(es, prefix, "agent-logs")]
    assert sorted(d["data"]["type"] for d in event_docs) == ["server_enabled", "twigs_enabled"]
    assert all(d["flock"]["username"] == UUID for d in event_docs)


def test_stored_mapping_follows_the_data_contract(client, es, prefix):
    token = json.loads(
        agent_request(client, "post", "/register", data={"username": UUID, "name": "N"}).data
    )["auth_token"]
    line = osquery_line(
        UUID, numerics=True, columns={"pid": 42, "path": "/bin/x", "name": 7, "tty": 3}
    )
    assert agent_request(client, "post", "/submit", token, [line]).status_code == 200
    (hit,) = stored(es, prefix)
    index = hit["_index"]
    day = time.strftime("%Y.%m.%d", time.gmtime(line["unixTime"]))
    assert index == f"{prefix}-results-{day}"
    assert hit["_source"]["@timestamp"] == time.strftime(
        "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(line["unixTime"])
    )
    top = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert set(top) == {"@timestamp", "flock", "data"}
    assert top["@timestamp"]["type"] == "date"
    props = top["data"]["properties"]
    expected = {
        "name": "keyword",
        "hostIdentifier": "keyword",
        "calendarTime": "keyword",
        "unixTime": "long",
        "epoch": "long",
        "counter": "long",
        "action": "keyword",
        "numerics": "boolean",
    }
    for field, kind in expected.items():
        assert props[field]["type"] == kind, field
    # the reviewed queries' columns have their schema type whatever JSON type osquery
    # sent; columns no reviewed query returns (tty) are kept in _source, not indexed
    assert props["columns"]["properties"]["path"]["type"] == "keyword"
    assert props["columns"]["properties"]["name"]["type"] == "keyword"
    assert props["columns"]["properties"]["pid"]["type"] == "long"
    assert "tty" not in props["columns"]["properties"]
    assert hit["_source"]["data"]["columns"]["tty"] == 3
    assert es.count(index=index, query={"term": {"data.columns.name": "7"}})["count"] == 1
    flock = top["flock"]["properties"]
    for field in ("username", "name", "source"):
        assert flock[field]["type"] == "keyword"
    assert flock["received_at"]["type"] == "date"
    settings = es.indices.get_settings(index=index)[index]["settings"]["index"]
    assert settings["number_of_shards"] == "1"
    assert int(settings["mapping"]["total_fields"]["limit"]) <= 2000
