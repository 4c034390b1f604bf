"""Load generator for bench_submit.py: one process, one selector loop, raw keep-alive sockets.

Run by the benchmark as ``python loadgen.py`` with a pickled :class:`Plan` on stdin; prints
one JSON object (:class:`Outcome`) on stdout. Kept light so that what it costs can be
reported and checked: request bytes are built by joining pre-encoded parts around a
10-digit request number (which makes every row of every request unique, so nothing is a
duplicate), the rows' time is the second of sending (as a fleet's rows are: osquery sends
what it ran seconds ago), direct ``_bulk`` bodies get a fresh id per document, and
responses are parsed only as far as status, length and the stored count.

CPU of the measured processes (gateway, Elasticsearch) is read from /proc at the start and
end of the measured window, so requests, rows and CPU cover the same seconds.
"""

from __future__ import annotations

import binascii
import json
import os
import pickle
import re
import selectors
import socket
import struct
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_STORED = re.compile(rb'"stored_count":\s*(\d+)')
ID_MARK = b"QQDOCIDQQ"  # in a direct _bulk body: replaced by a fresh id per document
_B64URL = bytes.maketrans(b"+/", b"-_")


def fresh_ids(shape: str, count: int, second: int) -> list[bytes]:
    """``count`` new document ids of a shape: "hex" (40 random hex digits, as the
    gateway's SHA-256 ids are) or "time-led" (URL-safe base64 of ``second``, 4 bytes
    big-endian, and 16 random bytes: ids whose order follows time, so that Lucene can
    rule out older segments when it looks an id up)."""
    if shape == "hex":
        text = os.urandom(20 * count).hex().encode()
        return [text[i : i + 40] for i in range(0, 40 * count, 40)]
    lead = struct.pack(">I", second)
    noise = os.urandom(16 * count)
    return [
        binascii.b2a_base64(lead + noise[i : i + 16], newline=False).translate(_B64URL)[:27]
        for i in range(0, 16 * count, 16)
    ]


@dataclass
class Conn:
    """One agent: a request head (without Content-Length) and body parts to join."""

    head: bytes
    parts: list[bytes]
    rows: int  # rows in one request (for direct _bulk, where nothing reports a count)
    ids: str = ""  # direct _bulk: each ID_MARK becomes a fresh id of this shape (fresh_ids)


@dataclass
class Plan:
    host: str
    port: int
    conns: list[Conn]
    gzip: bool
    direct: bool  # True: responses are Elasticsearch _bulk answers
    first_number: int
    time_mark: bytes  # the rows' time in the templates: replaced by the second of sending
    time_offset: int  # less this many seconds
    warmup: float
    seconds: float
    pids: dict[str, list[int]]  # label -> process ids whose CPU is reported


@dataclass
class Outcome:
    requests: int = 0
    rows: int = 0
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # label -> CPU seconds in window
    loadgen_cpu: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    rows_per_bulk: float = 0.0  # filled in by the benchmark from the node's statistics
    settle_seconds: float = 0.0  # the benchmark's wait for the node to be idle after it


