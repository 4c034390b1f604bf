"""HTTP errors, their JSON shape ``{"error": true, "error_msg": "..."}``, and what each
storage error means to a client.

Some requests never reach the app: a request line or headers gunicorn cannot parse (400),
headers over its limits (431), a URI too long (414). gunicorn answers those itself, with
an HTML page; :func:`install_gunicorn_errors` makes it answer them in the same JSON shape.

The Flock agent treats 401 as "permission denied", any other non-200 as a failure to be
retried, and reads ``error``/``error_msg`` from 200 and 400 bodies, so every failure keeps
exactly that shape.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from flask import Flask, Response, jsonify
from gunicorn import util
from werkzeug.exceptions import HTTPException

from .logging import get_logger
from .storage.errors import (
    StorageError,
    StorageFull,
    StorageRejected,
    StorageThrottled,
    StorageUnavailable,
)

log = get_logger("api")


class HttpError(Exception):
    """A request fails with this status and message (the body shape above)."""

    status = 400

    def __init__(self, message: str, status: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.extra = extra


class BadRequest(HttpError):
    status = 400


class Unauthorized(HttpError):
    status = 401


class PayloadTooLarge(HttpError):
    status = 413


class ServiceUnavailable(HttpError):
    """The request may succeed later: the client keeps its data and retries."""

    status = 503


# What a storage failure means to a client: 429 slows it down, 503 makes it keep the data
# and retry; the detail (what Elasticsearch said) goes to the log, never to the client.
STORAGE_ANSWERS: dict[type[StorageError], tuple[int, str]] = {
    StorageFull: (
        503,
        "Storage is out of disk space and refuses writes until an administrator frees "
        "space; nothing was stored, try again later",
    ),
    StorageThrottled: (429, "Storage is busy, slow down and try again later"),
    StorageUnavailable: (503, "Storage is unavailable, try again later"),
    StorageRejected: (503, "Storage refused the request, try again later"),
    StorageError: (503, "Storage failed, try again later"),
}


# Why storage failed, as the /metrics label of flock_storage_errors_total.
STORAGE_REASONS: dict[type[StorageError], str] = {
    StorageFull: "disk_full",
    StorageThrottled: "throttled",
    StorageUnavailable: "unavailable",
    StorageRejected: "rejected",
    StorageError: "failed",
}
# Seconds a client waits before it resends: a full disk is freed by a person, not in 10 s.
RETRY_AFTER = 10
RETRY_AFTER_FULL = 60


def storage_reason(exc: StorageError) -> str:
    return next(STORAGE_REASONS[c] for c in type(exc).__mro__ if c in STORAGE_REASONS)


def storage_answer(exc: StorageError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in STORAGE_ANSWERS:
            return STORAGE_ANSWERS[cls]
    return STORAGE_ANSWERS[StorageError]  # pragma: no cover - StorageError is in every mro


def error_response(
    message: str, status: int, retry_after: int = RETRY_AFTER, **extra: Any
) -> Response:
    resp = jsonify({"error": True, "error_msg": message, **extra})
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="flock"'
    if status in (429, 503):
        resp.headers["Retry-After"] = str(retry_after)
    return resp


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HttpError)
    def _http_error_raised(exc: HttpError) -> Response:
        return error_response(exc.message, exc.status, **exc.extra)

    @app.errorhandler(StorageError)
    def _storage_error(exc: StorageError) -> Response:
        log.warning("storage failed", extra={"error_type": type(exc).__name__, "detail": str(exc)})
        svc = app.extensions.get("flock")
        if svc is not None:
            svc.metrics.inc("flock_storage_errors_total", reason=storage_reason(exc))
        status, message = storage_answer(exc)
        retry_after = RETRY_AFTER_FULL if isinstance(exc, StorageFull) else RETRY_AFTER
        return error_response(message, status, retry_after=retry_after)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        messages = {
            400: "Bad request",
            404: "Not found",
            405: "Method not allowed",
            413: "Request body is too large",
        }
        return error_response(messages.get(status, exc.name), status)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:  # pragma: no cover - last resort
        app.logger.exception("unhandled error")
        return error_response("Internal error", 500)


# gunicorn's own error answers, in each worker that loads the app (wsgi.py)


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps({"error": True, "error_msg": reason}).encode("utf-8")
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)
    _linger(sock)


# What is read (and dropped) of a refused request after its answer, at most.
LINGER_BYTES = 256 * 1024
LINGER_SECONDS = 1.0


def _linger(sock: socket.socket) -> None:
    """Read what is left of the refused request before gunicorn closes the socket.

    Closing a socket with unread input makes the kernel reset the connection, and a
    client that is still sending (a URI over the limit arrives in several pieces) then
    loses the answer before reading it. So: no more output, then read the rest for a
    bounded time and size, as web servers' "lingering close" does.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(LINGER_SECONDS)
        left = LINGER_BYTES
        while left > 0:
            data = sock.recv(min(left, 65536))
            if not data:
                break
            left -= len(data)
    except OSError:  # reset, timed out, already closed: nothing more to do
        pass


def install_gunicorn_errors() -> None:
    """Make gunicorn (in this process) answer its own errors as JSON."""
    util.write_error = write_json_error  # type: ignore[assignment]
