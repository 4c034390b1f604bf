"""HTTP Basic ``username:token`` authentication of agents (everything but /register)."""

from __future__ import annotations

from flask import g, request

from ..auth import Agent, parse_basic_auth
from ..errors import Unauthorized
from ..fields import FLOCK_AGENT
from ..services import services


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
    return agent
