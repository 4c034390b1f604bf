"""Elasticsearch unreachable: 503 (the agent keeps its data and retries), a clear
start-up error, and nothing lost once it is back."""

import json

import pytest

from flock_gateway.app import CannotStart, create_app
from flock_gateway.config import Config
from flock_gateway.services import EXTENSION_KEY
from flock_gateway.storage.client import make_client

from .helpers import basic, osquery_line, register, stored, submit


def test_startup_error_when_unreachable(dead_url, prefix):
    cfg = Config(es_hosts=(dead_url,), index_prefix=prefix, es_max_retries=0, es_timeout=2)
    with pytest.raises(CannotStart, match=r"cannot reach Elasticsearch at http://127\.0\.0\.1"):
        create_app(cfg)


def test_startup_error_without_storage_setup(es_url, prefix):
    cfg = Config(es_hosts=(es_url,), index_prefix=prefix)
    with pytest.raises(CannotStart, match="setup-storage"):
        create_app(cfg)


def test_503_when_storage_is_down(dead_url, prefix):
    cfg = Config(es_hosts=(dead_url,), index_prefix=prefix, startup_check=False, es_max_retries=0)
    client = create_app(cfg).test_client()
    for method, path, kwargs in (
        ("POST", "/register", {"json": {"username": "host-1"}}),
        ("GET", "/ping", {"headers": basic("host-1", "0" * 32)}),
        ("POST", "/submit", {"headers": basic("host-1", "0" * 32), "json": []}),
        ("GET", "/readyz", {}),
    ):
        res = client.open(path, method=method, **kwargs)
        assert res.status_code == 503, path
        body = json.loads(res.data)
        assert body["error"] is True
        assert "unavailable" in body["error_msg"].lower()
        assert res.headers["Retry-After"]
    assert client.get("/healthz").status_code == 200


def test_batch_refused_while_down_is_stored_once_after(app, client, es, prefix, dead_url):
    token = register(client, "host-1")
    assert client.get("/ping", headers=basic("host-1", token)).status_code == 200  # cached
    assert client.get("/readyz").status_code == 200
    svc = app.extensions[EXTENSION_KEY]
    live_client = svc.writer.client
    dead = make_client(Config(es_hosts=(dead_url,), es_max_retries=0))
    batch = [osquery_line("host-1", counter=i) for i in range(10)]

    svc.writer.client = dead
    svc.client = dead
    res = submit(client, "host-1", token, batch)
    assert res.status_code == 503
    assert client.get("/readyz").status_code == 503
    assert stored(es, prefix) == []

    svc.writer.client = live_client
    svc.client = live_client
    assert submit(client, "host-1", token, batch).status_code == 200
    assert submit(client, "host-1", token, batch).status_code == 200
    assert len(stored(es, prefix)) == 10
