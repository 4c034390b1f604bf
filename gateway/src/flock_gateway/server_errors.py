"""gunicorn's own error answers in the gateway's JSON error shape.

Some requests never reach the app: a request line or headers gunicorn cannot parse (400),
headers over its limits (431), a URI too long (414). gunicorn answers those itself with
an HTML page; agents read ``{"error": true, "error_msg": ...}`` from every failure, so the
gateway replaces gunicorn's one function that writes those pages, in each worker that
loads the app (``wsgi.py``).
"""

from __future__ import annotations

import json
import socket

from gunicorn import util


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps({"error": True, "error_msg": reason}).encode("utf-8")
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    """Make gunicorn (in this process) answer its own errors as JSON."""
    util.write_error = write_json_error  # type: ignore[assignment]
