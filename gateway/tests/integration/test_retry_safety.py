"""A batch re-sent (after a timeout, a 503, a crash between store and answer) is stored
once: deterministic index + id per row, written with op_type=create."""

import json

from .helpers import basic, osquery_line, register, stored, submit

HOST = "host-1"


def test_same_batch_twice_is_stored_once(client, es, prefix):
    token = register(client, HOST)
    batch = [
        osquery_line(HOST, name="os_version"),
        osquery_line(HOST, name="firewall", columns={"global_state": "1"}),
        osquery_line(HOST, name="firewall", columns={"global_state": "1"}),  # identical row
    ]
    first = submit(client, HOST, token, batch)
    assert first.status_code == 200
    assert json.loads(first.data)["stored_count"] == 3
    second = submit(client, HOST, token, batch)
    assert second.status_code == 200
    assert json.loads(second.data)["stored_count"] == 3  # duplicates count as stored
    hits = stored(es, prefix)
    assert len(hits) == 3


def test_partial_then_full_resend(client, es, prefix):
    """An agent whose first request half-succeeded resends a larger batch (its oldest
    lines first, in the same order: both clients do)."""
    token = register(client, HOST)
    batch = [osquery_line(HOST, counter=i, columns={"n": str(i)}) for i in range(50)]
    assert submit(client, HOST, token, batch[:20]).status_code == 200
    assert submit(client, HOST, token, batch).status_code == 200
    assert submit(client, HOST, token, batch).status_code == 200
    assert len(stored(es, prefix)) == 50


def test_snapshot_resend(client, es, prefix):
    token = register(client, HOST)
    snap = osquery_line(HOST, name="apps", action="snapshot")
    del snap["columns"]
    snap["snapshot"] = [{"name": "A"}, {"name": "B"}, {"name": "A"}]
    for _ in range(3):
        assert submit(client, HOST, token, [snap]).status_code == 200
    assert len(stored(es, prefix)) == 3


def test_flock_logs_resend(client, es, prefix):
    import time

    token = register(client, HOST)
    logs = [{"type": "server_enabled", "timestamp": int(time.time() * 1000)}]
    for _ in range(2):
        res = submit(client, HOST, token, logs, path="/submit_flock_logs")
        assert res.status_code == 200
    assert len(stored(es, prefix, "agent-logs")) == 1


def test_different_agents_same_rows_are_both_stored(client, es, prefix):
    t1 = register(client, "host-1")
    t2 = register(client, "host-2")
    row = osquery_line("host-1")
    assert submit(client, "host-1", t1, [row]).status_code == 200
    row2 = dict(row, hostIdentifier="host-2")
    assert submit(client, "host-2", t2, [row2]).status_code == 200
    assert client.get("/ping", headers=basic("host-2", t2)).status_code == 200
    assert len(stored(es, prefix)) == 2
