import base64

from flock_gateway.auth import (
    Agent,
    AuthCache,
    Authenticator,
    hash_token,
    new_token,
    parse_basic_auth,
    secret_in,
    token_matches,
)


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_tokens_are_random_and_hashed():
    a, b = new_token(), new_token()
    assert a != b
    assert len(a) == 32
    assert int(a, 16) >= 0
    h = hash_token(a)
    assert h.startswith("sha256:")
    assert a not in h
    assert token_matches(a, h)
    assert not token_matches(b, h)
    assert not token_matches(a.upper(), h)
    assert not token_matches("", h)


def test_parse_basic_auth():
    assert parse_basic_auth(basic("host-1:tok")) == ("host-1", "tok")
    assert parse_basic_auth(basic("host-1:tok:with:colons")) == ("host-1", "tok:with:colons")
    assert parse_basic_auth("basic " + basic("h:t").split()[1]) == ("h", "t")
    for bad in [
        None,
        "",
        "Basic",
        "Bearer abc",
        basic("no-colon"),
        basic("host-1:"),
        basic(":tok"),
        basic("victim laptop:tok"),
        basic("vic*:tok"),
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"\xff\xfe:tok").decode(),
        basic("h:" + "t" * 300),
    ]:
        assert parse_basic_auth(bad) is None, bad


def test_secret_in():
    secrets = ["s" * 16, "t" * 16]
    assert secret_in("t" * 16, secrets)
    assert not secret_in("u" * 16, secrets)
    assert not secret_in(None, secrets)
    assert not secret_in("", secrets)
    assert not secret_in("s" * 16, [])


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _agent(username="host-1", token="tok"):
    return Agent(username=username, name="Laptop", token_hash=hash_token(token))


def test_authenticator_caches_and_expires():
    clock = FakeClock()
    registry = {"host-1": _agent()}
    lookups = []

    def lookup(username):
        lookups.append(username)
        return registry.get(username)

    auth = Authenticator(lookup, AuthCache(ttl=10, clock=clock))
    assert auth.verify("host-1", "tok").username == "host-1"
    assert auth.verify("host-1", "tok")
    assert auth.verify("host-1", "wrong") is None
    assert lookups == ["host-1"]  # one storage round trip for three requests

    del registry["host-1"]  # revoked in storage
    clock.now += 9.9
    assert auth.verify("host-1", "tok")  # still cached within the TTL
    clock.now += 0.2
    assert auth.verify("host-1", "tok") is None  # revocation effective after the TTL
    assert lookups == ["host-1", "host-1"]


def test_unknown_agents_are_not_cached():
    clock = FakeClock()
    registry = {}
    auth = Authenticator(registry.get, AuthCache(ttl=10, clock=clock))
    assert auth.verify("host-1", "tok") is None
    registry["host-1"] = _agent()  # registered through another worker
    assert auth.verify("host-1", "tok")


def test_cache_disabled_with_zero_ttl():
    calls = []

    def lookup(username):
        calls.append(username)
        return _agent()

    auth = Authenticator(lookup, AuthCache(ttl=0))
    auth.verify("host-1", "tok")
    auth.verify("host-1", "tok")
    assert len(calls) == 2


def test_cache_is_per_username():
    clock = FakeClock()
    registry = {"attacker-laptop": _agent("attacker-laptop", "atk")}
    auth = Authenticator(registry.get, AuthCache(ttl=10, clock=clock))
    assert auth.verify("attacker-laptop", "atk")
    assert auth.verify("victim-laptop", "atk") is None
