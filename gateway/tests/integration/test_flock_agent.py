"""Requests exactly as Flock agent's FlockApiClient makes them.

flock_agent/daemon/api_client.py: ``requests.request(method, url, json=data,
headers={"User-Agent": "Flock Agent <version>", ["Authorization": "Basic ..."]})``;
401 -> PermissionDenied; any other non-200 -> BadStatusCode; a 200 body must be JSON with
``error`` (and ``error_msg`` when true). Result lines come from osqueryd's results log
(host_identifier=uuid, a ``username`` decorator); flock logs are
``{"type", "twig_ids", "timestamp" (ms)}``.

The daemon's submit loop (flock_agent/daemon/osquery.py ``submit_logs``), every 60 s:
read the whole results file, keep the lines whose ``unixTime`` is above the last one
acknowledged, post them in chunks of 200 in file order, and only once every chunk got a
200 remember the last ``unixTime`` and empty the file. Any other answer (its exception's
type is all it logs) leaves both as they were: the next round posts the same lines, in
the same chunks, again. :class:`AgentDaemon` does exactly that.
"""

import json
import time

import pytest

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


class BadStatusCode(Exception):
    """What the agent's client raises on any answer but 200 and 401."""


class AgentDaemon:
    """Flock agent's results submission (its daemon's submit loop), against the test
    client: the results file is a list of lines as osqueryd writes them."""

    CHUNK = 200

    def __init__(self, client, token):
        self.client = client
        self.token = token
        self.results_file: list[str] = []
        self.last_unix_time = 0
        self.bodies: list[bytes] = []  # every request body sent, in order

    def write(self, lines):
        self.results_file += [json.dumps(line) for line in lines]

    def submit_round(self) -> None:
        logs = []
        for text in self.results_file:
            obj = json.loads(text.strip())
            obj.setdefault("name", "unknown")
            if "unixTime" in obj and obj["unixTime"] > self.last_unix_time:
                logs.append(obj)
        for i in range(0, len(logs), self.CHUNK):
            # requests' json=: json.dumps with its default separators, UTF-8
            body = json.dumps(logs[i : i + self.CHUNK]).encode()
            self.bodies.append(body)
            res = self.client.post(
                "/submit",
                data=body,
                headers={**UA, **basic(UUID, self.token), "Content-Type": "application/json"},
            )
            if res.status_code != 200:
                raise BadStatusCode(res.status_code)
        if logs:
            self.last_unix_time = max(self.last_unix_time, logs[-1]["unixTime"])
        self.results_file = []


@pytest.fixture
def daemon(client):
    res = agent_request(client, "post", "/register", data={"username": UUID, "name": "N"})
    return AgentDaemon(client, json.loads(res.data)["auth_token"])


def _run(count, **kw):
    """``count`` rows of one differential run of a query (same time, counter)."""
    return [
        osquery_line(UUID, name="processes", columns={"pid": str(n)}, **kw) for n in range(count)
    ]


def test_a_line_that_cannot_be_stored_never_blocks_the_agent(daemon, es, prefix):
    """A chunk holding a line of wrong types and a line naming another host answers 200:
    every other line is stored as sent, those two in quarantine with the reason (the other
    host's line under this agent's name, never as that host), and the agent moves on."""
    lines = _run(450)
    lines[250]["columns"] = {"pid": {"nested": 1}}
    other = "0F0F0F0F-0000-4000-8000-000000000000"
    lines[260]["hostIdentifier"] = other
    daemon.write(lines)
    daemon.submit_round()
    assert daemon.results_file == []  # every chunk acknowledged: the agent moves on
    assert len(daemon.bodies) == 3

    docs = [h["_source"] for h in stored(es, prefix)]
    as_sent = [d for d in docs if "data" in d]
    held = [d for d in docs if "quarantine_reason" in d["flock"]]
    assert len(as_sent) == 448
    assert len(held) == 2
    assert all(d["data"]["hostIdentifier"] == UUID for d in as_sent)
    reasons = sorted(d["flock"]["quarantine_reason"] for d in held)
    assert "columns.pid must be a string or number" in reasons[0]
    assert "does not contain the correct hostIdentifier" in reasons[1]
    for d in held:
        assert d["flock"]["username"] == UUID
        assert d["flock"]["source"] == "flock-agent"
        assert json.loads(d["flock"]["raw_json"]) in (lines[250], lines[260])
    assert (
        es.count(index=f"{prefix}-results-*", query={"term": {"flock.username": other}})["count"]
        == 0
    )

    # the agent never saw an answer (say it crashed): it sends the same chunks again
    daemon.bodies.clear()
    daemon.write(lines)
    daemon.last_unix_time = 0
    daemon.submit_round()
    assert len(stored(es, prefix)) == 450


def test_answer_counts(daemon):
    lines = _run(3)
    lines[1]["columns"] = "not an object"
    res = agent_request(daemon.client, "post", "/submit", daemon.token, lines)
    assert res.status_code == 200
    body = json.loads(res.data)
    assert body["processed_count"] == 3
    assert body["stored_count"] == 3  # stored, one of them in quarantine form
    assert body["quarantined_count"] == 1


def test_identical_lines_on_both_sides_of_a_chunk_boundary_are_both_stored(daemon, es, prefix):
    """One query run with identical rows (same columns, time and counter), split by the
    agent's 200-line chunk boundary: each row is a document, and a resend of the same
    chunks (as the agent sends them after an error) stores nothing twice."""
    lines = _run(199) + [osquery_line(UUID, name="processes", columns={"pid": "dup"})] * 3
    daemon.write(lines)
    daemon.submit_round()
    assert [len(json.loads(b)) for b in daemon.bodies] == [200, 2]
    assert json.loads(daemon.bodies[0])[-1] == json.loads(daemon.bodies[1])[0]
    assert len(stored(es, prefix)) == 202

    daemon.write(lines)
    daemon.last_unix_time = 0
    daemon.submit_round()
    assert len(stored(es, prefix)) == 202


def test_a_resent_chunk_with_more_lines_after_it_stores_each_once(daemon, es, prefix):
    """The agent's last, partial chunk grows when osqueryd appends lines before the resend
    (the agent rereads the whole file): the lines already stored keep their ids."""
    first = _run(150)
    res = agent_request(daemon.client, "post", "/submit", daemon.token, first)
    assert res.status_code == 200
    later = [osquery_line(UUID, name="processes", columns={"pid": "x"}, counter=1)] * 2
    res = agent_request(daemon.client, "post", "/submit", daemon.token, first + later)
    assert res.status_code == 200
    assert len(stored(es, prefix)) == 152


def test_unusable_requests_are_refused_whole(daemon):
    """Only a request that is no use at all is a 4xx (what the agent's client raises
    BadStatusCode for): not JSON, or neither an array nor an object."""
    for body in (b"not json", b"42", b'"a string"'):
        res = daemon.client.post(
            "/submit",
            data=body,
            headers={**UA, **basic(UUID, daemon.token), "Content-Type": "application/json"},
        )
        assert res.status_code == 400, body
        assert json.loads(res.data)["error"] is True
