"""osquery's TLS remote API, so stock osqueryd can be a Flock agent.

    POST /osquery/enroll  {"enroll_secret", "host_identifier", "host_details"}
                          -> {"node_key": "...", "node_invalid": false}
    POST /osquery/config  {"node_key"} -> the reviewed schedule + privacy options
    POST /osquery/log     {"node_key", "log_type": "result"|"status", "data": [...]}
                          (plain or Content-Encoding: gzip)

Deliberately absent (404): distributed (live) queries and file carving — they would let
the server side read arbitrary data from a laptop.

Node keys are ``<username>:<random token>``; the registry keeps only the token's hash,
in the same index as Flock agents (list/rename/revoke work for both). An unknown or
revoked key, or rows naming another host, get ``{"node_invalid": true}``, which makes
osquery re-enroll. Result rows are stored exactly like /submit rows; rows whose query
name is not in the served schedule are refused (counted, not stored).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, g, jsonify

from ..auth import OSQUERY_NAME_PREFIX, USERNAME_RE, Agent, hash_token, new_token, secret_in
from ..documents import DocumentBuilder, Tag
from ..errors import BadRequest, ServiceUnavailable
from ..fields import OSQUERY
from ..logging import get_logger
from ..rows import LogBody, OtherHost, Sender
from ..services import Services, services
from ..storage.registry import AlreadyRegistered
from ..validation import parse_object
from .agent_auth import note_seen, parse_time
from .body import Body, budget, request_body
from .key_scan import MISSING, leading_member, trailing_member
from .storage_gate import require_storage
from .stored import state_lines, store

bp = Blueprint("osquery", __name__, url_prefix="/osquery")
bp.before_request(require_storage)
log = get_logger("osquery")

MAX_HOST_IDENTIFIER = 256
_HOSTNAME_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def node_invalid(endpoint: str) -> Response:
    services().metrics.inc("flock_node_invalid_total", endpoint=endpoint)
    return jsonify({"node_invalid": True})


def osquery_username(host_identifier: str) -> str:
    """Registry name for an osquery host: ``osq-`` and the identifier when that is a valid
    username (a UUID is), else ``osq-``, a readable part and a hash of it (hostnames
    contain dots). /register refuses ``osq-`` names, so no Flock agent can take one."""
    name = OSQUERY_NAME_PREFIX + host_identifier
    if USERNAME_RE.fullmatch(name):
        return name
    digest = hashlib.sha256(host_identifier.encode("utf-8")).hexdigest()[:20]
    readable = _HOSTNAME_SAFE.sub("-", host_identifier)[:40].strip("-") or "host"
    return f"{OSQUERY_NAME_PREFIX}{readable}-{digest}"


def _earlier_record(svc: Services, host_identifier: str) -> Agent | None:
    """The host's record under the name older releases gave it (the identifier itself)."""
    if not USERNAME_RE.fullmatch(host_identifier):
        return None
    agent = svc.registry.get(host_identifier)
    if agent is None or agent.source != OSQUERY or agent.host_identifier != host_identifier:
        return None
    return agent


def _json_object(body: Body) -> dict[str, Any]:
    whole = body.whole()
    g.body_size = len(whole)
    return parse_object(whole)


def _scanned(body: Body, name: str) -> Any:
    """Member ``name`` of the body, as key_scan finds it at either end of the body's
    leading or trailing ``max_small_body_bytes``; MISSING when it does not.

    A body where it is not found, larger than that, is refused (400): to find it the
    whole body would have to be parsed before its sender is known."""
    window = services().config.max_small_body_bytes
    head = body.head(window + 1)
    value = leading_member(head[:window], name)
    if value is MISSING:
        value = trailing_member(head if len(head) <= window else body.tail(window), name)
    if value is MISSING and len(head) > window:
        raise BadRequest(
            f"{name} must be the first or the last member of a body over {window} bytes"
        )
    return value


def _host_summary(details: Any) -> tuple[str, dict[str, Any]]:
    """A display name and the few host details worth keeping (not serials, not users)."""
    if not isinstance(details, dict):
        return "", {}
    keep: dict[str, Any] = {}
    wanted = {
        "os_version": ("name", "version", "platform", "build"),
        "osquery_info": ("version",),
        "system_info": ("hostname", "computer_name", "hardware_model"),
    }
    for table, columns in wanted.items():
        row = details.get(table)
        if isinstance(row, dict):
            picked = {
                c: row[c] for c in columns if isinstance(row.get(c), str) and len(row[c]) < 256
            }
            if picked:
                keep[table] = picked
    system = keep.get("system_info", {})
    name = system.get("computer_name") or system.get("hostname") or ""
    if not name.isprintable():
        name = ""
    return name[:200], keep


