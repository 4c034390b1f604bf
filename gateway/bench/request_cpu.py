"""The gateway's own CPU per request, one request at a time, in one process.

Not a test, and not a throughput figure: bench_submit.py measures the gateway at
saturation beside Elasticsearch. This one holds everything else still so that a change
to the request path can be compared with the one before it in a minute: the app is
built by ``create_app`` as gunicorn's workers build it (``wsgi.py``'s collector settings
included), requests go straight to its WSGI callable from this thread, the bulk goes to a
real Elasticsearch node (another process, so its CPU is not counted), and every request
carries new rows (each one is stored, none is a duplicate). It prints the median CPU
(user + system, ``time.process_time``) per request and per row over ``--requests``
requests per load, after ``--warmup`` unmeasured ones, for the three loads of
bench_submit.py. Two runs of the same code agreed within 5-15% here: compare medians
of alternating runs, not a single pair.

    python gateway/bench/request_cpu.py [--requests 300] [--load osquery1024 ...]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench_submit import (
    ENROLL_SECRET,
    LOADS,
    MARK,
    OSQUERY_QUERY,
    TIME_MARK,
    Load,
    gateway_env,
    rows_template,
)
from elasticsearch import Elasticsearch
from flock_testinfra.esnode import node_url
from werkzeug.test import EnvironBuilder

from flock_gateway.app import create_app, tune_collector
from flock_gateway.config import load_config
from flock_gateway.indices import IndexNames
from flock_gateway.storage.templates import setup_storage

# (status, response body, CPU seconds the app spent)
Call = Callable[[str, bytes, dict[str, str]], tuple[int, bytes, float]]


def wsgi_caller(app: Any) -> Call:
    """POST a body to the app's WSGI callable; (status, response body). The request's
    environ is built before the clock starts, so only the app's own work is timed."""

    def call(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, float]:
        environ = EnvironBuilder(
            path, method="POST", data=body, headers=headers, content_type="application/json"
        ).get_environ()
        status: list[str] = []
        start = time.process_time()
        out = app(environ, lambda s, h, exc_info=None: status.append(s))
        try:
            data = b"".join(out)
        finally:
            close = getattr(out, "close", None)
            if close:
                close()
        return int(status[0].split()[0]), data, time.process_time() - start

    return call


def body_maker(call: Call, load: Load) -> Callable[[int], tuple[str, bytes, dict[str, str]]]:
    """Enrol one agent (or osquery host) and return a function making request ``n``."""
    host = f"cpu-{load.key}-{uuid.uuid4().hex[:6]}"
    if load.osquery:
        status, data, _ = call(
            "/osquery/enroll",
            json.dumps({"enroll_secret": ENROLL_SECRET, "host_identifier": host}).encode(),
            {},
        )
        key = json.loads(data)["node_key"]
        lines = rows_template(host, load.rows, OSQUERY_QUERY)
        text = json.dumps({"node_key": key, "log_type": "result", "data": lines})
        path, headers = "/osquery/log", {"Content-Encoding": "gzip"}
    else:
        status, data, _ = call("/register", json.dumps({"username": host}).encode(), {})
        token = json.loads(data)["auth_token"]
        text = json.dumps(rows_template(host, load.rows, "apps"))
        cred = base64.b64encode(f"{host}:{token}".encode()).decode()
        path, headers = "/submit", {"Authorization": f"Basic {cred}"}
    if status != 200:
        raise SystemExit(f"cannot enrol: {status} {data[:200]!r}")

    def make(n: int) -> tuple[str, bytes, dict[str, str]]:
        now = int(time.time())
        body = text.replace(MARK, f"{n:010d}").replace(str(TIME_MARK), str(now)).encode()
        return path, gzip.compress(body, 1) if load.osquery else body, headers

    return make


def measure(call: Call, load: Load, requests: int, warmup: int) -> list[float]:
    make = body_maker(call, load)
    cpu = []
    for n in range(warmup + requests):
        path, body, headers = make(n)
        status, data, spent = call(path, body, headers)
        if status != 200 or b'"stored_count":%d' % load.rows not in data.replace(b" ", b""):
            raise SystemExit(f"{load.key}: {status} {data[:300]!r}")
        if n >= warmup:
            cpu.append(spent)
    return cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=300, help="measured requests per load")
    ap.add_argument("--warmup", type=int, default=50, help="unmeasured requests per load")
    ap.add_argument("--load", action="append", choices=[ld.key for ld in LOADS],
                    help="run only this load (repeatable; default: all three)")  # fmt: skip
    args = ap.parse_args()
    loads = [ld for ld in LOADS if not args.load or ld.key in args.load]
    with node_url(heap="1g", prefix="flock-cpu-es-") as es_url, open(os.devnull, "w") as quiet:
        prefix = "cpu" + uuid.uuid4().hex[:8]
        os.environ.update(gateway_env(es_url, prefix))
        es = Elasticsearch(es_url, request_timeout=60)
        setup_storage(es, IndexNames(prefix))
        # the gateway's logs (one line per request) write to stderr's descriptor: to
        # /dev/null while it serves
        saved = os.dup(2)
        os.dup2(quiet.fileno(), 2)
        try:
            app = create_app(load_config())
            tune_collector()  # as wsgi.py does for gunicorn's workers
            call = wsgi_caller(app)
            results = [(ld, measure(call, ld, args.requests, args.warmup)) for ld in loads]
        finally:
            os.dup2(saved, 2)
    print(f"{'load':<14} {'CPU ms/request':>15} {'µs/row':>8}  (median of {args.requests})")
    for ld, cpu in results:
        ms = statistics.median(cpu) * 1000
        print(f"{ld.key:<14} {ms:>15.3f} {ms * 1000 / ld.rows:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
