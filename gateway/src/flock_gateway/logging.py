"""Structured (one JSON object per line) logging that never carries secrets.

Log records only ever get the fields we put in them explicitly (method, path, status,
username, counts...). Request headers and bodies are never logged; as a second line of
defence the formatter masks anything that looks like an Authorization value or a token.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

import orjson

LOGGER_NAME = "flock_gateway"

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_SECRET_KEYS = {
    "authorization",
    "password",
    "token",
    "auth_token",
    "node_key",
    "enroll_secret",
    "api_key",
    "secret",
}
_BASIC_RE = re.compile(r"(?i)\b(basic|bearer|apikey)\s+[A-Za-z0-9+/=._~-]+")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _BASIC_RE.sub(r"\1 [redacted]", value)
    if isinstance(value, dict):
        return {
            k: ("[redacted]" if str(k).lower() in _SECRET_KEYS else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    # (second, its ISO text): one strftime per second, not one per line
    _stamp: tuple[int, str] = (-1, "")

    def _time(self, created: float, msecs: float) -> str:
        second = int(created)
        stamp = self._stamp
        if stamp[0] != second:
            stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._stamp = stamp
        return f"{stamp[1]}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._time(record.created, record.msecs),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _RESERVED or key.startswith("_"):
                continue
            entry[key] = "[redacted]" if key.lower() in _SECRET_KEYS else value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = str(record.exc_info[1])
        entry = _scrub(entry)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # e.g. an integer beyond 64 bits
            return json.dumps(entry, default=str, ensure_ascii=False)


class RequestLog:
    """The one line per request, as the JSON formatter would write it, without a LogRecord
    or the handler's lock: a line (well under the 4 KiB a pipe writes whole) goes to the
    gateway's handler's file descriptor in one ``write``, so concurrent requests neither
    wait for each other nor interleave. Handlers without a descriptor (tests) get the
    ordinary path.

    The fields are the caller's own (method, status, counts, a checked agent name); the
    path is the only text a client chose, and is scrubbed like any log text.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._formatter = JsonFormatter()
        # (the handler's stream, its descriptor) as last found: looked up again only when
        # the stream changed (the handler flushes after every record it writes itself)
        self._cached: tuple[Any, int | None] = (None, None)

    def _fd(self) -> int | None:
        for handler in logging.getLogger(LOGGER_NAME).handlers:
            if getattr(handler, "_flock", False) and isinstance(handler, logging.StreamHandler):
                stream = handler.stream
                cached = self._cached
                if cached[0] is stream:
                    return cached[1]
                try:
                    handler.flush()
                    fd: int | None = int(stream.fileno())
                except (AttributeError, OSError, ValueError):
                    fd = None
                self._cached = (stream, fd)
                return fd
        return None

    def write(self, fields: dict[str, Any]) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        fd = self._fd() if logger.name.startswith(LOGGER_NAME) else None
        if fd is None:
            logger.info("request", extra=fields)
            return
        now = time.time()
        entry: dict[str, Any] = {
            "ts": self._formatter._time(now, (now % 1) * 1000),
            "level": "INFO",
            "logger": logger.name,
            "msg": "request",
            **fields,
        }
        path = fields.get("path")
        if isinstance(path, str):
            entry["path"] = _scrub(path)
        try:
            line = orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE, default=str)
        except TypeError:
            line = (json.dumps(entry, default=str, ensure_ascii=False) + "\n").encode()
        try:
            os.write(fd, line)
        except OSError:
            logger.info("request", extra=fields)


def setup_logging(level: str = "INFO", stream: Any = None) -> logging.Logger:
    """Configure the gateway's logger (idempotent) and quiet chatty libraries."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    if not any(getattr(h, "_flock", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._flock = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
    # The ES transport logs every request at INFO; keep only its warnings.
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    logging.getLogger("elasticsearch").setLevel(logging.WARNING)
    return logger


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)