def node_agent(key: Any) -> Agent | None:
    # node keys are ASCII (USERNAME_RE, hex tokens): anything else is no node key
    if not isinstance(key, str) or not key or len(key) > 512 or not key.isascii():
        return None
    username, sep, token = key.partition(":")
    if not sep or not token or not USERNAME_RE.fullmatch(username):
        return None
    agent = services().authenticator.verify(username, token)
    if agent is None or agent.source != OSQUERY:
        return None
    g.username = agent.username
    return note_seen(agent)


def _secret_refusal(svc: Services, secret: Any) -> str | None:
    """Why enrollment with this secret is refused (a metrics label), None when it is not."""
    if not svc.config.enroll_secrets:
        log.warning("osquery enrollment refused: no enrollment secret is configured")
        return "disabled"
    if not isinstance(secret, str) or not secret_in(secret.strip(), svc.config.enroll_secrets):
        log.info("osquery enrollment refused: bad enrollment secret")
        return "bad_secret"
    return None


def _host_identifier(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_HOST_IDENTIFIER
        or not value.isprintable()
    ):
        raise BadRequest("host_identifier must be a printable string")
    return value


def _register_host(
    svc: Services,
    username: str,
    token_hash: str,
    *,
    name: str,
    host_identifier: str,
    details: dict[str, Any],
) -> Agent | None:
    """Register a new osquery host; the agent already registered under the name, if any."""
    existing = svc.registry.get(username) or _earlier_record(svc, host_identifier)
    if existing is not None:
        return existing
    try:
        svc.registry.register(
            username,
            name,
            token_hash,
            source=OSQUERY,
            host_identifier=host_identifier,
            host_details=details,
        )
    except AlreadyRegistered:
        existing = svc.registry.get(username)
        if existing is None:
            # revoked between our two reads: the host's next attempt starts afresh
            raise ServiceUnavailable("Storage is busy, try again later") from None
        return existing
    return None


def _reenroll_refusal(svc: Services, existing: Agent) -> str | None:
    """Why re-enrolling a known host is refused (a metrics label), None when it is not."""
    if existing.source != OSQUERY:
        # a Flock agent owns this name; an osquery host must not take it over
        log.warning("osquery enrollment refused: name taken", extra={"agent": existing.username})
        return "name_taken"
    hours = svc.config.refuse_reenroll_within_hours
    seen = parse_time(existing.last_seen)
    recently = seen is not None and datetime.now(tz=UTC) - seen < timedelta(hours=hours)
    if hours and recently and not existing.reenroll_allowed:
        log.warning(
            "osquery re-enrollment refused: host seen recently "
            "(flock-gateway agents allow-reenroll lets it enroll once, or revoke it first)",
            extra={"agent": existing.username},
        )
        return "reenroll_refused"
    return None


@bp.post("/enroll")
def enroll() -> Response:
    svc = services()
    body = request_body(small=True)
    # a stranger's wrong secret is refused before the body is parsed; the parsed body's
    # secret decides when the scan finds none, or another (a key given twice)
    secret = _scanned(body, "enroll_secret") if svc.config.enroll_secrets else None
    data: dict[str, Any] | None = None
    if secret is MISSING:
        data = _json_object(body)
        secret = data.get("enroll_secret")
    refusal = _secret_refusal(svc, secret)
    if refusal is None and data is None:
        data = _json_object(body)
        if data.get("enroll_secret") != secret:
            refusal = _secret_refusal(svc, data.get("enroll_secret"))
    if refusal is not None or data is None:
        svc.metrics.inc("flock_enroll_total", result=refusal)
        return node_invalid("enroll")
    host_identifier = _host_identifier(data.get("host_identifier"))
    username = osquery_username(host_identifier)
    name, details = _host_summary(data.get("host_details"))
    token = new_token()
    existing = _register_host(
        svc,
        username,
        hash_token(token),
        name=name,
        host_identifier=host_identifier,
        details=details,
    )
    if existing is not None:
        refusal = _reenroll_refusal(svc, existing)
        if refusal is not None:
            svc.metrics.inc("flock_enroll_total", result=refusal)
            return node_invalid("enroll")
        # re-enrollment (lost node key, node_invalid): new key, old one stops working.
        # osquery host ids are not secret, so whoever has the enrollment secret can do
        # this for any host: it is logged and counted per host, and can be refused.
        try:
            svc.registry.rekey(
                existing,
                hash_token(token),
                host_details=details,
                reenrollments=existing.reenrollments + 1,
                reenroll_allowed=False,
            )
        except AlreadyRegistered:
            # another enrollment of this host won the race; the host tries again
            raise ServiceUnavailable("Enrollment in progress, try again later") from None
        username = existing.username
        svc.authenticator.cache.invalidate(username)
        log.warning(
            "osquery host re-enrolled: its previous node key no longer works",
            extra={"agent": username, "reenrollments": existing.reenrollments + 1},
        )
    g.username = username
    svc.metrics.inc("flock_enroll_total", result="enrolled" if existing is None else "re-enrolled")
    log.info("osquery host enrolled", extra={"agent": username, "again": existing is not None})
    return jsonify({"node_key": f"{username}:{token}", "node_invalid": False})


