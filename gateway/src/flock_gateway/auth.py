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
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from .fields import FLOCK_AGENT

# Starts with a letter or digit: names like "_search", "-" or "__x" look like storage
# internals (and the registry keeps "__generation__"). Case does not make a different
# name: "Laptop-1" and "laptop-1" are one identity (see storage/registry.py).
USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")

# Every osquery host's registry name starts with this (see api/osquery.py); /register
# refuses such names, so no Flock registration can take an osquery host's name.
OSQUERY_NAME_PREFIX = "osq-"

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
    # a Flock registration whose token has not been delivered yet (see /register)
    pending: bool = False
    # the host's platform family and OS version, from its own os_version rows
    platform: str | None = None
    os_version: str | None = None
    # the registry document's id and version, for conditional updates
    doc_id: str | None = None
    seq_no: int | None = None
    primary_term: int | None = None


def username_key(username: str) -> str:
    """Usernames that differ only by case are one identity: this is its registry key."""
    return username.lower()


def reserved_for_osquery(username: str) -> bool:
    return username_key(username).startswith(OSQUERY_NAME_PREFIX)


class Generation(NamedTuple):
    """The registry's generation: how many credential changes it has seen, and the
    registry keys (lower-case usernames) of the latest of them, oldest first."""

    number: int
    changed: tuple[str, ...] = ()


@dataclass
class _Entry:
    agent: Agent | None  # None: the registry had no such name
    fetched: float
    # the earliest time a re-read is allowed again (rate of re-reads per name)
    recheck_at: float


class AuthCache:
    """Per-process cache of registry records, bounded and not flushable by strangers.

    * The registry keeps a *generation*: a counter that every revocation, re-keying and
      rename bumps, with the names each of its latest bumps changed. A process reads it at
      most once per ``ttl`` seconds, whatever the number of agents, and forgets the
      records of the names that changed (all records, when more changed than the registry
      lists). A record is only cached when the generation this process knew *before*
      reading it is not older than the last change of its name: a read in flight across a
      change is never trusted afterwards. So a revoked or replaced credential stops
      working within ``ttl`` in every worker, under any interleaving, while agents that
      post rarely, or land on another worker, need no registry read of their own (records
      are re-read after ``max_age``).
    * A token that does not match the cached record, or a name the registry did not have,
      may mean the record changed in another worker (a new registration, a new node key):
      the record is read again before the request is refused. Re-reads that find the
      token wrong are rate-limited per name (a burst of ``recheck_burst``, then one per
      ``recheck`` seconds), so wrong tokens for a name never cost more than that in
      storage reads; a re-read that finds new credentials uses up nothing.
    * Known agents live in an LRU of ``max_entries``; names the registry did not have in a
      separate, smaller LRU of ``max_misses``. Made-up names therefore never evict known
      agents, and nothing a client sends empties the cache.
    """

    def __init__(
        self,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        recheck: float = 1.0,
        recheck_burst: int = 3,
        max_age: float = 3600.0,
        max_entries: int = 100_000,
        max_misses: int = 4096,
        max_changes: int = 4096,
    ) -> None:
        self.ttl = ttl
        self.recheck = recheck
        self.recheck_burst = recheck_burst
        self.max_age = max(max_age, ttl)
        self.max_entries = max_entries
        self.max_misses = max_misses
        self.max_changes = max_changes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._misses: OrderedDict[str, _Entry] = OrderedDict()
        # generation of the last change of each recently changed name; records read
        # before it are not cached
        self._changed: dict[str, int] = {}
        # records read before this generation are not cached (set when the changes since
        # the last read are not all known)
        self._floor = 0
        self.generation: int | None = None
        self._generation_read = float("-inf")

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def now(self) -> float:
        return self._clock()

    def __len__(self) -> int:
        return len(self._entries)

    def generation_due(self, now: float) -> bool:
        return now - self._generation_read >= self.ttl

    def set_generation(self, generation: Generation, now: float) -> None:
        """Take in a generation read from the registry: forget what changed since the
        last one."""
        with self._lock:
            self._generation_read = now
            old = self.generation
            number = generation.number
            if old is not None and number == old:
                return
            gap = None if old is None else number - old
            if gap is not None and 0 < gap <= len(generation.changed):
                for key in generation.changed[-gap:]:
                    self._changed[key] = number
                    self._entries.pop(key, None)
                    self._misses.pop(key, None)
            if (
                gap is None
                or not 0 < gap <= len(generation.changed)
                or (len(self._changed) > self.max_changes)
            ):
                self._floor = number
                self._changed.clear()
                self._entries.clear()
                self._misses.clear()
            self.generation = number

    def get(self, username: str, now: float) -> _Entry | None:
        key = username_key(username)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if now - entry.fetched < self.max_age:
                    self._entries.move_to_end(key)
                    return entry
                del self._entries[key]
            entry = self._misses.get(key)
            if entry is not None and now - entry.fetched >= self.max_age:
                del self._misses[key]
                return None
            return entry

    def may_reread(self, username: str, now: float) -> bool:
        """Whether a cached name may be read again now (one of its re-reads is used up)."""
        key = username_key(username)
        with self._lock:
            entry = self._entries.get(key) or self._misses.get(key)
            if entry is None:
                return True
            start = max(entry.recheck_at, now)
            if start - now >= self.recheck * self.recheck_burst:
                return False
            entry.recheck_at = start + self.recheck
            return True

    def refund(self, username: str) -> None:
        """Give back a re-read that found the token current: only wrong tokens use them up."""
        with self._lock:
            entry = self._entries.get(username_key(username))
            if entry is not None:
                entry.recheck_at -= self.recheck

    def put(self, username: str, agent: Agent | None, stamp: int | None, now: float) -> None:
        """Cache what the registry answered for ``username``; ``stamp`` is the generation
        this process knew before the read started."""
        if not self.enabled:
            return
        key = username_key(username)
        with self._lock:
            old = self._entries.get(key) or self._misses.get(key)
            recheck_at = old.recheck_at if old is not None else float("-inf")
            if stamp is None or stamp < max(self._floor, self._changed.get(key, 0)):
                # read before (or across) a change of this name: not trusted later on
                self._entries.pop(key, None)
                self._misses.pop(key, None)
                return
            entry = _Entry(agent, now, recheck_at)
            if agent is None:
                self._entries.pop(key, None)
                cache, limit = self._misses, self.max_misses
            else:
                self._misses.pop(key, None)
                cache, limit = self._entries, self.max_entries
            cache[key] = entry
            cache.move_to_end(key)
            while len(cache) > limit:
                cache.popitem(last=False)

    def replace(self, agent: Agent) -> None:
        """Keep a newer copy of a cached record whose credentials did not change (its
        ``last_seen``), with the trust of the copy it replaces."""
        key = username_key(agent.username)
        with self._lock:
            entry = self._entries.get(key)
            if (
                entry is not None
                and entry.agent is not None
                and (entry.agent.token_hash == agent.token_hash)
            ):
                entry.agent = agent

    def invalidate(self, username: str) -> None:
        key = username_key(username)
        with self._lock:
            self._entries.pop(key, None)
            self._misses.pop(key, None)


