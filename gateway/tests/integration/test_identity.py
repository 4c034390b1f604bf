"""Identities: registration retried after an outage, one rule for case, names that look
like storage internals, credentials coherent across gunicorn workers (one app per
worker here, each with its own cache, on the same node), osquery re-enrollment."""

from __future__ import annotations

import json

import pytest

from flock_gateway.app import create_app
from flock_gateway.auth import hash_token
from flock_gateway.cli import main
from flock_gateway.config import Config
from flock_gateway.services import EXTENSION_KEY
from flock_gateway.storage.templates import setup_storage

from .helpers import basic, osquery_line, register, stored, submit

SECRET = "enroll-secret-identity-0123456789"
HOST_ID = "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _worker(config: Config, clock: Clock):
    app = create_app(config)
    svc = app.extensions[EXTENSION_KEY]
    svc.authenticator.cache._clock = clock
    lookups: list[str] = []
    real = svc.authenticator._lookup

    def counting(username: str):
        lookups.append(username)
        return real(username)

    svc.authenticator._lookup = counting
    return app.test_client(), svc, lookups


def test_registration_stored_but_answered_late_can_be_retried(client, app):
    registry = app.extensions[EXTENSION_KEY].registry
    # storage kept the record, but the laptop never got the token (the gateway said 503)
    registry.register("laptop-7", "Laptop", hash_token("never-delivered"))
    res = client.post("/register", json={"username": "laptop-7", "name": "Laptop"})
    assert res.status_code == 200, res.data
    token = json.loads(res.data)["auth_token"]
    assert client.get("/ping", headers=basic("laptop-7", token)).status_code == 200
    assert client.get("/ping", headers=basic("laptop-7", "never-delivered")).status_code == 401
    # now in use: nobody else can take the name
    res = client.post("/register", json={"username": "laptop-7"})
    assert res.status_code == 400
    assert "already registered" in json.loads(res.data)["error_msg"]
    assert client.get("/ping", headers=basic("laptop-7", token)).status_code == 200


def test_registration_retry_window_is_bounded(es_url, prefix, storage):
    client = create_app(
        Config(es_hosts=(es_url,), index_prefix=prefix, register_retry_seconds=0)
    ).test_client()
    register(client, "laptop-8")
    assert client.post("/register", json={"username": "laptop-8"}).status_code == 400


def test_usernames_differing_by_case_are_one_identity(client, es, prefix):
    token = register(client, "Laptop-1", "Nick")
    assert client.get("/ping", headers=basic("Laptop-1", token)).status_code == 200
    for spelling in ("laptop-1", "LAPTOP-1"):
        assert client.post("/register", json={"username": spelling}).status_code == 400
        assert client.get("/ping", headers=basic(spelling, token)).status_code == 200
    res = submit(client, "laptop-1", token, [osquery_line("laptop-1")])
    assert res.status_code == 200, res.data
    (hit,) = stored(es, prefix)
    assert hit["_source"]["flock"]["username"] == "Laptop-1"  # the registered spelling
    assert client.get("/ping", headers=basic("laptop-2", token)).status_code == 401


@pytest.mark.parametrize("name", ["_search", "-", "__generation__", "_", "-x", "__flock"])
def test_names_that_look_like_storage_internals_are_refused(client, name):
    res = client.post("/register", json={"username": name})
    assert res.status_code == 400
    assert json.loads(res.data)["error"] is True
    assert client.get("/ping", headers=basic(name, "x" * 32)).status_code == 401


def test_new_credentials_work_at_once_in_every_worker(es_url, prefix, storage):
    config = Config(
        es_hosts=(es_url,), index_prefix=prefix, enroll_secrets=(SECRET,), auth_cache_ttl=10
    )
    clock = Clock()
    a, _, _ = _worker(config, clock)
    b, _, _ = _worker(config, clock)

    def enroll(client):
        res = client.post(
            "/osquery/enroll", json={"enroll_secret": SECRET, "host_identifier": HOST_ID}
        )
        return json.loads(res.data)["node_key"]

    def config_ok(client, key):
        res = client.post("/osquery/config", json={"node_key": key})
        return json.loads(res.data)["node_invalid"] is False

    first = enroll(a)
    assert config_ok(b, first)  # worker b caches the record
    clock.now += 2
    second = enroll(a)  # re-enrolled through worker a
    assert config_ok(b, second)  # at once in worker b, which cached the old record
    # the replaced key stops within the cache lifetime, in every worker
    assert not config_ok(a, first)
    clock.now += 10.5
    assert not config_ok(b, first)
    assert config_ok(b, second)

    # a flock agent registered through one worker works at once through the other
    res = a.post("/register", json={"username": "laptop-3", "enroll_secret": SECRET})
    token = json.loads(res.data)["auth_token"]
    assert b.get("/ping", headers=basic("laptop-3", token)).status_code == 200


