"""Clients that put the gateway's proxy under pressure, for test_gateway.py (stdlib only:
copied to and run on the scenario's containers with their own python3).

  hold   on the gateway host: keep N raw TCP connections open that never start a TLS
         handshake (reopening each one nginx closes) and M clients that trickle a /submit
         body (a byte every 2 s, each from an address of its own in 127.0.0.0/8), and
         write how many are open to a status file every second;
  cap    on the gateway host: K clients from one address each start a /submit body; print
         how many nginx held and how many it refused at once, with one refusal;
  submit on a laptop: W clients post /submit with valid credentials, a new connection per
         request, for T seconds; print every answer's status and every failure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import resource
import select
import selectors
import socket
import ssl
import sys
import threading
import time
from pathlib import Path

SLOW_HEAD = (
    "POST /submit HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    "Content-Length: 1000000\r\n\r\n["
)


def _source(block: int, i: int) -> str:
    """The i-th address of a /16 in 127.0.0.0/8: every address there is this host's own."""
    return f"127.{block}.{i // 250}.{i % 250 + 1}"


def _tls() -> ssl.SSLContext:
    # an attacker does not care whom it talks to
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _slow_client(ctx: ssl.SSLContext, host: str, port: int, source: str) -> ssl.SSLSocket:
    raw = socket.create_connection((host, port), timeout=10, source_address=(source, 0))
    conn = ctx.wrap_socket(raw, server_hostname=host)
    conn.sendall(SLOW_HEAD.format(host=host).encode())
    return conn


def _answered(conn: ssl.SSLSocket) -> bool:
    """Whether nginx answered or closed: TLS 1.3 session tickets make a socket readable too."""
    conn.setblocking(False)
    try:
        conn.recv(1)
    except ssl.SSLWantReadError:
        return False
    except OSError:
        return True
    finally:
        conn.setblocking(True)
    return True


def hold(args: argparse.Namespace) -> None:
    ctx = _tls()
    sel = selectors.DefaultSelector()
    idle: dict[int, socket.socket] = {}
    reopened = 0

    def open_idle(i: int) -> None:
        source = (_source(1, i), 0)
        try:
            s = socket.create_connection((args.host, args.port), timeout=10, source_address=source)
        except OSError:
            return  # counted as not open: the status says so
        s.setblocking(False)
        idle[i] = s
        sel.register(s, selectors.EVENT_READ, i)

    for i in range(args.idle):
        open_idle(i)
    slow = [_slow_client(ctx, args.host, args.port, _source(2, i)) for i in range(args.slow)]
    slow_failed = 0
    deadline = time.monotonic() + args.seconds
    next_byte = 0.0
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            i = key.data
            with contextlib.suppress(OSError):
                if key.fileobj.recv(1):  # type: ignore[union-attr]
                    continue
            # closed by nginx (client_header_timeout): an attacker opens another
            sel.unregister(key.fileobj)
            key.fileobj.close()
            del idle[i]
            open_idle(i)
            reopened += 1
        now = time.monotonic()
        if now >= next_byte:
            next_byte = now + 2
            # an answer (408, 429...) or a close: nginx gave up on that client
            poll = select.poll()
            for conn in slow:
                if conn is not None:
                    poll.register(conn, select.POLLIN)
            readable = {fd for fd, _ in poll.poll(0)}
            for n, conn in enumerate(slow):
                if conn is None:
                    continue
                try:
                    if conn.fileno() in readable and _answered(conn):
                        raise ConnectionError("answered")
                    conn.sendall(b"[")
                except OSError:
                    conn.close()
                    slow[n] = None
                    slow_failed += 1
            status = {
                "idle_open": len(idle),
                "idle_reopened": reopened,
                "slow_open": sum(1 for c in slow if c is not None),
                "slow_failed": slow_failed,
                "time": time.time(),
            }
            tmp = Path(args.status + ".tmp")
            tmp.write_text(json.dumps(status))
            tmp.replace(args.status)


def cap(args: argparse.Namespace) -> None:
    ctx = _tls()
    conns = [_slow_client(ctx, args.host, args.port, "127.0.0.1") for _ in range(args.count)]
    time.sleep(2)
    refused, answer = 0, ""
    for conn in conns:
        conn.setblocking(False)
        try:
            data = conn.recv(4096)
        except (ssl.SSLWantReadError, BlockingIOError):
            continue
        if data:
            refused += 1
            answer = answer or data.decode(errors="replace")
    for conn in conns:
        conn.close()
    print(json.dumps({"held": args.count - refused, "refused": refused, "answer": answer}))


def submit(args: argparse.Namespace) -> None:
    import http.client

    ctx = ssl.create_default_context(cafile=args.ca)
    auth = base64.b64encode(f"{args.user}:{args.token}".encode()).decode()
    results: list[tuple[float, float, str]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def client(n: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            now = int(time.time())
            rows = [{"name": "molecule_restart", "hostIdentifier": args.user, "unixTime": now,
                     "calendarTime": time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(now)),
                     "epoch": 0, "counter": i, "numerics": False, "action": "added",
                     "columns": {"client": str(n), "request": str(i)}}]  # fmt: skip
            start = time.time()
            try:
                conn = http.client.HTTPSConnection(args.host, args.port, context=ctx, timeout=120)
                conn.request("POST", "/submit", body=json.dumps(rows),
                             headers={"Authorization": f"Basic {auth}", "Connection": "close",
                                      "Content-Type": "application/json"})  # fmt: skip
                outcome = str(conn.getresponse().status)
                conn.close()
            except Exception as exc:  # every failure is reported
                outcome = f"{type(exc).__name__}: {exc}"
            with lock:
                results.append((start, time.time() - start, outcome))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses: dict[str, int] = {}
    for _, _, outcome in results:
        statuses[outcome] = statuses.get(outcome, 0) + 1
    print(json.dumps({
        "requests": len(results),
        "answers": statuses,
        "slowest_s": max((d for _, d, _ in results), default=0.0),
        "first": min((s for s, _, _ in results), default=0.0),
        "last": max((s + d for s, d, _ in results), default=0.0),
    }))  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--idle", type=int, required=True)
    h.add_argument("--slow", type=int, required=True)
    h.add_argument("--seconds", type=float, required=True)
    h.add_argument("--status", required=True)
    c = sub.add_parser("cap")
    c.add_argument("--count", type=int, required=True)
    s = sub.add_parser("submit")
    s.add_argument("--ca", required=True)
    s.add_argument("--user", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--workers", type=int, default=4)
    s.add_argument("--seconds", type=float, required=True)
    for p in (h, c, s):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8443)
    args = ap.parse_args()
    {"hold": hold, "cap": cap, "submit": submit}[args.mode](args)
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    # thousands of sockets: as many descriptors as the hard limit allows
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sys.exit(main())
