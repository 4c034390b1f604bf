"""/healthz (the process answers), /readyz (its storage is ready: the log says why not)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..errors import RETRY_AFTER_FULL, error_response
from ..logging import get_logger
from ..services import services
from ..storage.client import READ_ONLY, disk_full_message, read_only_indices
from .storage_gate import NOT_READY

bp = Blueprint("health", __name__)
log = get_logger("health")


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"error": False, "status": "ok"})


@bp.get("/metrics")
def metrics() -> Response:
    svc = services()
    bulks = svc.writer.batcher.stats
    more = {"flock_bulks_total": bulks.bulks, "flock_bulk_rows_total": bulks.rows}
    gauges = {}
    blocked = read_only_indices(svc.client, svc.names)
    if blocked is not None:
        gauges["flock_storage_read_only_indices"] = len(blocked)
    text = svc.metrics.render(more, gauges)
    return Response(text, mimetype="text/plain; version=0.0.4")


@bp.get("/readyz")
def readyz() -> Response:
    svc = services()
    # probed at most every readiness_interval: load balancers poll this, unauthenticated
    result = svc.readiness.refresh()
    if not result.ok:
        return error_response(NOT_READY, 503)
    blocked = read_only_indices(svc.client, svc.names)
    if blocked:
        message = disk_full_message(blocked)
        log.warning("not ready", extra={"reason": message})
        return error_response(message, 503, retry_after=RETRY_AFTER_FULL, reason=READ_ONLY)
    return jsonify({"error": False, "status": "ready"})
