"""Flask application factory."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, g, request

from .api import flock, health, osquery
from .auth import AuthCache, Authenticator
from .config import Config, load_config
from .errors import register_error_handlers
from .indices import IndexNames
from .json_provider import OrjsonProvider
from .logging import RequestLog, get_logger, setup_logging
from .metrics import Metrics
from .schedule import ScheduleError, load_schedule
from .schema import SchemaError, load_twigs
from .services import EXTENSION_KEY, Services
from .storage.client import make_client, probe
from .storage.readiness import Readiness
from .storage.registry import Registry
from .storage.results import BulkWriter

log = get_logger("app")


class CannotStart(RuntimeError):
    """The gateway cannot serve: the message says why and what to do."""


_STARTED = "flock.started"


class GatewayFlask(Flask):
    """Flask, with the per-request costs the gateway does not need taken out: most of its
    requests are small, so what Flask does per request weighs as much as the work."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # Flask asks inspect whether each view, hook and handler is a coroutine function
        # on every call; the answer never changes for a function
        try:
            return self._sync[func]
        except KeyError:
            sync = self._sync[func] = super().ensure_sync(func)
            return sync
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)

    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        # the request's start, for the request log, without a before_request hook
        environ[_STARTED] = time.perf_counter()
        return super().wsgi_app(environ, start_response)


def create_app(config: Config | None = None) -> Flask:
    """Build the gateway app.

    Raises :class:`CannotStart` with a plain explanation when the osquery schedule cannot
    be loaded. Storage does not stop it: with ``config.startup_check`` (the default) it is
    probed here, else on the first request; until a probe passes, the agent endpoints
    answer 503 (:mod:`.storage.readiness`).
    """
    config = config or load_config()
    setup_logging(config.log_level)
    try:
        schedule = load_schedule(config.schedule_file)
    except (OSError, ScheduleError) as exc:
        raise CannotStart(f"cannot load the osquery schedule: {exc}") from None
    try:
        twigs = load_twigs()
    except SchemaError as exc:
        raise CannotStart(f"cannot load Flock agent's twigs: {exc}") from None
    client = make_client(config)
    names = IndexNames(config.index_prefix)
    # one attempt per probe: a probe's cost stays one request timeout at most
    probe_client = client.options(max_retries=0)
    readiness = Readiness(
        lambda: probe(probe_client, config, names.agents), config.readiness_interval
    )
    if config.startup_check:
        readiness.refresh()

    registry = Registry(client, names.agents)
    svc = Services(
        config=config,
        client=client,
        names=names,
        registry=registry,
        writer=BulkWriter(
            make_client(config, raw_answers=True),
            max_rows=config.bulk_max_rows,
            max_bytes=config.bulk_max_bytes,
            linger_ms=config.bulk_linger_ms,
            concurrency=config.bulk_concurrency,
        ),
        authenticator=Authenticator(
            registry.get, AuthCache(config.auth_cache_ttl), registry.generation
        ),
        schedule=schedule,
        twigs=twigs,
        metrics=Metrics(),
        readiness=readiness,
    )

    app = GatewayFlask("flock_gateway")
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

    @app.after_request
    def _log(response: Response) -> Response:
        # the request and g looked up once each (every proxy attribute is a lookup)
        req = request._get_current_object()  # type: ignore[attr-defined]
        path = req.path
        status = response.status_code
        if status == 200 and path in ("/healthz", "/readyz"):
            return response
        environ = req.environ
        started = environ.get(_STARTED)
        extra = {
            "method": req.method,
            "path": path[:200],
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else 0.0,
            "remote_addr": environ.get("REMOTE_ADDR"),
            "content_length": req.content_length,
        }
        seen = vars(g._get_current_object())  # type: ignore[attr-defined]
        if "username" in seen:
            extra["agent"] = seen["username"]
        elif "auth_failed_for" in seen:
            extra["auth_failed_for"] = seen["auth_failed_for"]
        counts = seen.get("counts")
        if counts:
            extra.update(counts)
        access.write(extra)
        return response


def tune_collector() -> None:
    """The cycle collector's settings for a serving process, once its app is built."""
    # A request's rows are many short-lived, acyclic objects that reference counting frees.
    # At Python's default threshold (a collection every 700 net allocations) the cycle
    # collector ran several times per large request and moved the rows of requests in
    # flight into the older generations, whose collections then walked them again: about a
    # tenth of the CPU per row. What the app holds for good (modules, config, schedule) is
    # frozen out of collections altogether.
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
