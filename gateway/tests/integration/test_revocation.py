"""Auth cache: no storage round trip per request; revocation effective within the TTL."""

import json

from flock_gateway.cli import main
from flock_gateway.services import EXTENSION_KEY

from .helpers import basic, osquery_line, register, submit


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_revocation_takes_effect_within_ttl(app, client, env, capsys):
    svc = app.extensions[EXTENSION_KEY]
    clock = Clock()
    svc.authenticator.cache._clock = clock
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
