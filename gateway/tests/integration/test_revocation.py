"""Auth cache: no storage round trip per request; revocation effective within the TTL."""

import json
import threading

import pytest
from elasticsearch import ConnectionError, Elasticsearch

from flock_gateway.cli import main
from flock_gateway.services import EXTENSION_KEY
from flock_gateway.storage.registry import GENERATION_ID

from .helpers import basic, osquery_line, register, submit


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(app) -> Clock:
    """The app's auth cache on a clock the test moves."""
    frozen = Clock()
    app.extensions[EXTENSION_KEY].authenticator.cache._clock = frozen
    return frozen


def test_revocation_takes_effect_within_ttl(app, client, env, capsys, clock):
    svc = app.extensions[EXTENSION_KEY]
    lookups = []
    real_lookup = svc.authenticator._lookup

    def counting_lookup(username):
        lookups.append(username)
        return real_lookup(username)

    svc.authenticator._lookup = counting_lookup

    token = register(client, "host-1")
    for _ in range(5):
        assert client.get("/ping", headers=basic("host-1", token)).status_code == 200
    assert submit(client, "host-1", token, [osquery_line("host-1")]).status_code == 200
    assert lookups == ["host-1"]  # one registry read for six requests

    # revoke from the admin CLI (another process in production)
    assert main(["agents", "revoke", "host-1"]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is True

    clock.now += svc.config.auth_cache_ttl - 0.5
    assert client.get("/ping", headers=basic("host-1", token)).status_code == 200
    clock.now += 1.0  # past the TTL
    assert client.get("/ping", headers=basic("host-1", token)).status_code == 401
    res = submit(client, "host-1", token, [osquery_line("host-1")])
    assert res.status_code == 401

    # the username can be registered again, with a new token; the old one stays dead
    new_token = register(client, "host-1")
    assert client.get("/ping", headers=basic("host-1", new_token)).status_code == 200
    assert client.get("/ping", headers=basic("host-1", token)).status_code == 401


def test_rename_shows_up_in_new_rows(app, client, env, es, prefix, capsys):
    from .helpers import stored

    token = register(client, "host-1", "Old Name")
    assert main(["agents", "rename", "host-1", "New Name"]) == 0
    capsys.readouterr()
    app.extensions[EXTENSION_KEY].authenticator.cache.invalidate("host-1")
    assert submit(client, "host-1", token, [osquery_line("host-1")]).status_code == 200
    (hit,) = stored(es, prefix)
    assert hit["_source"]["flock"]["name"] == "New Name"


class PausedLookup:
    """A hook in one app's registry lookup: its first call stops, ``before`` or ``after``
    it reads the record, until the test releases it. The test drives the interleaving of a
    lookup in flight with a revocation and another request, with no timing involved."""

    def __init__(self, authenticator, where: str) -> None:
        self._real = authenticator._lookup
        self._where = where
        self._lock = threading.Lock()
        self._used = False
        self.reached = threading.Event()
        self.release = threading.Event()
        authenticator._lookup = self

    def __call__(self, username):
        with self._lock:
            first, self._used = not self._used, True
        if first and self._where == "before":
            self._pause()
        agent = self._real(username)
        if first and self._where == "after":
            self._pause()
        return agent

    def _pause(self) -> None:
        self.reached.set()
        assert self.release.wait(60), "the test never released the lookup"


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_lookup_in_flight_across_a_revocation_is_never_trusted(app, env, capsys, clock, where):
    """A request reads the generation, then the record (``where`` it pauses); meanwhile
    the agent is revoked and another request takes in the new generation. The paused read
    may be answered (it began before the revocation) but is never trusted afterwards."""
    svc = app.extensions[EXTENSION_KEY]
    ttl = svc.config.auth_cache_ttl
    client = app.test_client()
    token = register(client, "host-1")
    # the worker reads the generation now; host-1's record is not cached yet
    assert client.get("/ping", headers=basic("nobody", "0" * 32)).status_code == 401

    paused = PausedLookup(svc.authenticator, where)
    in_flight: list[int] = []

    def request() -> None:
        res = app.test_client().get("/ping", headers=basic("host-1", token))
        in_flight.append(res.status_code)

    thread = threading.Thread(target=request)
    thread.start()
    assert paused.reached.wait(60)
    assert main(["agents", "revoke", "host-1"]) == 0
    capsys.readouterr()
    clock.now += ttl + 0.1
    # another request in this worker takes in the new generation while the read waits
    assert client.get("/ping", headers=basic("host-1", token)).status_code == 401
    paused.release.set()
    thread.join(60)
    # the paused request is answered by what it read: before the revocation, or after
    assert in_flight == [200 if where == "after" else 401]

    # from now on, up to the record's longest life in the cache: refused
    for step in (0.0, 1.0, ttl, 60.0, 600.0, 3500.0):
        clock.now += step
        assert client.get("/ping", headers=basic("host-1", token)).status_code == 401


class FailingGenerationWrites:
    """Fault injection on the Elasticsearch client class (so it reaches the CLI's own
    client): the next ``n`` writes of the registry's generation document fail."""

    def __init__(self, monkeypatch) -> None:
        self.left = 0
        for method in ("index", "create"):
            real = getattr(Elasticsearch, method)
            monkeypatch.setattr(Elasticsearch, method, self._wrap(real))

    def _wrap(self, real):
        failing = self

        def write(client, *args, **kwargs):
            if kwargs.get("id") == GENERATION_ID and failing.left > 0:
                failing.left -= 1
                raise ConnectionError("injected: generation write failed")
            return real(client, *args, **kwargs)

        return write


@pytest.fixture
def failing_generation_writes(monkeypatch) -> FailingGenerationWrites:
    return FailingGenerationWrites(monkeypatch)


def test_a_revocation_whose_bump_failed_is_completed_by_running_it_again(
    app, env, capsys, clock, failing_generation_writes
):
    svc = app.extensions[EXTENSION_KEY]
    ttl = svc.config.auth_cache_ttl
    client = app.test_client()
    token = register(client, "host-1")
    assert client.get("/ping", headers=basic("host-1", token)).status_code == 200

    failing_generation_writes.left = 1
    assert main(["agents", "revoke", "host-1"]) == 1  # deleted, but no worker was told
    assert json.loads(capsys.readouterr().out)["reason"] == "storage_unavailable"
    clock.now += ttl + 0.1
    assert client.get("/ping", headers=basic("host-1", token)).status_code == 200

    # the operator runs it again: nothing left to delete, and every worker is told
    assert main(["agents", "revoke", "host-1"]) == 1
    assert json.loads(capsys.readouterr().out)["reason"] == "unknown_agent"
    clock.now += ttl + 0.1
    assert client.get("/ping", headers=basic("host-1", token)).status_code == 401
