"""The Flock agent API: /register, /ping, /submit, /submit_flock_logs.

Compatible with the original server's README (form-encoded /register, one JSON object
with ``host_uuid`` on /submit) and with Flock agent (JSON /register, arrays of osquery
result lines, /submit_flock_logs). Write-only: nothing here returns stored data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from .. import rows
from ..auth import (
    OSQUERY_NAME_PREFIX,
    Agent,
    hash_token,
    new_token,
    reserved_for_osquery,
    secret_in,
)
from ..documents import DocumentBuilder, Tag
from ..errors import BadRequest, Unauthorized
from ..fields import FLOCK_AGENT
from ..logging import get_logger
from ..rows import Sender
from ..services import Services, services
from ..storage.registry import AlreadyRegistered
from ..validation import (
    parse_object,
    validate_name,
    validate_username,
)
from .agent_auth import parse_time, require_agent
from .body import budget, limit_body, read_body
from .storage_gate import require_storage
from .stored import state_lines, store

bp = Blueprint("flock", __name__)
bp.before_request(require_storage)
log = get_logger("api")

ENROLL_SECRET_HEADER = "X-Flock-Enroll-Secret"  # noqa: S105 - a header name


def success(**fields: Any) -> Response:
    return jsonify({**fields, "error": False})


def _register_fields() -> dict[str, Any]:
    """/register takes form fields (original README) or a JSON object (Flock agent)."""
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {k: request.form.get(k) for k in ("username", "name", "enroll_secret")}
    body = request.get_data(cache=True)
    if request.mimetype == "application/json" or body.lstrip()[:1] == b"{":
        return parse_object(body)
    return {}


def _builder(svc: Services, agent: Agent, body_size: int) -> DocumentBuilder:
    tag = Tag(agent.username, agent.name, FLOCK_AGENT, agent.platform, agent.os_version)
    return DocumentBuilder(
        svc.names.prefix,
        tag,
        svc.config.retention_days,
        budget=budget(body_size),
        granularity=svc.config.index_granularity,
    )


def _retry_registration(username: str, name: str, token_hash: str) -> Agent | None:
    """Re-key a registration whose answer the laptop never received; the record as
    re-keyed, or None when the name is taken.

    When storage keeps a registration but answers too late, the gateway has said 503 and
    the laptop retries with the same name. Only a record still *pending* (its token was
    never handed out), whose credentials were never used and younger than
    ``register_retry_seconds`` is given the new token: a registration whose answer was
    delivered can never be taken over this way.
    """
    svc = services()
    existing = svc.registry.get(username)
    if (
        existing is None
        or existing.source != FLOCK_AGENT
        or not existing.pending
        or existing.last_seen is not None
    ):
        return None
    created = parse_time(existing.created)
    window = timedelta(seconds=svc.config.register_retry_seconds)
    if created is None or datetime.now(tz=UTC) - created > window:
        return None
    try:
        agent = svc.registry.rekey(existing, token_hash, name=name, pending=True)
    except AlreadyRegistered:
        return None  # another retry won
    svc.authenticator.cache.invalidate(username)
    log.warning("registration retried: undelivered record re-keyed", extra={"agent": username})
    return agent


def _taken(username: str) -> BadRequest:
    return BadRequest(f"Your computer ({username}) is already registered with this server")


@bp.post("/register")
def register() -> Response:
    svc = services()
    limit_body(svc.config.max_small_body_bytes)
    data = _register_fields()
    username = validate_username(data.get("username"))
    if reserved_for_osquery(username):
        raise BadRequest(
            f"Usernames starting with {OSQUERY_NAME_PREFIX!r} are reserved for osquery hosts"
        )
    name = validate_name(data.get("name"))
    if svc.config.enrollment_required:
        secret = data.get("enroll_secret") or request.headers.get(ENROLL_SECRET_HEADER)
        if not isinstance(secret, str) or not secret_in(secret, svc.config.enroll_secrets):
            log.info("registration refused: bad enrollment secret", extra={"agent": username})
            raise Unauthorized("Registration requires a valid enrollment secret")
    token = new_token()
    try:
        agent: Agent | None = svc.registry.register(username, name, hash_token(token), pending=True)
    except AlreadyRegistered:
        agent = _retry_registration(username, name, hash_token(token))
        if agent is None:
            raise _taken(username) from None
    # The record stops being pending just before its token is handed out: from then on
    # nobody can register the name again. A storage error here is a 503 and leaves it
    # pending, so the laptop's retry still succeeds.
    try:
        svc.registry.confirm(agent)
    except AlreadyRegistered:
        raise _taken(username) from None  # a retry re-keyed it first
    # this worker may remember that the name was unknown a moment ago
    svc.authenticator.cache.invalidate(username)
    g.username = username
    log.info("agent registered", extra={"agent": username})
    return success(auth_token=token)


@bp.get("/ping")
def ping() -> Response:
    require_agent()
    return success()


@bp.post("/submit")
def submit() -> Response:
    svc = services()
    agent = require_agent()
    body = read_body()
    allows = svc.twigs.allows if svc.config.strict_allowlist else None
    builder = _builder(svc, agent, len(body))
    state = state_lines(svc, agent, builder)
    batch = rows.submitted(body, builder, Sender(agent.username, allows), state)
    result = store(svc, agent, batch, "flock")
    svc.metrics.inc("flock_rows_stored_total", result.stored, api="flock")
    svc.metrics.inc("flock_rows_expired_total", batch.expired, api="flock")
    svc.metrics.inc(
        "flock_rows_refused_total", batch.refused, api="flock", reason="not_in_schedule"
    )
    quarantined = _quarantined(svc, agent, batch, result.quarantined, "flock")
    g.counts = {
        "items": batch.lines,
        "rows": result.stored,
        "expired": batch.expired,
        "refused": batch.refused,
        "quarantined": quarantined,
    }
    fields = {
        "processed_count": batch.lines,
        "stored_count": result.stored,
        "quarantined_count": quarantined,
        "expired_count": batch.expired,
    }
    if svc.config.strict_allowlist:
        fields["refused_count"] = batch.refused
    return success(**fields)


@bp.post("/submit_flock_logs")
def submit_flock_logs() -> Response:
    svc = services()
    agent = require_agent()
    body = read_body()
    batch = rows.agent_logs(body, _builder(svc, agent, len(body)))
    result = svc.writer.write_lines(batch.bulk, batch.documents)
    svc.metrics.inc("flock_rows_stored_total", result.stored, api="flock_logs")
    svc.metrics.inc("flock_rows_expired_total", batch.expired, api="flock_logs")
    quarantined = _quarantined(svc, agent, batch, result.quarantined, "flock_logs")
    g.counts = {
        "items": batch.lines,
        "rows": result.stored,
        "expired": batch.expired,
        "quarantined": quarantined,
    }
    return success(
        processed_count=batch.lines,
        stored_count=result.stored,
        quarantined_count=quarantined,
        expired_count=batch.expired,
    )


def _quarantined(
    svc: Services, agent: Agent, batch: rows.Batch, refused_by_storage: int, api: str
) -> int:
    """Lines held in quarantine form: the gateway's (``batch.quarantined``) and those
    Elasticsearch refused; logged and counted, since the agent never looks."""
    quarantined = batch.quarantined + refused_by_storage
    svc.metrics.inc("flock_rows_quarantined_total", quarantined, api=api)
    if batch.quarantined:
        log.warning(
            "lines that cannot be stored as sent were quarantined",
            extra={"agent": agent.username, "quarantined": batch.quarantined},
        )
    return quarantined
