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
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .fields import FLOCK_AGENT
from .validation import USERNAME_RE

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


class AuthCache:
    """Per-process cache of registry records, username -> (Agent, expiry).

    Only positive lookups are cached; a revoked agent stops authenticating at the latest
    ``ttl`` seconds after revocation (immediately in the process that revoked it).
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Agent, float]] = {}

    def get(self, username: str) -> Agent | None:
        if self.ttl <= 0:
            return None
        with self._lock:
            entry = self._entries.get(username)
            if entry is None:
                return None
            agent, expires = entry
            if self._clock() >= expires:
                del self._entries[username]
                return None
            return agent

    def put(self, agent: Agent) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > 100_000:
                self._entries.clear()
            self._entries[agent.username] = (agent, self._clock() + self.ttl)

    def invalidate(self, username: str) -> None:
        with self._lock:
            self._entries.pop(username, None)


class Authenticator:
    """Verify ``username:token`` against the registry, through the cache."""

    def __init__(self, lookup: Callable[[str], Agent | None], cache: AuthCache) -> None:
        self._lookup = lookup
        self.cache = cache

    def verify(self, username: str, token: str) -> Agent | None:
        agent = self.cache.get(username)
        if agent is None:
            agent = self._lookup(username)  # storage errors propagate
            if agent is None:
                return None
            self.cache.put(agent)
        if token_matches(token, agent.token_hash):
            return agent
        return None
