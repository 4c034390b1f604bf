"""Rows of concurrent requests share bulk requests; each request still gets its own answer.

The app is built with a long linger so that requests started together are certainly
merged; the batcher's counters show that they were.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from flock_gateway.app import create_app
from flock_gateway.config import Config
from flock_gateway.services import EXTENSION_KEY
from flock_gateway.storage.client import make_client

from .helpers import osquery_line, register, stored, submit


def together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released at the same moment; results in call order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def make_app(config: Config, **bulk: Any):
    return create_app(dataclasses.replace(config, auth_cache_ttl=300.0, **bulk))


def rows(host: str, n: int, tag: str) -> list[dict[str, Any]]:
    return [osquery_line(host, counter=i, columns={"tag": tag, "i": str(i)}) for i in range(n)]


def per_agent(es, prefix: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for hit in stored(es, prefix):
        out.setdefault(hit["_source"]["flock"]["username"], []).append(hit["_source"])
    return out


def test_outcomes_belong_to_their_request(config, storage, es, prefix):
    app = make_app(config, bulk_linger_ms=500, bulk_max_rows=1000)
    svc = app.extensions[EXTENSION_KEY]
    clients = {h: app.test_client() for h in ("dup-host", "clash-host", "plain-host")}
    tokens = {h: register(c, h) for h, c in clients.items()}
    # dup-host already stored one of the rows it is about to send (an earlier attempt)
    dup_rows = rows("dup-host", 3, "d")
    assert (
        submit(clients["dup-host"], "dup-host", tokens["dup-host"], dup_rows[:1]).status_code == 200
    )
    # clash-host sends agent events, one of which the mapping refuses (twig_id is a
    # keyword, here an object): it is quarantined, in a bulk of its own
    now_ms = int(time.time() * 1000)
    clash_rows = [{"type": "server_enabled", "timestamp": now_ms + i} for i in range(3)]
    clash_rows.append({"type": "enable_twig", "timestamp": now_ms, "twig_id": {"a": 1}})
    plain_rows = rows("plain-host", 5, "p")
    before = svc.writer.batcher.stats.bulks

    sends = {"dup-host": dup_rows, "clash-host": clash_rows, "plain-host": plain_rows}
    paths = {"dup-host": "/submit", "clash-host": "/submit_flock_logs", "plain-host": "/submit"}
    answers = together(
        [
            lambda h=h, r=r: submit(clients[h], h, tokens[h], r, path=paths[h])
            for h, r in sends.items()
        ]
    )

    stats = svc.writer.batcher.stats
    # one shared bulk for the three requests (plus one for clash-host's quarantined row)
    assert stats.bulks - before == 2
    for (host, sent), res in zip(sends.items(), answers, strict=True):
        assert res.status_code == 200, res.data
        body = json.loads(res.data)
        assert body["processed_count"] == len(sent), host
        assert body["stored_count"] == len(sent), host
    docs = per_agent(es, prefix)
    assert len(docs["dup-host"]) == 3  # the earlier row was not stored twice
    assert len(docs["plain-host"]) == 5
    events = [h["_source"] for h in stored(es, prefix, "agent-logs")]
    assert len(events) == 4
    quarantined = [d for d in events if "quarantine_reason" in d["flock"]]
    assert len(quarantined) == 1
    assert json.loads(quarantined[0]["flock"]["raw_json"])["twig_id"] == {"a": 1}
    assert all(d["flock"]["username"] == "clash-host" for d in events)
    assert not any("quarantine_reason" in d["flock"] for d in docs["dup-host"] + docs["plain-host"])


def test_refused_rows_are_counted_for_their_own_request(config, storage, es, prefix):
    app = make_app(dataclasses.replace(config, strict_allowlist=True), bulk_linger_ms=500)
    svc = app.extensions[EXTENSION_KEY]
    c1, c2 = app.test_client(), app.test_client()
    t1, t2 = register(c1, "host-a"), register(c2, "host-b")
    allowed = "os_version"  # in the reviewed schedule
    a = [osquery_line("host-a", name=allowed, counter=i) for i in range(2)]
    a += [osquery_line("host-a", name="not_scheduled", counter=9)]
    b = [osquery_line("host-b", name=allowed, counter=i) for i in range(4)]
    before = svc.writer.batcher.stats.bulks
    ra, rb = together([lambda: submit(c1, "host-a", t1, a), lambda: submit(c2, "host-b", t2, b)])
    assert svc.writer.batcher.stats.bulks - before == 1
    ba, bb = json.loads(ra.data), json.loads(rb.data)
    assert (ba["stored_count"], ba["refused_count"]) == (2, 1)
    assert (bb["stored_count"], bb["refused_count"]) == (4, 0)
    docs = per_agent(es, prefix)
    assert (len(docs["host-a"]), len(docs["host-b"])) == (2, 4)


def test_storage_down_answers_every_waiting_request_503(config, storage, es, prefix, dead_url):
    app = make_app(config, bulk_linger_ms=500)
    svc = app.extensions[EXTENSION_KEY]
    hosts = [f"host-{i}" for i in range(4)]
    clients = {h: app.test_client() for h in hosts}
    tokens = {h: register(clients[h], h) for h in hosts}  # cached for the next requests
    live = svc.writer.client
    svc.writer.client = make_client(Config(es_hosts=(dead_url,), es_max_retries=0))
    batches = {h: rows(h, 3, h) for h in hosts}
    answers = together([lambda h=h: submit(clients[h], h, tokens[h], batches[h]) for h in hosts])
    for res in answers:
        assert res.status_code == 503
        assert json.loads(res.data)["error"] is True
        assert res.headers["Retry-After"]
    assert stored(es, prefix) == []
    svc.writer.client = live
    answers = together([lambda h=h: submit(clients[h], h, tokens[h], batches[h]) for h in hosts])
    assert [r.status_code for r in answers] == [200] * 4
    assert len(stored(es, prefix)) == 12


# a request below: 4 rows, their 4 current-state documents and its host's document
PER_REQUEST = 9


@pytest.mark.parametrize(("bound", "limit"), [("bulk_max_rows", 20), ("bulk_max_bytes", 13000)])
def test_flush_bounds(config, storage, es, prefix, bound, limit):
    app = make_app(config, bulk_linger_ms=300, **{bound: limit})
    svc = app.extensions[EXTENSION_KEY]
    sent: list[bytes] = []
    send = svc.writer.batcher._send

    def recording(body: bytes) -> list[dict[str, Any]]:
        sent.append(body)
        return send(body)

    svc.writer.batcher._send = recording
    hosts = [f"host-{i}" for i in range(6)]
    clients = {h: app.test_client() for h in hosts}
    tokens = {h: register(clients[h], h) for h in hosts}
    answers = together([lambda h=h: submit(clients[h], h, tokens[h], rows(h, 4, h)) for h in hosts])
    assert [r.status_code for r in answers] == [200] * 6
    assert len(stored(es, prefix)) == 24
    assert len(sent) < 6  # requests were merged...
    for body in sent:  # ...within the bound (a whole request is never split)
        docs = body.count(b"\n") // 2
        assert docs % PER_REQUEST == 0
        if bound == "bulk_max_rows":
            assert docs <= limit
        else:
            assert len(body) <= limit


def test_linger_bound(config, storage, es, prefix):
    """A lone request waits at most the linger time for company."""
    app = make_app(config, bulk_linger_ms=400)
    client = app.test_client()
    token = register(client, "host-1")
    submit(client, "host-1", token, rows("host-1", 1, "warm"))
    started = time.monotonic()
    assert submit(client, "host-1", token, rows("host-1", 2, "x")).status_code == 200
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 5