def proc_cpu(pids: list[int]) -> float:
    """utime+stime (and the reaped children's) of the given processes, in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17
        total += sum(int(x) for x in fields[11:15])
    return total / CLOCK_TICKS


class Client:
    def __init__(self, conn: Conn, plan: Plan) -> None:
        self.conn = conn
        self.plan = plan
        self.sock = socket.create_connection((plan.host, plan.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.out = memoryview(b"")
        self.inbuf = bytearray()
        self.sent_at = 0.0

    def start(self, number: int) -> None:
        second = int(time.time())
        body = f"{number:010d}".encode().join(self.conn.parts)
        body = body.replace(self.plan.time_mark, b"%d" % (second - self.plan.time_offset))
        if self.conn.ids:
            pieces = body.split(ID_MARK)
            ids = fresh_ids(self.conn.ids, len(pieces) - 1, second)
            joined = [pieces[0]]
            for id_, piece in zip(ids, pieces[1:], strict=True):
                joined += (id_, piece)
            body = b"".join(joined)
        if self.plan.gzip:
            c = zlib.compressobj(1, zlib.DEFLATED, 31)
            body = c.compress(body) + c.flush()
        self.out = memoryview(self.conn.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.inbuf.clear()
        self.sent_at = time.perf_counter()

    def response(self) -> tuple[int, bytes] | None:
        """(status, body) once a whole response is in the buffer."""
        end = self.inbuf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.inbuf[:end]).lower()
        status = int(head[9:12])
        m = re.search(rb"content-length:\s*(\d+)", head)
        if m:
            length = int(m.group(1))
            if len(self.inbuf) < end + 4 + length:
                return None
            return status, bytes(self.inbuf[end + 4 : end + 4 + length])
        if b"transfer-encoding: chunked" in head:
            pos, body = end + 4, bytearray()
            while True:
                eol = self.inbuf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                size = int(bytes(self.inbuf[pos:eol]).split(b";")[0], 16)
                if len(self.inbuf) < eol + 2 + size + 2:
                    return None
                if size == 0:
                    return status, bytes(body)
                body += self.inbuf[eol + 2 : eol + 2 + size]
                pos = eol + 2 + size + 2
        raise RuntimeError("response without length")


def run(plan: Plan) -> Outcome:
    sel = selectors.DefaultSelector()
    clients = [Client(c, plan) for c in plan.conns]
    number = plan.first_number
    for client in clients:
        client.start(number)
        number += 1
        sel.register(client.sock, selectors.EVENT_WRITE, client)
    out = Outcome()
    t_start = time.perf_counter()
    t0 = t_start + plan.warmup
    t1 = t0 + plan.seconds
    measuring = False
    cpu0: dict[str, float] = {}
    lg0 = 0.0
    active = len(clients)
    while active:
        now = time.perf_counter()
        if not measuring and now >= t0:
            measuring = True
            cpu0 = {k: proc_cpu(v) for k, v in plan.pids.items()}
            lg0 = time.process_time()
            t0 = now
        if measuring and now >= t1 and not out.seconds:
            out.cpu = {k: proc_cpu(v) - cpu0[k] for k, v in plan.pids.items()}
            out.loadgen_cpu = time.process_time() - lg0
            out.seconds = now - t0
        for key, events in sel.select(timeout=0.5):
            client: Client = key.data
            if events & selectors.EVENT_WRITE:
                n = client.sock.send(client.out)
                client.out = client.out[n:]
                if not client.out:
                    sel.modify(client.sock, selectors.EVENT_READ, client)
                continue
            data = client.sock.recv(262144)
            if not data:
                raise RuntimeError("server closed the connection")
            client.inbuf += data
            res = client.response()
            if res is None:
                continue
            status, body = res
            done = time.perf_counter()
            if measuring and not out.seconds:  # completed inside the window
                ok = status == 200
                rows = 0
                if ok and plan.direct:
                    ok = b'"errors":false' in body[:200]
                    rows = client.conn.rows
                elif ok:
                    m = _STORED.search(body)
                    rows = int(m.group(1)) if m else 0
                    ok = m is not None and b'"node_invalid":true' not in body
                if ok:
                    out.requests += 1
                    out.rows += rows
                    out.latencies_ms.append((done - client.sent_at) * 1000)
                else:
                    out.errors += 1
                    out.first_error = out.first_error or f"{status}: {body[:300]!r}"
            if out.seconds:
                sel.unregister(client.sock)
                client.sock.close()
                active -= 1
                continue
            client.start(number)
            number += 1
            sel.modify(client.sock, selectors.EVENT_WRITE, client)
    return out


def main() -> int:
    plan: Plan = pickle.load(sys.stdin.buffer)  # noqa: S301 - our own parent process
    out = run(plan)
    out.latencies_ms.sort()
    json.dump(asdict(out), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
