"""Identities: registration retried after an outage, one rule for case, names that look
like storage internals, credentials coherent across gunicorn workers (one app per
worker here, each with its own cache, on the same node), osquery re-enrollment."""

from __future__ import annotations

import json

import pytest
from elasticsearch import ConnectionTimeout

from flock_gateway.app import create_app
from flock_gateway.auth import hash_token
from flock_gateway.cli import main
from flock_gateway.config import Config
from flock_gateway.services import EXTENSION_KEY
from flock_gateway.storage.templates import setup_storage

from .helpers import basic, osquery_line, register, stored, submit

SECRET = "enroll-secret-identity-0123456789"
HOST_ID = "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"
USERNAME = f"osq-{HOST_ID}"  # the registry name the gateway gives the host


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


class LateAnswers:
    """Fault injection on one app's registry client: the next call of ``method`` is
    answered with a timeout, after Elasticsearch did the write (``stored=True``: the answer
    was lost) or before it (``stored=False``)."""

    def __init__(self, monkeypatch, svc) -> None:
        self._monkeypatch = monkeypatch
        self._client = svc.registry.client

    def arm(self, method: str, *, stored: bool) -> None:
        real = getattr(self._client, method)

        def once(*args, **kwargs):
            self._monkeypatch.setattr(self._client, method, real)
            if stored:
                real(*args, **kwargs)
            raise ConnectionTimeout("injected: no answer in time")

        self._monkeypatch.setattr(self._client, method, once)


@pytest.fixture
def late_answers(monkeypatch, app) -> LateAnswers:
    return LateAnswers(monkeypatch, app.extensions[EXTENSION_KEY])


@pytest.mark.parametrize(
    ("method", "stored"),
    [("create", True), ("update", False)],
    ids=["record-stored-answer-lost", "confirmation-failed"],
)
def test_a_registration_answered_503_can_be_retried(client, late_answers, method, stored):
    # the record is written, then marked delivered (update): either failing is a 503, and
    # the laptop never sees the token
    late_answers.arm(method, stored=stored)
    res = client.post("/register", json={"username": "laptop-7", "name": "Laptop"})
    assert res.status_code == 503, res.data
    assert "auth_token" not in json.loads(res.data)

    token = register(client, "laptop-7", "Laptop")  # the laptop's retry
    assert client.get("/ping", headers=basic("laptop-7", token)).status_code == 200
    # delivered now: nobody can take the name
    res = client.post("/register", json={"username": "laptop-7"})
    assert res.status_code == 400
    assert "already registered" in json.loads(res.data)["error_msg"]
    assert client.get("/ping", headers=basic("laptop-7", token)).status_code == 200


def test_a_delivered_registration_is_never_registered_again(es_url, prefix, storage):
    """Registered (200, token A) and not yet used; someone else registers the name, through
    either worker: refused, and token A keeps working everywhere."""
    config = Config(es_hosts=(es_url,), index_prefix=prefix, auth_cache_ttl=10)
    clock = Clock()
    a, _, _ = _worker(config, clock)
    b, _, _ = _worker(config, clock)
    token = register(a, "laptop-9", "Owner")
    for worker in (a, b, a):
        for spelling in ("laptop-9", "LAPTOP-9"):
            res = worker.post("/register", json={"username": spelling, "name": "Intruder"})
            assert res.status_code == 400
            assert "already registered" in json.loads(res.data)["error_msg"]
    for i in range(24):
        clock.now += 0.5
        worker = (a, b)[i % 2]
        assert worker.get("/ping", headers=basic("laptop-9", token)).status_code == 200


def test_osquery_names_cannot_be_registered(client, es_url, prefix):
    osq = create_app(
        Config(es_hosts=(es_url,), index_prefix=prefix, enroll_secrets=(SECRET,))
    ).test_client()
    # a Flock agent may use the host's identifier as its own name: it is not the host's
    register(client, HOST_ID)
    for name in (f"osq-{HOST_ID}", f"OSQ-{HOST_ID}", "osq-x"):
        res = client.post("/register", json={"username": name})
        assert res.status_code == 400
        assert "reserved for osquery hosts" in json.loads(res.data)["error_msg"]
    res = osq.post("/osquery/enroll", json={"enroll_secret": SECRET, "host_identifier": HOST_ID})
    key = json.loads(res.data)["node_key"]
    assert key.startswith(f"osq-{HOST_ID}:")
    res = osq.post("/osquery/config", json={"node_key": key})
    assert json.loads(res.data)["node_invalid"] is False


def test_a_host_enrolled_under_its_bare_identifier_keeps_its_record(app, es_url, prefix):
    """Records of older releases are named after the identifier itself."""
    from flock_gateway.fields import OSQUERY

    registry = app.extensions[EXTENSION_KEY].registry
    registry.register(HOST_ID, "", hash_token("old"), source=OSQUERY, host_identifier=HOST_ID)
    osq = create_app(
        Config(es_hosts=(es_url,), index_prefix=prefix, enroll_secrets=(SECRET,))
    ).test_client()
    res = osq.post("/osquery/enroll", json={"enroll_secret": SECRET, "host_identifier": HOST_ID})
    key = json.loads(res.data)["node_key"]
    assert key.startswith(f"{HOST_ID}:")  # re-keyed the record it had, no second one
    res = osq.post("/osquery/config", json={"node_key": key})
    assert json.loads(res.data)["node_invalid"] is False
    assert [a.username for a in registry.list()] == [HOST_ID]


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