class Authenticator:
    """Verify ``username:token`` against the registry, through the cache.

    ``generation`` reads the registry's generation; without it (tests of the cache alone)
    records are trusted for ``ttl`` seconds instead.
    """

    def __init__(
        self,
        lookup: Callable[[str], Agent | None],
        cache: AuthCache,
        generation: Callable[[], Generation] | None = None,
    ) -> None:
        self._lookup = lookup
        self._generation = generation
        self.cache = cache
        # one generation read at a time, so the cache takes them in in the order they
        # were read (a lower number then really means the registry went back)
        self._refreshing = threading.Lock()

    def verify(self, username: str, token: str) -> Agent | None:
        """The agent when the token is its current one; storage errors propagate.

        At most one registry read of the record per call."""
        cache = self.cache
        if not cache.enabled:
            agent = self._lookup(username)
            return agent if agent is not None and token_matches(token, agent.token_hash) else None
        now = cache.now()
        if cache.generation_due(now) and self._refreshing.acquire(blocking=False):
            try:
                # without a generation counter, a new "generation" per ttl expires all
                generation = (
                    self._generation() if self._generation else Generation(int(now // cache.ttl))
                )
                cache.set_generation(generation, now)
            finally:
                self._refreshing.release()
        entry = cache.get(username, now)
        if entry is not None:
            if entry.agent is not None and token_matches(token, entry.agent.token_hash):
                return entry.agent
            if not cache.may_reread(username, now):
                return None
        # the generation known before the read: a change racing the read makes it stale
        stamp = cache.generation
        agent = self._lookup(username)
        cache.put(username, agent, stamp, now)
        if agent is not None and token_matches(token, agent.token_hash):
            if entry is not None:
                cache.refund(username)  # new credentials, not a wrong guess
            return agent
        return None
