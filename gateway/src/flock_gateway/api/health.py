"""/healthz (the process answers), /readyz (its storage is ready: the log says why not)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..errors import error_response
from ..services import services
from .storage_gate import NOT_READY

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"error": False, "status": "ok"})


@bp.get("/metrics")
def metrics() -> Response:
    svc = services()
    bulks = svc.writer.batcher.stats
    more = {"flock_bulks_total": bulks.bulks, "flock_bulk_rows_total": bulks.rows}
    text = svc.metrics.render(more)
    return Response(text, mimetype="text/plain; version=0.0.4")


@bp.get("/readyz")
def readyz() -> Response:
    # probed at most every readiness_interval: load balancers poll this, unauthenticated
    result = services().readiness.refresh()
    if not result.ok:
        return error_response(NOT_READY, 503)
    return jsonify({"error": False, "status": "ready"})
