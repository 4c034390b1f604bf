"""API errors and their JSON shape: ``{"error": true, "error_msg": "..."}``.

The Flock agent treats 401 as "permission denied", any other non-200 as a failure to be
retried, and reads ``error``/``error_msg`` from 200 and 400 bodies, so every failure keeps
exactly that shape.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    status = 400

    def __init__(self, message: str, status: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.extra = extra


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class PayloadTooLarge(ApiError):
    status = 413


class Throttled(ApiError):
    """Elasticsearch is overloaded (it answered 429): the client slows down and retries."""

    status = 429


class StorageUnavailable(ApiError):
    """Elasticsearch is down or refused the write: the client keeps the data and retries."""

    status = 503


def error_response(message: str, status: int, **extra: Any) -> Response:
    resp = jsonify({"error": True, "error_msg": message, **extra})
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="flock"'
    if status in (429, 503):
        resp.headers["Retry-After"] = "10"
    return resp


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.message, exc.status, **exc.extra)

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
