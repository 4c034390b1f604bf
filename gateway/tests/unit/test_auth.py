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


def test_unknown_agents_are_rechecked_but_not_per_request():
    clock = FakeClock()
    registry = {}
    lookups = []

    def lookup(username):
        lookups.append(username)
        return registry.get(username)

    auth = Authenticator(lookup, AuthCache(ttl=10, clock=clock))
    assert auth.verify("host-1", "tok") is None
    registry["host-1"] = _agent()  # registered through another worker
    assert auth.verify("host-1", "tok") is None  # a miss is remembered for a second
    clock.now += 1.0
    assert auth.verify("host-1", "tok")
    assert lookups == ["host-1", "host-1"]


class Registry:
    """The registry as the cache sees it: records, and a generation bumped by every
    revocation / re-keying (as storage/registry.py does)."""

    def __init__(self):
        self.records = {}
        self.gen = 0
        self.lookups = 0
        self.generation_reads = 0

    def get(self, username):
        self.lookups += 1
        return self.records.get(username)

    def generation(self):
        self.generation_reads += 1
        return self.gen

    def rekey(self, username, token):
        self.records[username] = _agent(username, token)
        self.gen += 1

    def revoke(self, username):
        del self.records[username]
        self.gen += 1


def _worker(registry, clock):
    return Authenticator(registry.get, AuthCache(ttl=10, clock=clock), registry.generation)


def test_guessed_tokens_never_cost_a_lookup_per_request():
    clock, registry = FakeClock(), Registry()
    registry.records["victim"] = _agent("victim", "secret")
    auth = _worker(registry, clock)
    for i in range(1000):
        clock.now += 0.01  # 100 requests per second for 10 s, each with a new guess
        assert auth.verify("victim", f"guess-{i}") is None
    assert registry.lookups <= 11
    assert registry.generation_reads <= 2
    assert auth.verify("victim", "secret")


def test_new_credentials_work_at_once_in_every_worker():
    clock, registry = FakeClock(), Registry()
    registry.records["host-1"] = _agent("host-1", "old")
    a, b = _worker(registry, clock), _worker(registry, clock)
    assert a.verify("host-1", "old")
    assert b.verify("host-1", "old")
    clock.now += 2
    registry.rekey("host-1", "new")  # re-enrolled through worker a
    assert b.verify("host-1", "new")  # worker b, which cached the old record
    assert a.verify("host-1", "new")


def test_revoked_or_replaced_credentials_stop_within_the_ttl():
    clock, registry = FakeClock(), Registry()
    registry.records["host-1"] = _agent("host-1", "old")
    auth = _worker(registry, clock)
    assert auth.verify("host-1", "old")
    registry.rekey("host-1", "new")
    clock.now += 9.9
    assert auth.verify("host-1", "old")  # not yet: within the cache lifetime
    clock.now += 0.2
    assert auth.verify("host-1", "old") is None
    assert auth.verify("host-1", "new")
    registry.revoke("host-1")
    clock.now += 10.1
    assert auth.verify("host-1", "new") is None


def test_agents_that_post_rarely_need_no_lookup_of_their_own():
    clock, registry = FakeClock(), Registry()
    for i in range(100):
        registry.records[f"host-{i}"] = _agent(f"host-{i}", "tok")
    auth = _worker(registry, clock)
    for _ in range(30):  # every agent posts once a minute for half an hour
        for i in range(100):
            clock.now += 0.6
            assert auth.verify(f"host-{i}", "tok")
    assert registry.lookups == 100  # one per agent, not one per post
    assert registry.generation_reads <= 30 * 60 / 10 + 1  # one per ttl, for all agents


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
