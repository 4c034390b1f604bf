"""HTTP Basic ``username:token`` authentication of agents (everything but /register)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from flask import g, request

from ..auth import Agent, parse_basic_auth
from ..documents import iso
from ..errors import Unauthorized
from ..fields import FLOCK_AGENT
from ..logging import get_logger
from ..services import services
from ..storage.errors import StorageError

log = get_logger("auth")

# last_seen is rewritten at most this often per agent (and per worker): it answers "was
# this host active lately" for re-enrollment and "were these credentials ever used" for
# registration retries, not "when exactly".
SEEN_RESOLUTION = timedelta(hours=1)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def note_seen(agent: Agent) -> Agent:
    """Record in the registry that the agent's credentials were used (best effort)."""
    now = datetime.now(tz=UTC)
    seen = parse_time(agent.last_seen)
    if seen is not None and now - seen < SEEN_RESOLUTION:
        return agent
    svc = services()
    try:
        svc.registry.touch(agent, iso(now))
    except StorageError:
        log.warning("could not record last_seen", extra={"agent": agent.username})
        return agent
    updated = dataclasses.replace(agent, last_seen=iso(now))
    svc.authenticator.cache.replace(updated)
    return updated


def require_agent() -> Agent:
    creds = parse_basic_auth(request.headers.get("Authorization"))
    if creds is None:
        raise Unauthorized("Permission denied")
    username, token = creds
    agent = services().authenticator.verify(username, token)
    if agent is None or agent.source != FLOCK_AGENT:
        # an osquery host's node key only works on the osquery API, where the schedule
        # allow-list always applies
        g.auth_failed_for = username
        raise Unauthorized("Permission denied")
    g.username = agent.username
    return note_seen(agent)
