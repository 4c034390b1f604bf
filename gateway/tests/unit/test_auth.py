import base64

from flock_gateway.auth import (
    Agent,
    AuthCache,
    Authenticator,
    Generation,
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
    assert lookups == ["host-1"]  # one storage round trip for two requests

    del registry["host-1"]  # revoked in storage
    clock.now += 9.9
    assert auth.verify("host-1", "tok")  # still cached within the TTL
    clock.now += 0.2
    assert auth.verify("host-1", "tok") is None  # revocation effective after the TTL
    assert lookups == ["host-1", "host-1"]


def test_unknown_agents_are_reread_at_a_bounded_rate():
    clock = FakeClock()
    registry = {}
    lookups = []

    def lookup(username):
        lookups.append(username)
        return registry.get(username)

    auth = Authenticator(lookup, AuthCache(ttl=10, clock=clock, recheck=1.0, recheck_burst=3))
    for _ in range(10):
        assert auth.verify("host-1", "tok") is None
    assert len(lookups) == 4  # the first read and a burst of 3 re-reads
    clock.now += 1.0
    registry["host-1"] = _agent()  # registered through another worker
    assert auth.verify("host-1", "tok")  # one re-read per second is allowed again
    assert len(lookups) == 5


class Registry:
    """The registry as the cache sees it (a stand-in for storage/registry.py, which the
    integration tests use): records, and a generation bumped by every revocation /
    re-keying, listing the names of its last ``keep`` bumps."""

    def __init__(self, keep=256):
        self.records = {}
        self.gen = 0
        self.changed = []
        self.keep = keep
        self.lookups = 0
        self.generation_reads = 0

    def get(self, username):
        self.lookups += 1
        return self.records.get(username)

    def generation(self):
        self.generation_reads += 1
        return Generation(self.gen, tuple(self.changed[-self.keep :]))

    def bump(self, username):
        self.gen += 1
        self.changed.append(username)

    def rekey(self, username, token):
        self.records[username] = _agent(username, token)
        self.bump(username)

    def revoke(self, username):
        del self.records[username]
        self.bump(username)


def _worker(registry, clock, **kw):
    return Authenticator(registry.get, AuthCache(ttl=10, clock=clock, **kw), registry.generation)


def test_guessed_tokens_cost_at_most_one_lookup_per_second():
    clock, registry = FakeClock(), Registry()
    registry.records["victim"] = _agent("victim", "secret")
    auth = _worker(registry, clock)
    for i in range(1000):
        clock.now += 0.01  # 100 requests per second for 10 s, each with a new guess
        assert auth.verify("victim", f"guess-{i}") is None
    assert registry.lookups <= 1 + 3 + 10
    assert registry.generation_reads <= 2
    assert auth.verify("victim", "secret")


def test_new_credentials_work_at_once_in_every_worker():
    clock, registry = FakeClock(), Registry()
    registry.records["host-1"] = _agent("host-1", "old")
    a, b = _worker(registry, clock), _worker(registry, clock)
    assert a.verify("host-1", "old")
    assert b.verify("host-1", "old")
    # re-keyed through worker a, again and again, the clock standing still
    for i in range(20):
        registry.rekey("host-1", f"new-{i}")
        assert b.verify("host-1", f"new-{i}")  # worker b, which cached the previous record
        assert a.verify("host-1", f"new-{i}")
        for _ in range(5):
            assert b.verify("host-1", f"new-{i}")
    assert registry.lookups == 2 + 2 * 20  # one read per new key and worker


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


def test_a_change_forgets_only_the_changed_name():
    clock, registry = FakeClock(), Registry()
    for i in range(50):
        registry.records[f"host-{i}"] = _agent(f"host-{i}", "tok")
    auth = _worker(registry, clock)
    for i in range(50):
        assert auth.verify(f"host-{i}", "tok")
    registry.revoke("host-7")
    registry.rekey("host-8", "new")
    clock.now += 10.1
    registry.lookups = 0
    for i in range(50):
        assert bool(auth.verify(f"host-{i}", "tok")) is (i not in (7, 8))
    assert registry.lookups == 2  # only the two changed names were read again


def test_more_changes_than_the_registry_lists_forget_everything():
    clock, registry = FakeClock(), Registry(keep=2)
    for i in range(5):
        registry.records[f"host-{i}"] = _agent(f"host-{i}", "tok")
    auth = _worker(registry, clock)
    for i in range(5):
        assert auth.verify(f"host-{i}", "tok")
    for i in range(3):
        registry.rekey(f"host-{i}", "new")
    clock.now += 10.1
    registry.lookups = 0
    for i in range(5):
        assert bool(auth.verify(f"host-{i}", "tok")) is (i >= 3)
    assert registry.lookups == 5


def test_a_read_in_flight_across_a_revocation_is_not_trusted():
    """The record is read, then revoked; another request takes in the new generation
    before the first one caches what it read."""
    clock, registry = FakeClock(), Registry()
    registry.records["host-1"] = _agent("host-1", "tok")
    cache = AuthCache(ttl=10, clock=clock)
    in_flight = []

    def lookup(username):
        agent = registry.get(username)
        if not in_flight:
            in_flight.append(username)
            registry.revoke(username)
            clock.now += 10.1
            assert other.verify(username, "tok") is None  # reads the new generation
        return agent

    auth = Authenticator(lookup, cache, registry.generation)
    other = Authenticator(registry.get, cache, registry.generation)
    assert auth.verify("host-1", "tok")  # the request in flight: read before the revocation
    for _ in range(5):
        assert auth.verify("host-1", "tok") is None


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


def test_made_up_names_never_evict_known_agents():
    clock, registry = FakeClock(), Registry()
    for i in range(100):
        registry.records[f"host-{i}"] = _agent(f"host-{i}", "tok")
    auth = _worker(registry, clock, max_entries=200, max_misses=50)
    for i in range(100):
        assert auth.verify(f"host-{i}", "tok")
    for i in range(10_000):
        assert auth.verify(f"made-up-{i}", "tok") is None
    assert len(auth.cache) == 100
    registry.lookups = 0
    for i in range(100):
        assert auth.verify(f"host-{i}", "tok")
    assert registry.lookups == 0


def test_known_agents_are_bounded_least_recently_used_first():
    clock, registry = FakeClock(), Registry()
    for i in range(20):
        registry.records[f"host-{i}"] = _agent(f"host-{i}", "tok")
    auth = _worker(registry, clock, max_entries=10)
    for i in range(20):
        assert auth.verify(f"host-{i}", "tok")
    assert len(auth.cache) == 10
    registry.lookups = 0
    assert auth.verify("host-19", "tok")
    assert registry.lookups == 0
    assert auth.verify("host-0", "tok")
    assert registry.lookups == 1


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