@bp.post("/config")
def config() -> Response:
    svc = services()
    body = request_body(small=True)
    scanned = _scanned(body, "node_key")
    agent = node_agent(scanned)
    if agent is None:
        # a key found and refused ends it; one not found is the parsed body's to give
        if scanned is not MISSING:
            return node_invalid("config")
        agent = node_agent(_json_object(body).get("node_key"))
    if agent is None:
        return node_invalid("config")
    return jsonify({**svc.schedule.osquery_config(), "node_invalid": False})


def _host(agent: Agent) -> str:
    """The host identifier the agent's rows must carry."""
    return agent.host_identifier or agent.username


@bp.post("/log")
def log_endpoint() -> Response:
    svc = services()
    received = request_body()
    # a stranger is refused before the body is inflated in full or parsed
    scanned = _scanned(received, "node_key")
    agent = node_agent(scanned)
    if agent is None and scanned is not MISSING:
        return node_invalid("log")
    body = received.whole()
    g.body_size = len(body)
    log_body = LogBody(
        body,
        max_lines=svc.config.osquery_max_lines,
        max_line_bytes=svc.config.osquery_max_line_bytes,
    )
    # the parser's reading decides (it keeps the last of duplicate keys)
    if agent is None or log_body.node_key != scanned:
        agent = node_agent(log_body.node_key)
    if agent is None:
        return node_invalid("log")
    builder = DocumentBuilder(
        svc.names.prefix,
        Tag(agent.username, agent.name, OSQUERY, agent.platform, agent.os_version),
        svc.config.retention_days,
        budget=budget(g.body_size),
        granularity=svc.config.index_granularity,
    )
    try:
        batch = log_body.batch(
            builder,
            Sender(_host(agent), svc.schedule.allows),
            keep_status=svc.config.status_logs != "drop",
            state=state_lines(svc, agent, builder) if log_body.log_type == "result" else None,
        )
    except OtherHost:
        # the laptop's identity changed (e.g. its host_identifier flag): re-enroll
        log.info("osquery rows name another host", extra={"agent": agent.username})
        return node_invalid("log")
    kind = "osquery" if log_body.log_type == "result" else "osquery_status"
    result = store(svc, agent, batch, kind)
    svc.metrics.inc("flock_rows_stored_total", result.stored, api=kind)
    svc.metrics.inc("flock_rows_expired_total", batch.expired, api=kind)
    svc.metrics.inc(
        "flock_rows_refused_total", batch.refused, api="osquery", reason="not_in_schedule"
    )
    if batch.refused:
        log.warning(
            "rows refused: query not in the schedule",
            extra={"agent": agent.username, "refused": batch.refused},
        )
    quarantined = batch.quarantined + result.quarantined
    svc.metrics.inc("flock_rows_quarantined_total", quarantined, api=kind)
    if batch.quarantined:
        log.warning(
            "lines that cannot be stored as sent were quarantined",
            extra={"agent": agent.username, "quarantined": batch.quarantined},
        )
    g.counts = {
        "items": batch.lines,
        "rows": result.stored,
        "refused": batch.refused,
        "quarantined": quarantined,
    }
    return jsonify(
        {
            "node_invalid": False,
            "processed_count": batch.lines,
            "stored_count": result.stored,
            "quarantined_count": quarantined,
            "refused_count": batch.refused,
            "dropped_count": batch.dropped,
            "expired_count": batch.expired,
        }
    )
