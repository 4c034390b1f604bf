"""The agent endpoints answer 503 until the worker's storage is ready (a worker starts,
and stays up, while Elasticsearch is down or not set up: :mod:`..storage.readiness`)."""

from __future__ import annotations

from ..errors import ServiceUnavailable
from ..services import services

NOT_READY = "Storage is unavailable, try again later"


def require_storage() -> None:
    """A ``before_request`` hook of the agent blueprints."""
    if not services().readiness.ready():
        raise ServiceUnavailable(NOT_READY)