def test_revocation_reaches_every_worker_within_the_ttl(es_url, prefix, storage, env, capsys):
    config = Config(es_hosts=(es_url,), index_prefix=prefix, auth_cache_ttl=10)
    clock = Clock()
    a, _, _ = _worker(config, clock)
    b, _, _ = _worker(config, clock)
    token = register(a, "laptop-4")
    for worker in (a, b):
        assert worker.get("/ping", headers=basic("laptop-4", token)).status_code == 200
    assert main(["agents", "revoke", "laptop-4"]) == 0
    capsys.readouterr()
    clock.now += 10.5
    for worker in (a, b):
        assert worker.get("/ping", headers=basic("laptop-4", token)).status_code == 401


def test_guessing_tokens_costs_no_registry_read_per_request(es_url, prefix, storage):
    config = Config(es_hosts=(es_url,), index_prefix=prefix, auth_cache_ttl=10)
    clock = Clock()
    client, _, lookups = _worker(config, clock)
    token = register(client, "victim-1")
    assert client.get("/ping", headers=basic("victim-1", token)).status_code == 200
    lookups.clear()
    for i in range(300):
        clock.now += 0.01
        res = client.get("/ping", headers=basic("victim-1", f"{i:032x}"))
        assert res.status_code == 401
    assert len(lookups) <= 4
    assert client.get("/ping", headers=basic("victim-1", token)).status_code == 200


def _osquery_app(es_url, prefix, hours):
    config = Config(
        es_hosts=(es_url,),
        index_prefix=prefix,
        enroll_secrets=(SECRET,),
        auth_cache_ttl=0,
        refuse_reenroll_within_hours=hours,
    )
    app = create_app(config)
    return app.test_client(), app.extensions[EXTENSION_KEY]


def _enroll(client):
    res = client.post("/osquery/enroll", json={"enroll_secret": SECRET, "host_identifier": HOST_ID})
    assert res.status_code == 200
    return json.loads(res.data)


def _agents(capsys):
    assert main(["agents", "list", "--json"]) == 0
    return {a["username"]: a for a in json.loads(capsys.readouterr().out)}


def test_reenrollment_is_counted_and_can_be_refused(es_url, prefix, storage, env, capsys):
    client, svc = _osquery_app(es_url, prefix, hours=24)
    key = _enroll(client)["node_key"]
    # never used yet: enrolling again is how an interrupted enrollment is retried
    key = _enroll(client)["node_key"]
    res = client.post("/osquery/config", json={"node_key": key})
    assert json.loads(res.data)["node_invalid"] is False  # the host is now "seen"

    # someone else with the enrollment secret and this (non-secret) host id
    assert _enroll(client) == {"node_invalid": True}
    assert svc.metrics.get("flock_enroll_total", result="reenroll_refused") == 1
    res = client.post("/osquery/config", json={"node_key": key})
    assert json.loads(res.data)["node_invalid"] is False  # the owner keeps its key

    assert main(["agents", "allow-reenroll", HOST_ID]) == 0
    capsys.readouterr()
    again = _enroll(client)["node_key"]
    assert again != key
    res = client.post("/osquery/config", json={"node_key": again})
    assert json.loads(res.data)["node_invalid"] is False
    assert _enroll(client) == {"node_invalid": True}  # the permission was for once
    assert _agents(capsys)[HOST_ID]["reenrollments"] == 2


def test_reenrollment_allowed_by_default_but_logged(es_url, prefix, storage, env, capsys, caplog):
    client, svc = _osquery_app(es_url, prefix, hours=0)
    first = _enroll(client)["node_key"]
    client.post("/osquery/config", json={"node_key": first})
    second = _enroll(client)["node_key"]
    assert first != second
    assert svc.metrics.get("flock_enroll_total", result="re-enrolled") == 1
    assert any("osquery host re-enrolled" in r.getMessage() for r in caplog.records)
    assert _agents(capsys)[HOST_ID]["reenrollments"] == 1


def test_setup_storage_adds_new_registry_fields_to_an_existing_index(es, names):
    es.indices.create(
        index=names.agents,
        mappings={"dynamic": "strict", "properties": {"username": {"type": "keyword"}}},
    )
    report = setup_storage(es, names)
    assert report["registry_index"] == "updated"
    props = es.indices.get_mapping(index=names.agents)[names.agents]["mappings"]["properties"]
    assert {"last_seen", "token_hash", "reenrollments"} <= set(props)
    assert setup_storage(es, names)["registry_index"] == "unchanged"
