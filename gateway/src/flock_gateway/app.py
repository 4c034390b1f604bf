"""Flask application factory."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from .api import flock, health, osquery
from .auth import AuthCache, Authenticator
from .config import Config, load_config
from .errors import register_error_handlers
from .json_provider import OrjsonProvider
from .logging import RequestLog, get_logger, setup_logging
from .metrics import Metrics
from .schedule import ScheduleError, load_schedule
from .services import EXTENSION_KEY, Services
from .storage.client import make_client, probe
from .storage.names import IndexNames
from .storage.registry import Registry
from .storage.results import BulkWriter

log = get_logger("app")


class CannotStart(RuntimeError):
    """The gateway cannot serve: the message says why and what to do."""


def create_app(config: Config | None = None) -> Flask:
    """Build the gateway app.

    Raises :class:`CannotStart` with a plain explanation when the osquery schedule cannot
    be loaded, or (with ``config.startup_check``, the default) when Elasticsearch is
    unreachable, rejects the credentials, or lacks the registry index.
    """
    config = config or load_config()
    setup_logging(config.log_level)
    try:
        schedule = load_schedule(config.schedule_file)
    except (OSError, ScheduleError) as exc:
        raise CannotStart(f"cannot load the osquery schedule: {exc}") from None
    client = make_client(config)
    names = IndexNames(config.index_prefix)
    if config.startup_check:
        result = probe(client, config, names.agents)
        if not result.ok:
            log.error("startup check failed", extra={"reason": result.message})
            raise CannotStart(result.message)
        log.info("startup check passed", extra={"hosts": list(config.es_hosts)})

    registry = Registry(client, names.agents)
    svc = Services(
        config=config,
        client=client,
        names=names,
        registry=registry,
        writer=BulkWriter(
            client,
            max_rows=config.bulk_max_rows,
            max_bytes=config.bulk_max_bytes,
            linger_ms=config.bulk_linger_ms,
            concurrency=config.bulk_concurrency,
        ),
        authenticator=Authenticator(
            registry.get, AuthCache(config.auth_cache_ttl), registry.generation
        ),
        schedule=schedule,
        metrics=Metrics(),
    )

    app = Flask("flock_gateway")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json = OrjsonProvider(app)
    app.extensions[EXTENSION_KEY] = svc
    register_error_handlers(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(flock.bp)
    app.register_blueprint(osquery.bp)
    _install_request_log(app)
    return app


def _install_request_log(app: Flask) -> None:
    access = RequestLog(get_logger("access"))

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        if response.status_code == 200 and request.path in ("/healthz", "/readyz"):
            return response
        extra = {
            "method": request.method,
            "path": request.path[:200],
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - g.get("started", 0.0)) * 1000, 1),
            "remote_addr": request.remote_addr,
            "content_length": request.content_length,
        }
        if "username" in g:
            extra["agent"] = g.username
        elif "auth_failed_for" in g:
            extra["auth_failed_for"] = g.auth_failed_for
        if "counts" in g:
            extra.update(g.counts)
        access.write(extra)
        return response
