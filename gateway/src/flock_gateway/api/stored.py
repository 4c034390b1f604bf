"""Storing a result request's rows together with the host's current state.

Both result endpoints (``/submit``, ``/osquery/log``) end here: the rows' documents and
their current-state documents (:mod:`flock_gateway.state`) go to Elasticsearch in one
bulk, and the request is answered only once both are stored. Around that write, the
host's registry record gives and keeps what the state needs: the snapshot marks (read
before, recorded after the bulk, so a failure in between is a 503 whose resend writes
the same again) and the platform and OS version its os_version rows tell (or, until
then, a Flock agent's twigs that run on one platform only).
"""

from __future__ import annotations

import dataclasses

from ..auth import Agent
from ..documents import DocumentBuilder, iso
from ..fields import FLOCK_AGENT
from ..logging import get_logger
from ..rows import Batch
from ..services import Services
from ..state import StateLines, host_lines
from ..storage.errors import StorageError
from ..storage.results import WriteResult

log = get_logger("state")


def state_lines(svc: Services, agent: Agent, builder: DocumentBuilder) -> StateLines:
    """The request's current-state documents, filled in while its rows are built."""
    hints = None
    if agent.platform is None and agent.source == FLOCK_AGENT:
        # until its first os_version row (a daily twig) the agent's other twigs may tell
        # it: rows written without a platform would stay so until they change
        hints = svc.twigs.platform_hints
    return StateLines(builder, svc.names.state, agent.platform, agent.os_version, hints)


def store(svc: Services, agent: Agent, batch: Batch, api: str) -> WriteResult:
    """Write the batch's rows and state; raises a StorageError (503/429/507) unless all
    of it is stored."""
    state = batch.state
    if state is None:
        return svc.writer.write_lines(batch.bulk, batch.documents)
    marks = {}
    version = None
    if state.snapshots:
        marks, *version = svc.registry.snapshot_marks(agent)
    lines, count, changed = state.bulk(marks)
    os_changed = state.tells_os and (state.platform, state.os_version) != (
        agent.platform,
        agent.os_version,
    )
    host = svc.seen_hosts.due(agent.username) or os_changed
    if host:
        received = state.builder.received
        lines += host_lines(
            svc.names.state,
            username=agent.username,
            name=agent.name,
            source=agent.source,
            last_seen=iso(received),
            seen_ms=int(received.timestamp() * 1000),
            platform=state.platform,
            os_version=state.os_version,
        )
        count += 1
    try:
        result = svc.writer.write_lines(batch.bulk, batch.documents, lines, count)
    except StorageError:
        if host:
            svc.seen_hosts.forget(agent.username)
        raise
    if changed and version:
        svc.registry.set_snapshot_marks(agent, changed, *version)
    if os_changed:
        try:
            svc.registry.set_os(agent, state.platform, state.os_version)
        except StorageError:
            # the state documents carry it already; the next os_version row tries again
            log.warning("could not record the host's platform", extra={"agent": agent.username})
        else:
            svc.authenticator.cache.replace(
                dataclasses.replace(agent, platform=state.platform, os_version=state.os_version)
            )
    svc.metrics.inc("flock_state_documents_total", result.state_written, api=api)
    if state.unordered:
        svc.metrics.inc("flock_state_unordered_total", state.unordered, api=api)
    return result
