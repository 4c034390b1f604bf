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


def install() -> None:
    """Make gunicorn (in this process) answer its own errors as JSON."""
    util.write_error = write_json_error  # type: ignore[assignment]
