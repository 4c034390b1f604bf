"""The current-state index against the real node: what a host's queries return now.

An ``added`` line adds a row, a ``removed`` line takes it away, a snapshot replaces the
host's rows of its query; a resent batch changes nothing; a late resend of an older line
or snapshot cannot bring back a row a newer one took away; a state write that fails is
not acknowledged. Platform and OS version come from the host's own os_version rows; each
host has one ``host`` document. A revoked host's rows go with the next prune.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from flock_gateway import accelerator, fields
from flock_gateway.app import create_app
from flock_gateway.cli import main
from flock_gateway.config import Config
from flock_gateway.storage.retention import prune
from flock_gateway.storage.state_prune import SETTLED, sweep_revocations

from .helpers import osquery_line, register, stored, submit
from .test_osquery import enroll, post, result_line, snapshot_line

HOST = "laptop-1"
T0 = int(time.time()) - 3 * 3600


def state_docs(es, prefix: str, kind: str = "row") -> list[dict[str, Any]]:
    index = f"{prefix}-state"
    es.indices.refresh(index=index)
    hits = es.search(index=index, query={"term": {"flock.kind": kind}}, size=1000, sort=["_doc"])[
        "hits"
    ]["hits"]
    return [hit["_source"] for hit in hits]


def now_rows(es, prefix: str, query: str = "apps") -> list[dict[str, Any]]:
    """What a "now" panel sees: present rows of one query, as their columns."""
    return sorted(
        (
            d["data"]["columns"]
            for d in state_docs(es, prefix)
            if d["flock"]["present"] and d["data"]["name"] == query
        ),
        key=json.dumps,
    )


def line(action: str, app: str, t: int, counter: int = 0, name: str = "apps") -> dict[str, Any]:
    return osquery_line(
        HOST,
        name=name,
        action=action,
        unixTime=t,
        calendarTime=time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(t)),
        counter=counter,
        columns={"name": app},
    )


def ok(res) -> dict[str, Any]:
    assert res.status_code == 200, res.data
    return json.loads(res.data)


def test_added_removed_and_resends(client, es, prefix):
    token = register(client, HOST)
    first = [line("added", "Slack", T0, 1), line("added", "Zoom", T0, 1)]
    ok(submit(client, HOST, token, first))
    assert now_rows(es, prefix) == [{"name": "Slack"}, {"name": "Zoom"}]

    later = [line("removed", "Zoom", T0 + 60, 2), line("added", "Signal", T0 + 60, 2)]
    ok(submit(client, HOST, token, later))
    assert now_rows(es, prefix) == [{"name": "Signal"}, {"name": "Slack"}]
    rows = state_docs(es, prefix)
    assert len(rows) == 3  # Zoom is a tombstone
    gone = [d for d in rows if d["data"]["columns"] == {"name": "Zoom"}]
    assert gone[0]["flock"]["present"] is False
    assert gone[0]["@timestamp"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(T0 + 60)))

    # a resent batch, and a late resend of the older batch: nothing changes
    before = state_docs(es, prefix)
    ok(submit(client, HOST, token, later))
    ok(submit(client, HOST, token, first))
    assert state_docs(es, prefix) == before
    assert now_rows(es, prefix) == [{"name": "Signal"}, {"name": "Slack"}]
    # the history keeps every line once
    assert len(stored(es, prefix)) == 4


def test_lines_in_any_order_end_at_the_newest(client, es, prefix):
    token = register(client, HOST)
    added, removed = line("added", "Zoom", T0, 1), line("removed", "Zoom", T0 + 60, 2)
    ok(submit(client, HOST, token, [removed, added]))  # one request, newest first
    assert now_rows(es, prefix) == []
    again = line("added", "Zoom", T0 + 120, 3)
    ok(submit(client, HOST, token, [again]))
    ok(submit(client, HOST, token, [removed]))  # late
    assert now_rows(es, prefix) == [{"name": "Zoom"}]


def snapshot(rows: list[dict[str, Any]], t: int, name: str = "apps") -> dict[str, Any]:
    snap = osquery_line(HOST, name=name, action="snapshot", unixTime=t)
    del snap["columns"]
    snap["snapshot"] = rows
    return snap


def test_a_snapshot_replaces_the_set_and_a_late_one_changes_nothing(client, es, prefix):
    token = register(client, HOST)
    old = snapshot([{"name": "A"}, {"name": "B"}, {"name": "C"}], T0)
    ok(submit(client, HOST, token, [old]))
    assert now_rows(es, prefix) == [{"name": "A"}, {"name": "B"}, {"name": "C"}]

    new = snapshot([{"name": "D"}], T0 + 3600)
    ok(submit(client, HOST, token, [new]))
    assert now_rows(es, prefix) == [{"name": "D"}]

    ok(submit(client, HOST, token, [new]))  # resent
    ok(submit(client, HOST, token, [old]))  # late
    assert now_rows(es, prefix) == [{"name": "D"}]

    ok(submit(client, HOST, token, [snapshot([], T0 + 7200)]))  # nothing now
    assert now_rows(es, prefix) == []
    ok(submit(client, HOST, token, [snapshot([{"name": "E"}, {"name": "F"}], T0 + 9000)]))
    assert now_rows(es, prefix) == [{"name": "E"}, {"name": "F"}]
    # another query's rows are its own
    ok(submit(client, HOST, token, [snapshot([{"name": "X"}], T0 + 9000, name="other")]))
    assert now_rows(es, prefix) == [{"name": "E"}, {"name": "F"}]
    assert now_rows(es, prefix, "other") == [{"name": "X"}]


def test_a_failed_state_write_is_not_acknowledged(client, es, prefix):
    token = register(client, HOST)
    index = f"{prefix}-state"
    es.indices.put_settings(index=index, settings={"index.blocks.write": True})
    batch = [line("added", "Slack", T0, 1)]
    try:
        res = submit(client, HOST, token, batch)
        assert res.status_code == 503, res.data
    finally:
        es.indices.put_settings(index=index, settings={"index.blocks.write": False})
    # the agent keeps the batch and sends it again
    assert ok(submit(client, HOST, token, batch))["stored_count"] == 1
    assert now_rows(es, prefix) == [{"name": "Slack"}]
    assert len(stored(es, prefix)) == 1


def test_platform_os_version_and_host_documents(client, es, prefix):
    token = register(client, HOST, name="Nick's Mac")
    os_row = {"name": "macOS", "version": "14.1", "platform": "darwin", "platform_like": "darwin"}
    first = [
        line("added", "Slack", T0, 1),
        osquery_line(HOST, name="os_version", unixTime=T0, counter=1, columns=os_row),
    ]
    ok(submit(client, HOST, token, first))
    for doc in state_docs(es, prefix):
        assert (doc["flock"]["platform"], doc["flock"]["os_version"]) == ("darwin", "14.1")
    ok(submit(client, HOST, token, [line("added", "Zoom", T0 + 60, 2)]))
    (zoom,) = [r for r in stored(es, prefix) if r["_source"]["data"]["columns"] == {"name": "Zoom"}]
    assert zoom["_source"]["flock"]["platform"] == "darwin"
    assert zoom["_source"]["flock"]["os_version"] == "14.1"

    (host,) = state_docs(es, prefix, "host")
    assert host["flock"]["username"] == HOST
    assert host["flock"]["name"] == "Nick's Mac"
    assert host["flock"]["source"] == fields.FLOCK_AGENT
    assert (host["flock"]["platform"], host["flock"]["os_version"]) == ("darwin", "14.1")
    assert abs(_epoch(host["flock"]["last_seen"]) - time.time()) < 120

    # an upgrade: the host and its new rows say so
    upgraded = {**os_row, "version": "15.0"}
    ok(submit(client, HOST, token, [
        osquery_line(HOST, name="os_version", unixTime=T0 + 120, counter=3, columns=upgraded),
    ]))  # fmt: skip
    (host,) = state_docs(es, prefix, "host")
    assert host["flock"]["os_version"] == "15.0"


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
def test_a_new_macs_own_twigs_tell_its_platform_before_its_os_version_row(
    client, es, prefix, monkeypatch, compiled
):
    """The agent's os_version twig runs once a day; its rows of other queries come first.
    A twig it runs on macOS only tells the platform, so those rows (which a differential
    query never sends again unless they change) are in the macOS panels from the start."""
    if compiled and accelerator._native is None:
        pytest.skip("the compiled accelerator is not built here")
    if not compiled:
        monkeypatch.setattr(accelerator, "_native", None)
    token = register(client, HOST)
    ok(submit(client, HOST, token, [
        line("added", "/usr/bin/sudo", T0, 1, name="suid_bin"),  # macOS and Linux
        line("added", "com.example.helper", T0, 1, name="launchd"),  # macOS only
    ]))  # fmt: skip
    rows = state_docs(es, prefix)
    assert sorted(d["data"]["name"] for d in rows) == ["launchd", "suid_bin"]
    assert {d["flock"].get("platform") for d in rows} == {"darwin"}
    (host,) = state_docs(es, prefix, "host")
    assert host["flock"]["platform"] == "darwin"
    # known from then on, for every query
    ok(submit(client, HOST, token, [line("added", "/usr/bin/login", T0 + 60, 2, name="suid_bin")]))
    assert {d["flock"].get("platform") for d in state_docs(es, prefix)} == {"darwin"}
    (later,) = [
        r["_source"]
        for r in stored(es, prefix)
        if r["_source"]["data"]["columns"] == {"name": "/usr/bin/login"}
    ]
    assert later["flock"]["platform"] == "darwin"


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_osquery_host_snapshots_and_linux_platform(oclient, es, prefix):
    key = enroll(oclient)["node_key"]
    os_row = {
        "name": "Ubuntu",
        "version": "24.04 LTS",
        "platform": "ubuntu",
        "platform_like": "debian",
    }
    os_snap = snapshot_line("os_version", [os_row])
    disks = snapshot_line("disk_encryption", [{"name": "/dev/sda1", "encrypted": "1"}])
    res, body = post(oclient, "/osquery/log", {
        "node_key": key, "log_type": "result", "data": [os_snap, disks],
    }, gzipped=True)  # fmt: skip
    assert res.status_code == 200, body
    assert body["stored_count"] == 2
    rows = state_docs(es, prefix)
    assert {d["data"]["name"] for d in rows} == {"os_version", "disk_encryption"}
    assert all(d["flock"]["platform"] == "linux" and d["flock"]["present"] for d in rows)
    assert all(d["flock"]["source"] == fields.OSQUERY for d in rows)
    (host,) = state_docs(es, prefix, "host")
    assert host["flock"]["platform"] == "linux"
    assert host["flock"]["os_version"] == "24.04 LTS"
    # differential lines of an osquery host count as well
    line_ = result_line("apps", columns={"name": "vim"})
    res, body = post(oclient, "/osquery/log", {"node_key": key, "log_type": "result",
                                               "data": [line_]})  # fmt: skip
    assert res.status_code == 200


def test_prune_deletes_old_tombstones_only(client, es, es_url, prefix, names):
    token = register(client, HOST)
    old = int(time.time()) - 20 * 86_400
    ok(submit(client, HOST, token, [
        line("added", "Kept", old, 1),
        line("added", "Gone", old, 1),
        line("removed", "Gone", old + 60, 2),
        line("added", "Recent", T0, 3),
        line("removed", "Recent", T0 + 60, 4),
    ]))  # fmt: skip
    assert len(state_docs(es, prefix)) == 3
    report = prune(es, names, retention_days=10)
    assert report["state_tombstones_deleted"] == 1
    left = {d["data"]["columns"]["name"]: d["flock"]["present"] for d in state_docs(es, prefix)}
    assert left == {"Kept": True, "Recent": False}
    # a late resend of the pruned row's lines, to a gateway of that retention: older than
    # it, so not stored
    config = Config(es_hosts=(es_url,), index_prefix=prefix, retention_days=10)
    short = create_app(config).test_client()
    body = ok(submit(short, HOST, token, [line("added", "Gone", old, 1)]))
    assert body["expired_count"] == 1
    assert "Gone" not in {d["data"]["columns"]["name"] for d in state_docs(es, prefix)}


def present_by_host(es, prefix: str) -> dict[str, set[str]]:
    """What the "now" panels see of the apps query, per host."""
    out: dict[str, set[str]] = {}
    for doc in state_docs(es, prefix):
        if doc["flock"]["present"] and doc["data"]["name"] == "apps":
            out.setdefault(doc["flock"]["username"], set()).add(doc["data"]["columns"]["name"])
    return out


def test_a_revoked_hosts_state_goes_with_the_next_prune(
    client, es, prefix, names, env, monkeypatch, capsys
):
    """`agents revoke` frees a name for another laptop: from the next prune the old
    laptop's rows no longer stand for the name; the new laptop's and other hosts' stay."""
    old = register(client, HOST)
    ok(
        submit(
            client, HOST, old, [line("added", "Old Mac's app", T0, 1), line("added", "Both", T0, 1)]
        )
    )
    peer = register(client, "laptop-2")
    peer_line = osquery_line(
        "laptop-2", name="apps", unixTime=T0, counter=1, columns={"name": "Peer's app"}
    )
    ok(submit(client, "laptop-2", peer, [peer_line]))

    monkeypatch.setenv("FLOCK_AUTH_CACHE_TTL", "0")
    assert main(["agents", "revoke", HOST]) == 0
    assert "next prune" in json.loads(capsys.readouterr().out)["note"]
    new = register(client, HOST)
    ok(
        submit(
            client,
            HOST,
            new,
            [line("added", "New Mac's app", T0 + 600, 1), line("added", "Both", T0 + 600, 1)],
        )
    )
    assert present_by_host(es, prefix)[HOST] == {"Old Mac's app", "New Mac's app", "Both"}

    # counted, not deleted, on a dry run: the old Mac's own row and its host document
    assert prune(es, names, retention_days=30, dry_run=True)["state_revoked_deleted"] == 2
    assert "Old Mac's app" in present_by_host(es, prefix)[HOST]

    report = prune(es, names, retention_days=30)
    assert report["state_revoked_deleted"] == 2
    assert report["changed"] is True
    assert present_by_host(es, prefix) == {
        HOST: {"New Mac's app", "Both"},
        "laptop-2": {"Peer's app"},
    }
    assert [d["flock"]["username"] for d in state_docs(es, prefix, "host")] == ["laptop-2"]
    # the revocation stays until what was written before it is searchable for sure; a
    # prune after that finds nothing more, and is done with it
    assert len(state_docs(es, prefix, fields.STATE_REVOCATION)) == 1
    later = datetime.now(tz=UTC) + SETTLED
    assert sweep_revocations(es, names, dry_run=False, now=later) == 0
    assert state_docs(es, prefix, fields.STATE_REVOCATION) == []


