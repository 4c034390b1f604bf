"""HTTP Basic ``username:token`` authentication of agents (everything but /register)."""

from __future__ import annotations

from flask import g, request

from ..auth import Agent, parse_basic_auth
from ..errors import StorageUnavailable, Unauthorized
from ..logging import get_logger
from ..services import services
from ..storage.client import STORAGE_ERRORS

log = get_logger("auth")


def require_agent() -> Agent:
    creds = parse_basic_auth(request.headers.get("Authorization"))
    if creds is None:
        raise Unauthorized("Permission denied")
    username, token = creds
    try:
        agent = services().authenticator.verify(username, token)
    except STORAGE_ERRORS:
        log.warning("registry lookup failed")
        raise StorageUnavailable("Storage is unavailable, try again later") from None
    if agent is None or agent.source != "flock-agent":
        # an osquery host's node key only works on the osquery API, where the schedule
        # allow-list always applies
        g.auth_failed_for = username
        raise Unauthorized("Permission denied")
    g.username = agent.username
    return agent
