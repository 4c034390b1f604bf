"""Whether a worker's storage is usable, known without asking Elasticsearch per request.

A worker starts whatever state Elasticsearch is in. Until a probe finds it reachable,
accepting the gateway's credentials and set up (the agent registry exists), the agent
endpoints answer 503 and ``/readyz`` says "not ready"; the state recovers by itself once
a probe passes. Probes are bounded: at most one runs at a time per worker, and at most
one per ``interval`` seconds, so requests during an outage cost no Elasticsearch calls
beyond that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..logging import get_logger
from .client import ProbeResult

log = get_logger("readiness")

NOT_CHECKED = "not_checked"


class Readiness:
    """The latest probe result of one worker, re-probed when older than ``interval``."""

    def __init__(
        self,
        check: Callable[[], ProbeResult],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._interval = interval
        self._clock = clock
        self._probing = threading.Lock()
        self._result = ProbeResult(False, "storage has not been checked yet", NOT_CHECKED)
        self._checked_at: float | None = None

    @property
    def result(self) -> ProbeResult:
        return self._result

    def ready(self) -> bool:
        """For the agent endpoints. Once a probe passed, a storage failure is the request's
        own 503 and needs no probe; until then, storage is probed again when due."""
        return self._result.ok or self.refresh().ok

    def refresh(self) -> ProbeResult:
        """The latest result, probing first when it is due and no other probe runs (the
        others meanwhile get the latest result rather than wait)."""
        checked = self._checked_at
        if checked is not None and self._clock() - checked < self._interval:
            return self._result
        if not self._probing.acquire(blocking=False):
            return self._result
        try:
            result = self._check()
            previous, self._result = self._result, result
            self._checked_at = self._clock()
        finally:
            self._probing.release()
        if result.ok and not previous.ok:
            log.info("storage is ready", extra={"reason": result.reason})
        elif not result.ok and (previous.ok or previous.reason != result.reason):
            log.error(
                "storage is not ready: agent requests get 503 until it is",
                extra={"reason": result.reason, "detail": result.message},
            )
        return result