def test_a_revocation_not_yet_in_effect_stays_for_the_next_prune(
    client, es, prefix, names, env, monkeypatch, capsys
):
    """Within auth_cache_ttl of the command the old credential may still post: what it
    posts then goes with a later prune."""
    token = register(client, HOST)
    ok(submit(client, HOST, token, [line("added", "Before", T0, 1)]))
    monkeypatch.setenv("FLOCK_AUTH_CACHE_TTL", "3600")
    assert main(["agents", "revoke", HOST]) == 0
    capsys.readouterr()
    # a worker whose cache still knows the credential
    ok(submit(client, HOST, token, [line("added", "Within the ttl", T0 + 60, 2)]))
    es.indices.refresh(index=names.state)  # a daily prune runs long after the command
    prune(es, names, retention_days=30)
    assert present_by_host(es, prefix) == {}
    (revocation,) = state_docs(es, prefix, fields.STATE_REVOCATION)
    assert revocation["flock"]["username"] == HOST

    # unknown now, yet recorded again: a run after a failure past the delete
    code = main(["agents", "revoke", HOST])
    assert code == 1
    assert json.loads(capsys.readouterr().out)["reason"] == "unknown_agent"
    assert len(state_docs(es, prefix, fields.STATE_REVOCATION)) == 1
