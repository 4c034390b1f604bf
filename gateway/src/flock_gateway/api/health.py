"""/healthz (the process answers) and /readyz (Elasticsearch is usable)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..errors import error_response
from ..logging import get_logger
from ..services import services
from ..storage.client import probe

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
    text = svc.metrics.render(more)
    return Response(text, mimetype="text/plain; version=0.0.4")


@bp.get("/readyz")
def readyz() -> Response:
    svc = services()
    result = probe(svc.client, svc.config, svc.names.agents)
    if not result.ok:
        log.warning("not ready", extra={"reason": result.message})
        return error_response("Storage is unavailable", 503)
    return jsonify({"error": False, "status": "ready"})