def test_new_credentials_work_at_once_in_every_worker(es_url, prefix, storage, env, capsys):
    config = Config(
        es_hosts=(es_url,),
        index_prefix=prefix,
        enroll_secrets=(SECRET,),
        auth_cache_ttl=10,
        refuse_reenroll_within_hours=0,
    )
    clock = Clock()
    a, _, _ = _worker(config, clock)
    b, _, lookups_b = _worker(config, clock)

    def enroll(client):
        res = client.post(
            "/osquery/enroll", json={"enroll_secret": SECRET, "host_identifier": HOST_ID}
        )
        return json.loads(res.data)["node_key"]

    def config_ok(client, key):
        res = client.post("/osquery/config", json={"node_key": key})
        return json.loads(res.data)["node_invalid"] is False

    def log_ok(client, key):
        line = osquery_line(HOST_ID)
        body = {"node_key": key, "log_type": "result", "data": [line]}
        res = client.post("/osquery/log", json=body)
        return json.loads(res.data)["node_invalid"] is False

    key = enroll(a)
    accepted = 0
    rounds = 20
    for _ in range(rounds):
        assert config_ok(b, key)  # worker b has the record cached, read just now
        old, key = key, enroll(a)  # re-enrolled through worker a, the clock standing still
        accepted += config_ok(b, key) and log_ok(b, key) and config_ok(b, key)
    assert accepted == rounds
    # one re-read per new key in worker b, not one per request
    assert len(lookups_b) <= rounds + 1
    # the replaced key stops within the cache lifetime, in every worker
    assert not config_ok(a, old)
    clock.now += 10.5
    assert not config_ok(b, old)
    assert config_ok(b, key)

    # a Flock agent revoked and registered again through one worker: its new token works at
    # once through the other, which has the old record cached
    token = json.loads(
        a.post("/register", json={"username": "laptop-3", "enroll_secret": SECRET}).data
    )["auth_token"]
    assert b.get("/ping", headers=basic("laptop-3", token)).status_code == 200
    assert main(["agents", "revoke", "laptop-3"]) == 0
    capsys.readouterr()
    res = a.post("/register", json={"username": "laptop-3", "enroll_secret": SECRET})
    new_token = json.loads(res.data)["auth_token"]
    for _ in range(5):
        assert b.get("/ping", headers=basic("laptop-3", new_token)).status_code == 200


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
    # 3 s of guessing: a burst of 3 re-reads, then one a second
    assert len(lookups) <= 3 + 3
    assert client.get("/ping", headers=basic("victim-1", token)).status_code == 200


def _osquery_app(es_url, prefix, hours):
    config = Config(
        es_hosts=(es_url,),
        index_prefix=prefix,
        enroll_secrets=(SECRET,),
        auth_cache_ttl=0,
        **({} if hours is None else {"refuse_reenroll_within_hours": hours}),
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


def test_reenrollment_of_a_recently_seen_host_is_refused_by_default(
    es_url, prefix, storage, env, capsys
):
    client, svc = _osquery_app(es_url, prefix, hours=None)
    assert svc.config.refuse_reenroll_within_hours == 24
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

    # the operator lets the host enroll once more
    assert main(["agents", "allow-reenroll", USERNAME]) == 0
    capsys.readouterr()
    again = _enroll(client)["node_key"]
    assert again != key
    res = client.post("/osquery/config", json={"node_key": again})
    assert json.loads(res.data)["node_invalid"] is False
    assert _enroll(client) == {"node_invalid": True}  # the permission was for once
    assert _agents(capsys)[USERNAME]["reenrollments"] == 2

    # or re-keys it deliberately: revoke, and the host's next enrollment starts afresh
    assert main(["agents", "revoke", USERNAME]) == 0
    capsys.readouterr()
    fresh = _enroll(client)["node_key"]
    res = client.post("/osquery/config", json={"node_key": fresh})
    assert json.loads(res.data)["node_invalid"] is False
    res = client.post("/osquery/config", json={"node_key": again})
    assert json.loads(res.data)["node_invalid"] is True


def test_reenrollment_can_be_allowed_and_is_logged(es_url, prefix, storage, env, capsys, caplog):
    client, svc = _osquery_app(es_url, prefix, hours=0)
    first = _enroll(client)["node_key"]
    client.post("/osquery/config", json={"node_key": first})
    second = _enroll(client)["node_key"]
    assert first != second
    assert svc.metrics.get("flock_enroll_total", result="re-enrolled") == 1
    assert any("osquery host re-enrolled" in r.getMessage() for r in caplog.records)
    assert _agents(capsys)[USERNAME]["reenrollments"] == 1


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
