"""The stored identity is only ever the authenticated one: no spelling of a client key
(dotted, nested, mixed, escaped) reaches a field the gateway sets, on any endpoint."""

from __future__ import annotations

import json
import time

import pytest

from flock_gateway.app import create_app
from flock_gateway.config import Config

from .helpers import basic, osquery_line, register, stored

HOST = "honest-1"
VICTIM = "victim-laptop"
SECRET = "enroll-secret-integrity-0123456789"
OSQ_HOST = "5D4C3B2A-1F0E-4D3C-8B7A-69584736A2B1"
GATEWAY_FLOCK_KEYS = {"username", "name", "source", "received_at"}

# Raw JSON text, so the escaped spellings reach the gateway as a client would send them.
FORGERIES = [
    '"flock.username": "victim-laptop"',
    '"flock.name": "Victim", "flock.source": "osquery"',
    '"flock.received_at": "2020-01-01T00:00:00.000Z", "flock.quarantine_reason": "x"',
    '"flock": {"username": "victim-laptop", "name": "Victim"}',
    '"flock": {"source.x": 1, "quarantine_reason": "y"}',
    '"fl\\u006fck.username": "victim-laptop"',
    '"flock\\u002eusername": "victim-laptop"',
    '"@timestamp": "2020-01-01T00:00:00.000Z"',
    '"\\u0040timestamp": "2020-01-01T00:00:00.000Z"',
    '"_id": "x", "_source": {"a": 1}, "_index": "other"',
]


def _with(line: dict, forgery: str) -> str:
    text = json.dumps(line)
    return text[:-1] + ", " + forgery + "}"


def _assert_only_gateway_identity(es, prefix, kind, username, name, source, count):
    hits = stored(es, prefix, kind)
    assert len(hits) == count
    for hit in hits:
        src = hit["_source"]
        assert set(src) == {"@timestamp", "flock", "data"}, src
        assert set(src["flock"]) == GATEWAY_FLOCK_KEYS, src["flock"]
        assert src["flock"]["username"] == username
        assert src["flock"]["name"] == name
        assert src["flock"]["source"] == source
        assert not src["@timestamp"].startswith("2020")
    for field, value in (
        ("flock.username", VICTIM),
        ("flock.name", "Victim"),
        ("flock.source", "osquery" if source != "osquery" else "flock-agent"),
    ):
        assert stored(es, prefix, kind, query={"term": {field: value}}) == []
    assert stored(es, prefix, kind, query={"exists": {"field": "flock.quarantine_reason"}}) == []
    old = {"range": {"@timestamp": {"lt": "2021-01-01"}}}
    assert stored(es, prefix, kind, query=old) == []


def test_submit_cannot_forge_identity(client, es, prefix):
    token = register(client, HOST, name="Honest")
    lines = [_with(osquery_line(HOST, name=f"q{i}"), f) for i, f in enumerate(FORGERIES)]
    lines.append(_with(osquery_line(HOST, columns={"flock.username": VICTIM}), '"x": 1'))
    body = "[" + ",".join(lines) + "]"
    res = client.post(
        "/submit", data=body, headers={**basic(HOST, token), "Content-Type": "application/json"}
    )
    assert res.status_code == 200, res.data
    _assert_only_gateway_identity(
        es, prefix, "results", HOST, "Honest", "flock-agent", len(FORGERIES) + 1
    )


def test_submit_flock_logs_cannot_forge_identity(client, es, prefix):
    token = register(client, HOST, name="Honest")
    now = int(time.time() * 1000)
    events = [
        _with({"type": "server_enabled", "timestamp": now + i}, f) for i, f in enumerate(FORGERIES)
    ]
    res = client.post(
        "/submit_flock_logs",
        data="[" + ",".join(events) + "]",
        headers={**basic(HOST, token), "Content-Type": "application/json"},
    )
    assert res.status_code == 200, res.data
    _assert_only_gateway_identity(
        es, prefix, "agent-logs", HOST, "Honest", "flock-agent", len(FORGERIES)
    )


@pytest.fixture
def osquery_key(es_url, prefix, storage):
    cfg = Config(
        es_hosts=(es_url,), index_prefix=prefix, enroll_secrets=(SECRET,), auth_cache_ttl=0
    )
    client = create_app(cfg).test_client()
    res = client.post(
        "/osquery/enroll",
        json={
            "enroll_secret": SECRET,
            "host_identifier": OSQ_HOST,
            "host_details": {"system_info": {"computer_name": "Osq Mac"}},
        },
    )
    return client, json.loads(res.data)["node_key"]


@pytest.mark.parametrize(("log_type", "kind"), [("result", "results"), ("status", "status")])
def test_osquery_log_cannot_forge_identity(osquery_key, es, prefix, log_type, kind):
    client, key = osquery_key
    if log_type == "result":
        base = [osquery_line(OSQ_HOST, name="os_version", counter=i) for i in range(len(FORGERIES))]
    else:
        unix = int(time.time()) - 10
        base = [
            {"hostIdentifier": OSQ_HOST, "unixTime": str(unix), "message": f"m{i}", "line": "1"}
            for i in range(len(FORGERIES))
        ]
    # osquery sends lines as objects or as JSON strings: both spellings
    lines = [
        _with(line, f) if i % 2 else json.dumps(_with(line, f))
        for i, (line, f) in enumerate(zip(base, FORGERIES, strict=True))
    ]
    body = (
        f'{{"node_key": {json.dumps(key)}, "log_type": "{log_type}", "data": [{",".join(lines)}]}}'
    )
    res = client.post("/osquery/log", data=body, headers={"Content-Type": "application/json"})
    assert res.status_code == 200, res.data
    out = json.loads(res.data)
    assert out["stored_count"] == len(FORGERIES), out
    _assert_only_gateway_identity(
        es, prefix, kind, f"osq-{OSQ_HOST}", "Osq Mac", "osquery", len(FORGERIES)
    )
