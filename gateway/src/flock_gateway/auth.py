"""Agent authentication: tokens, their hashes, HTTP Basic parsing and a short-lived cache.

Tokens are 128-bit random values, returned once at registration and stored only as a
SHA-256 hash (a slow KDF buys nothing for uniformly random secrets of this size). The
registry is looked up by exact document id (= username), never through analysed text,
and hashes are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .fields import FLOCK_AGENT

# Starts with a letter or digit: names like "_search", "-" or "__x" look like storage
# internals (and the registry keeps "__generation__"). Case does not make a different
# name: "Laptop-1" and "laptop-1" are one identity (see storage/registry.py).
USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")

HASH_PREFIX = "sha256:"
MAX_TOKEN_LEN = 256


def new_token() -> str:
    """Same shape as the original server's tokens (32 hex characters)."""
    return secrets.token_hex(16)


def hash_token(token: str) -> str:
    return HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token).encode(), stored_hash.encode())


def secret_in(candidate: str | None, secrets_: Iterable[str]) -> bool:
    """Constant-time membership test for enrollment secrets (checks every secret)."""
    if candidate is None:
        return False
    cand = candidate.encode("utf-8", "surrogatepass")
    found = False
    for secret in secrets_:
        found |= hmac.compare_digest(cand, secret.encode("utf-8", "surrogatepass"))
    return found


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """Parse ``Authorization: Basic base64(username:token)``; None when malformed.

    The username must be a valid agent username, so nothing odd ever reaches storage.
    """
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value or len(value) > 1024:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, token = decoded.partition(":")
    if not sep or not token or len(token) > MAX_TOKEN_LEN:
        return None
    if not USERNAME_RE.fullmatch(username):
        return None
    return username, token


@dataclass(frozen=True)
class Agent:
    username: str
    name: str
    token_hash: str
    source: str = FLOCK_AGENT
    created: str | None = None
    host_identifier: str | None = None
    # when the agent last authenticated (written at most once per SEEN_RESOLUTION); None
    # until its credentials have been used once
    last_seen: str | None = None
    reenroll_allowed: bool = False
    reenrollments: int = 0
    # the registry document's id and version, for conditional updates
    doc_id: str | None = None
    seq_no: int | None = None
    primary_term: int | None = None


def username_key(username: str) -> str:
    """Usernames that differ only by case are one identity: this is its registry key."""
    return username.lower()


@dataclass
class _Entry:
    agent: Agent | None
    fetched: float
    generation: int | None


class AuthCache:
    """Per-process cache of registry records (positive and negative).

    * A record stays trusted while the registry's *generation* it was read under is
      current. The generation is one counter in the registry that every revocation,
      re-keying and rename bumps; each process reads it at most once per ``ttl`` seconds,
      whatever the number of agents. So a revoked or replaced credential stops working
      within ``ttl`` in every worker, while agents that post rarely, or land on another
      worker, need no registry read of their own (records are re-read after ``max_age``).
    * A token that does not match the cached record, or a username the registry did not
      have, may mean the record changed in another worker (a new registration, a new node
      key): the record is read again, but at most once per ``recheck`` seconds per
      username. New credentials therefore work at once in every worker, and guessing
      tokens never costs a storage round trip per request.
    """

    def __init__(
        self,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        recheck: float = 1.0,
        max_age: float = 3600.0,
        max_entries: int = 100_000,
    ) -> None:
        self.ttl = ttl
        self.recheck = recheck
        self.max_age = max(max_age, ttl)
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self.generation: int | None = None
        self._generation_read = float("-inf")

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def now(self) -> float:
        return self._clock()

    def generation_due(self, now: float) -> bool:
        return now - self._generation_read >= self.ttl

    def set_generation(self, generation: int, now: float) -> None:
        with self._lock:
            if generation != self.generation:
                self._entries.clear()
            self.generation = generation
            self._generation_read = now

    def get(self, username: str, now: float) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(username_key(username))
            if entry is None:
                return None
            if now - entry.fetched >= self.max_age or entry.generation != self.generation:
                del self._entries[username_key(username)]
                return None
            return entry

    def put(self, username: str, agent: Agent | None, now: float) -> None:
        if not self.enabled:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[username_key(username)] = _Entry(agent, now, self.generation)

    def invalidate(self, username: str) -> None:
        with self._lock:
            self._entries.pop(username_key(username), None)


class Authenticator:
    """Verify ``username:token`` against the registry, through the cache.

    ``generation`` reads the registry's generation counter; without it (tests of the
    cache alone) records are trusted for ``ttl`` seconds instead.
    """

    def __init__(
        self,
        lookup: Callable[[str], Agent | None],
        cache: AuthCache,
        generation: Callable[[], int] | None = None,
    ) -> None:
        self._lookup = lookup
        self._generation = generation
        self.cache = cache

    def verify(self, username: str, token: str) -> Agent | None:
        """The agent when the token is its current one; storage errors propagate."""
        cache = self.cache
        if not cache.enabled:
            agent = self._lookup(username)
            return agent if agent is not None and token_matches(token, agent.token_hash) else None
        now = cache.now()
        if cache.generation_due(now):
            # without a generation counter, a new "generation" per ttl expires everything
            generation = self._generation() if self._generation else int(now // cache.ttl)
            cache.set_generation(generation, now)
        entry = cache.get(username, now)
        if entry is not None:
            if entry.agent is not None and token_matches(token, entry.agent.token_hash):
                return entry.agent
            if now - entry.fetched < cache.recheck:
                return None
        agent = self._lookup(username)
        cache.put(username, agent, now)
        if agent is not None and token_matches(token, agent.token_hash):
            return agent
        return None
