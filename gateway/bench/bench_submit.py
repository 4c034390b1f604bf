"""Benchmark: rows/s stored through the gateway's /submit vs a direct bulk request.

Not a test. Starts the test Elasticsearch node (or uses $FLOCK_ES_URL), installs the
templates under a throwaway prefix, runs the gateway under gunicorn (gthread) on
127.0.0.1, then alternates rounds of

  * gateway: POST /submit with a batch of --rows osquery result lines (HTTP Basic auth,
    validation, document building, one bulk request per batch), and
  * direct:  one _bulk request with the same rows (same index template, same ids) sent
    straight to the node,

with the same concurrency, so both are measured side by side in one run under the same
conditions. Bounded by --batches per side and --max-seconds.

    python gateway/bench/bench_submit.py [--rows 200] [--batches 60] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from elasticsearch import Elasticsearch
from flock_testinfra.esnode import node_url

from flock_gateway.documents import DocumentBuilder, Tag
from flock_gateway.storage.names import IndexNames
from flock_gateway.storage.templates import setup_storage

ENROLL_SECRET = "bench-enroll-secret-0123456789"  # noqa: S105 - throwaway test value
OSQUERY_QUERY = "installed_applications"  # a query name from the reviewed schedule


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(es_url: str, prefix: str, workers: int, threads: int) -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "FLOCK_ES_HOSTS": es_url, "FLOCK_INDEX_PREFIX": prefix,
           "FLOCK_LOG_LEVEL": "WARNING", "FLOCK_ENROLL_SECRETS": ENROLL_SECRET,
           "FLOCK_REGISTER_REQUIRES_SECRET": "false"}  # fmt: skip
    cmd = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads),
        "--timeout", "60", "--keep-alive", "30", "--log-level", "warning",
        "flock_gateway.wsgi:app",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit(f"gunicorn exited with {proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


def osquery_rows(host: str, n: int, batch_no: int, name: str = "apps") -> list[dict]:
    unix = int(time.time()) - 60
    cal = time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(unix))
    return [
        {
            "name": name,
            "hostIdentifier": host,
            "calendarTime": cal,
            "unixTime": unix,
            "epoch": 0,
            "counter": batch_no,
            "numerics": False,
            "decorations": {"username": "bench"},
            "columns": {
                "name": f"App {batch_no}-{i}.app",
                "path": f"/Applications/App {batch_no}-{i}.app",
                "bundle_identifier": f"com.example.app{batch_no}.{i}",
                "bundle_short_version": f"1.{i}",
                "bundle_version": f"{batch_no}.{i}",
                "last_opened_time": str(unix - i),
            },
            "action": "added",
        }
        for i in range(n)
    ]


def run_side(
    label: str, send: Callable[[int], int], batches: list[int], concurrency: int
) -> tuple[int, float]:
    """Send the given batch numbers with `concurrency` threads; returns (rows, seconds)."""
    lock = threading.Lock()
    todo = list(batches)
    total = 0

    def worker() -> None:
        nonlocal total
        while True:
            with lock:
                if not todo:
                    return
                n = todo.pop()
            rows = send(n)
            with lock:
                total += rows

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return total, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=200, help="rows per batch (default 200)")
    ap.add_argument("--batches", type=int, default=60, help="batches per side (default 60)")
    ap.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    ap.add_argument("--concurrency", type=int, default=2, help="parallel senders (default 2)")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    ap.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    ap.add_argument("--max-seconds", type=float, default=240, help="stop starting rounds after")
    ap.add_argument("--gzip", action="store_true", help="gzip /submit bodies")
    ap.add_argument("--osquery-lines", type=int, default=1024, help="lines per osquery batch")
    ap.add_argument(
        "--osquery-batches",
        type=int,
        default=12,
        help="osquery batches per side (default 12; 0 skips the osquery load)",
    )
    args = ap.parse_args()

    prefix = "bench" + uuid.uuid4().hex[:8]
    host = "bench-host"
    with node_url(heap="1g", prefix="flock-bench-es-") as es_url:
        es = Elasticsearch(es_url, request_timeout=60)
        setup_storage(es, IndexNames(prefix))
        try:
            with gunicorn(es_url, prefix, args.workers, args.threads) as port:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/register", body=json.dumps({"username": host}),
                             headers={"Content-Type": "application/json"})  # fmt: skip
                token = json.loads(conn.getresponse().read())["auth_token"]
                auth = "Basic " + base64.b64encode(f"{host}:{token}".encode()).decode()
                local = threading.local()

                def post(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
                    """POST on this thread's keep-alive connection; reconnect once if the
                    server closed it while idle (a resend is safe: retry-safe ids)."""
                    for attempt in (1, 2):
                        if not hasattr(local, "conn"):
                            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                        try:
                            local.conn.request("POST", path, body=body, headers=headers)
                            res = local.conn.getresponse()
                            return res.status, json.loads(res.read())
                        except (ConnectionError, http.client.HTTPException):
                            local.conn.close()
                            del local.conn
                            if attempt == 2:
                                raise
                    raise AssertionError("unreachable")

                def gateway_send(n: int) -> int:
                    body = json.dumps(osquery_rows(host, args.rows, n)).encode()
                    headers = {"Authorization": auth, "Content-Type": "application/json"}
                    if args.gzip:
                        body = gzip.compress(body, 5)
                        headers["Content-Encoding"] = "gzip"
                    status, data = post("/submit", body, headers)
                    if status != 200:
                        raise SystemExit(f"/submit answered {status}: {data}")
                    return int(data["stored_count"])

                direct_index = prefix + "-results-direct"

                def direct_bulk(rows: list[dict], source: str) -> int:
                    builder = DocumentBuilder(
                        prefix, Tag(host, "", source), 90, received=datetime.now(tz=UTC)
                    )
                    ops: list[dict] = []
                    for doc in builder.results(rows):
                        ops.append({"create": {"_index": direct_index, "_id": doc.id}})
                        ops.append(doc.source)
                    resp = es.bulk(operations=ops)
                    if resp["errors"]:
                        raise SystemExit("direct bulk had errors")
                    return len(resp["items"])

                def direct_send(n: int) -> int:
                    return direct_bulk(osquery_rows(host, args.rows, n), "flock-agent")

                # osquery-shaped load: 1024-line gzip batches to /osquery/log
                osq_host = "bench-osquery-host"
                enroll = {"enroll_secret": ENROLL_SECRET, "host_identifier": osq_host}
                conn.request("POST", "/osquery/enroll", body=json.dumps(enroll),
                             headers={"Content-Type": "application/json"})  # fmt: skip
                node_key = json.loads(conn.getresponse().read())["node_key"]

                def osquery_send(n: int) -> int:
                    rows = osquery_rows(osq_host, args.osquery_lines, n, OSQUERY_QUERY)
                    body = gzip.compress(json.dumps({"node_key": node_key, "log_type": "result",
                                                     "data": rows}).encode(), 5)  # fmt: skip
                    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
                    status, data = post("/osquery/log", body, headers)
                    if status != 200 or data.get("node_invalid"):
                        raise SystemExit(f"/osquery/log answered {status}: {data}")
                    return int(data["stored_count"])

                def direct_osquery(n: int) -> int:
                    rows = osquery_rows(osq_host, args.osquery_lines, n, OSQUERY_QUERY)
                    return direct_bulk(rows, "osquery")

                # warm-up (index creation, JIT, connection set-up) for every side
                gateway_send(10**6)
                direct_send(10**6)
                per_round = max(1, args.batches // args.rounds)
                osq_per_round = max(1, args.osquery_batches // args.rounds)
                sides = [
                    (f"flock /submit ({args.rows})", gateway_send, per_round),
                    (f"direct _bulk ({args.rows})", direct_send, per_round),
                ]
                if args.osquery_batches:
                    osquery_send(10**6)
                    direct_osquery(10**6)
                    sides += [
                        (f"osquery /log gz ({args.osquery_lines})", osquery_send, osq_per_round),
                        (f"direct _bulk ({args.osquery_lines})", direct_osquery, osq_per_round),
                    ]

                totals = {label: [0, 0.0] for label, _, _ in sides}
                deadline = time.monotonic() + args.max_seconds
                for r in range(args.rounds):
                    if time.monotonic() > deadline:
                        break
                    for label, fn, count in sides:
                        base = r * count
                        nums = list(range(base, base + count))
                        rows, secs = run_side(label, fn, nums, args.concurrency)
                        totals[label][0] += rows
                        totals[label][1] += secs
                        print(f"round {r + 1}: {label:28s} {rows:6d} rows in {secs:6.2f}s "
                              f"= {rows / secs:8.0f} rows/s", flush=True)  # fmt: skip
        finally:
            from contextlib import suppress

            with suppress(Exception):
                rows = es.cat.indices(index=f"{prefix}*", format="json", h="index")
                names = [r["index"] for r in rows]
                if names:
                    es.indices.delete(index=",".join(names))
                for t in es.indices.get_index_template(name=f"{prefix}*")["index_templates"]:
                    es.indices.delete_index_template(name=t["name"])

    print()
    print(f"concurrency {args.concurrency}, gunicorn gthread {args.workers}x{args.threads}")
    for label, (rows, secs) in totals.items():
        if secs:
            print(f"{label:28s} {rows:7d} rows in {secs:7.2f}s = {rows / secs:8.0f} rows/s")
    labels = list(totals)
    for gw, direct in zip(labels[0::2], labels[1::2], strict=True):
        if totals[gw][1] and totals[direct][1]:
            ratio = (totals[gw][0] / totals[gw][1]) / (totals[direct][0] / totals[direct][1])
            print(f"{gw} / {direct}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
