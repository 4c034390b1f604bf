"""Elasticsearch down: workers start anyway and answer 503 (the agent keeps its data and
retries), become ready by themselves once it is back, and lose nothing."""

import json
import time

import pytest

from flock_gateway.app import create_app
from flock_gateway.config import Config
from flock_gateway.storage.templates import setup_storage

from .helpers import basic, osquery_line, register, stored, submit

# How often the apps below probe storage while it is not ready.
INTERVAL = 0.2


def outage_config(url: str, prefix: str, **kw) -> Config:
    return Config(
        es_hosts=(url,),
        index_prefix=prefix,
        es_max_retries=0,
        es_timeout=5,
        readiness_interval=INTERVAL,
        **kw,
    )


def assert_unavailable(res, path: str) -> None:
    assert res.status_code == 503, (path, res.data)
    body = json.loads(res.data)
    assert body == {"error": True, "error_msg": "Storage is unavailable, try again later"}
    assert int(res.headers["Retry-After"]) > 0


def agent_requests(username: str, token: str):
    return (
        ("POST", "/register", {"json": {"username": "host-new"}}),
        ("GET", "/ping", {"headers": basic(username, token)}),
        ("POST", "/submit", {"headers": basic(username, token), "json": [osquery_line(username)]}),
        ("POST", "/submit_flock_logs", {"headers": basic(username, token), "json": []}),
        ("POST", "/osquery/enroll", {"json": {"enroll_secret": "x", "host_identifier": "h"}}),
        ("POST", "/osquery/config", {"json": {"node_key": f"{username}:{token}"}}),
        ("POST", "/osquery/log", {"json": {"node_key": f"{username}:{token}", "data": []}}),
        ("GET", "/readyz", {}),
    )


def test_starts_while_down_answers_503_and_recovers(node_port, storage, es, prefix):
    # Elasticsearch is down when the worker starts: no exception, no exit.
    app = create_app(outage_config(node_port.url, prefix))
    client = app.test_client()
    for method, path, kwargs in agent_requests("host-1", "0" * 32):
        assert_unavailable(client.open(path, method=method, **kwargs), path)
    assert client.get("/healthz").status_code == 200

    node_port.open()
    time.sleep(INTERVAL)
    assert client.get("/readyz").status_code == 200
    token = register(client, "host-1")
    rows = [osquery_line("host-1", counter=i) for i in range(3)]
    res = submit(client, "host-1", token, rows)
    assert res.status_code == 200, res.data
    assert len(stored(es, prefix)) == 3


def test_registry_not_set_up_is_503_until_it_is(es_url, es, prefix, names):
    client = create_app(outage_config(es_url, prefix)).test_client()
    for method, path, kwargs in agent_requests("host-1", "0" * 32):
        assert_unavailable(client.open(path, method=method, **kwargs), path)
    setup_storage(es, names)
    time.sleep(INTERVAL)
    assert client.get("/readyz").status_code == 200
    register(client, "host-1")


def test_batch_refused_while_down_is_stored_once_after(node_port, storage, es, prefix):
    node_port.open()
    client = create_app(outage_config(node_port.url, prefix)).test_client()
    token = register(client, "host-1")
    assert client.get("/ping", headers=basic("host-1", token)).status_code == 200  # cached
    assert client.get("/readyz").status_code == 200
    batch = [osquery_line("host-1", counter=i) for i in range(10)]

    node_port.close()
    res = submit(client, "host-1", token, batch)
    assert res.status_code == 503
    assert res.headers["Retry-After"]
    time.sleep(INTERVAL)
    assert client.get("/readyz").status_code == 503
    assert stored(es, prefix) == []

    node_port.open()
    time.sleep(INTERVAL)
    assert submit(client, "host-1", token, batch).status_code == 200
    assert submit(client, "host-1", token, batch).status_code == 200
    assert len(stored(es, prefix)) == 10


@pytest.mark.parametrize("startup_check", [True, False])
def test_unreachable_is_explained_in_the_log(dead_url, prefix, caplog, startup_check):
    app = create_app(outage_config(dead_url, prefix, startup_check=startup_check))
    app.test_client().get("/readyz")
    reasons = [getattr(r, "reason", None) for r in caplog.records]
    assert "storage_unreachable" in reasons
    details = [getattr(r, "detail", "") for r in caplog.records]
    assert any(d.startswith("cannot reach Elasticsearch at http://127.0.0.1") for d in details)
