"""What the worst requests without credentials cost the gateway, one request at a time.

    .venv/bin/python gateway/bench/preauth_cost.py            # every case
    .venv/bin/python gateway/bench/preauth_cost.py --case log-members --case register-2mib

Starts a test Elasticsearch node (test-infra), installs the storage, then sends each
hostile request once to a fresh gateway app (Flask test client, the role's default
limits) in its own child process, and prints per request: the answer, wall and CPU time,
the child's peak resident memory during the request over what it held just before, the
body already loaded (Linux's VmHWM, reset before the request: memory the compiled
accelerator takes counts too) and how many Elasticsearch requests the app made.
Bodies are built once, beforehand, and loaded by the child before it measures.

The code measured is whichever ``flock_gateway`` (and ``flock_rowpath``) the interpreter
imports: put another tree first on PYTHONPATH to measure it (the table's header says which).
Wall and CPU times depend on the machine and its load; the memory and the answers do not.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
# the gateway's defaults: max_body_bytes, max_decompressed_bytes
MAX_BODY = 20 * MIB
MAX_INFLATED = 64 * MIB
UNKNOWN_KEY = "nobody-here:" + "0" * 32
ENROLL_SECRET = "the-one-enroll-secret"  # noqa: S105 - not the one the bodies send


def gzip_stream(parts: Iterator[bytes]) -> bytes:
    """One gzip member of the concatenated parts, compressed as they come."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [packer.compress(part) for part in parts]
    out.append(packer.flush())
    return b"".join(out)


def filler(size: int, unit: bytes = b"[],") -> Iterator[bytes]:
    """``unit`` repeated to at most ``size`` bytes, in pieces of about 1 MiB."""
    per_piece = MIB // len(unit)
    count = size // len(unit)
    while count > 0:
        yield unit * min(count, per_piece)
        count -= per_piece


def lists_body(total: int, *, key_first: bool, key: str = UNKNOWN_KEY) -> Iterator[bytes]:
    """osquery's log wrapper around ``[[],[],…]`` making ``total`` bytes."""
    head = b'{"node_key":%s,"log_type":"result","data":[' % json.dumps(key).encode()
    tail = b"[]]}"
    if not key_first:
        head = b'{"log_type":"result","data":['
        tail = b'[]],"node_key":%s}' % json.dumps(key).encode()
    yield head
    yield from filler(total - len(head) - len(tail))
    yield tail


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    what: str
    body: Callable[[], bytes]
    gzip: bool = False
    authenticated: bool = False


def _members() -> bytes:
    empty = gzip.compress(b"", mtime=0)
    first = gzip.compress(b'{"node_key":"%s","log_type":"result","data":[' % UNKNOWN_KEY.encode())
    return first + empty * 150_000 + gzip.compress(b"]}")


def _key_middle() -> bytes:
    # node_key between two nested values: no scan finds it
    head = b'{"data":['
    tail = b'[]],"node_key":"%s","x":{}}' % UNKNOWN_KEY.encode()
    return gzip_stream(iter([head, *filler(MAX_INFLATED - 64 - len(head) - len(tail)), tail]))


def _deep() -> bytes:
    depth = MAX_BODY // 2 - 100
    return b'{"node_key":"%s","log_type":"result","data":%s%s}' % (
        UNKNOWN_KEY.encode(),
        b"[" * depth,
        b"]" * depth,
    )


CASES = [
    Case("log-members", "/osquery/log", "150k empty gzip members (3 MiB)", _members, gzip=True),
    Case(
        "log-bomb-key-first",
        "/osquery/log",
        "gzip bomb to the cap: [[],…] (64 MiB), node_key first",
        lambda: gzip_stream(lists_body(MAX_INFLATED - 64, key_first=True)),
        gzip=True,
    ),
    Case(
        "log-bomb-key-last",
        "/osquery/log",
        "gzip bomb to the cap: [[],…] (64 MiB), node_key last",
        lambda: gzip_stream(lists_body(MAX_INFLATED - 64, key_first=False)),
        gzip=True,
    ),
    Case(
        "log-bomb-key-hidden",
        "/osquery/log",
        "gzip bomb to the cap, node_key between nested values",
        _key_middle,
        gzip=True,
    ),
    Case(
        "log-lists-20mib",
        "/osquery/log",
        "[[],…] at max_body_bytes (20 MiB, plain), node_key last",
        lambda: b"".join(lists_body(MAX_BODY - 64, key_first=False)),
    ),
    Case("log-deep", "/osquery/log", "[[[[…]]]] nested 10M deep (20 MiB)", _deep),
    Case(
        "enroll-bomb",
        "/osquery/enroll",
        "gzip bomb: [[],…] (64 MiB) after a wrong enroll_secret",
        lambda: gzip_stream(
            iter(
                [
                    b'{"enroll_secret":"wrong-wrong-wrong","host_identifier":"h","x":[',
                    *filler(MAX_INFLATED - 128),
                    b"[]]}",
                ]
            )
        ),
        gzip=True,
    ),
    Case(
        "enroll-2mib",
        "/osquery/enroll",
        "2 MiB plain body",
        lambda: b'{"enroll_secret":"wrong-wrong-wrong","x":"' + b"a" * (2 * MIB) + b'"}',
    ),
    Case(
        "config-bomb",
        "/osquery/config",
        "gzip bomb: [[],…] (64 MiB), node_key last",
        lambda: gzip_stream(lists_body(MAX_INFLATED - 64, key_first=False)),
        gzip=True,
    ),
    Case(
        "config-2mib",
        "/osquery/config",
        "2 MiB plain body, node_key last",
        lambda: b"".join(lists_body(2 * MIB, key_first=False)),
    ),
    Case(
        "register-2mib",
        "/register",
        "2 MiB JSON body",
        lambda: b'{"username":"someone","name":"' + b"a" * (2 * MIB) + b'"}',
    ),
    Case(
        "register-lists",
        "/register",
        "[[],…] in 60 KiB (under the small limit)",
        lambda: b"[" + b"".join(filler(60 * 1024 - 4)) + b"[]]",
    ),
    Case(
        "submit-zeros-auth",
        "/submit",
        "(authenticated) [[0,0,…]] 4 MiB: what the accelerator builds",
        lambda: b"[[" + b"".join(filler(4 * MIB - 5, b"0,")) + b"0]]",
        authenticated=True,
    ),
]


def child(case: Case, body_file: Path, es_url: str, prefix: str) -> dict[str, object]:
    """Run in a child process: one warm-up request, then the measured one."""
    from flask.testing import FlaskClient

    import flock_gateway
    from flock_gateway.app import create_app
    from flock_gateway.config import Config

    config = Config(
        es_hosts=(es_url,),
        index_prefix=prefix,
        startup_check=False,
        enroll_secrets=(ENROLL_SECRET,),
        register_requires_secret=False,
    )
    app = create_app(config)
    client: FlaskClient = app.test_client()
    headers = {"Content-Type": "application/json"}
    if case.authenticated:
        name = "bench-" + uuid.uuid4().hex[:8]
        token = client.post("/register", json={"username": name}).get_json()["auth_token"]
        creds = base64.b64encode(f"{name}:{token}".encode()).decode()
        headers["Authorization"] = "Basic " + creds
    if case.gzip:
        headers["Content-Encoding"] = "gzip"
    client.post(case.path, data=b"{}", headers={"Content-Type": "application/json"})
    calls = _count_storage_requests()
    body = body_file.read_bytes()
    resident_kib = _reset_peak()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    answer = client.post(case.path, data=body, headers=headers)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    del body
    return {
        "code": str(Path(flock_gateway.__file__).parents[1]),
        "status": answer.status_code,
        "answer": answer.get_data(as_text=True)[:90],
        "wall": wall,
        "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "peak_mib": max(0, _status_kib("VmHWM") - resident_kib) / 1024,
        "es_requests": calls(),
    }


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> int:
    """Reset the process's peak resident memory (VmHWM) to what it holds now, and return
    that (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return _status_kib("VmRSS")


def _count_storage_requests() -> Callable[[], int]:
    """How many HTTP requests the Elasticsearch client sends from now on."""
    from elastic_transport import Urllib3HttpNode

    sent = [0]
    original = Urllib3HttpNode.perform_request

    def counted(self, *args, **kwargs):
        sent[0] += 1
        return original(self, *args, **kwargs)

    Urllib3HttpNode.perform_request = counted  # type: ignore[method-assign]
    return lambda: sent[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--case", action="append", choices=[c.name for c in CASES])
    ap.add_argument("--es-url", help="use this Elasticsearch instead of starting a test node")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--body", help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        case = next(c for c in CASES if c.name == args.child)
        print(json.dumps(child(case, Path(args.body), args.es_url, args.prefix)))
        return 0
    cases = [c for c in CASES if not args.case or c.name in args.case]
    if args.es_url:
        return run(cases, args.es_url)
    from flock_testinfra.esnode import node_url

    with node_url(prefix="flock-preauth-es-") as es_url:
        return run(cases, es_url)


def run(cases: list[Case], es_url: str) -> int:
    from elasticsearch import Elasticsearch

    from flock_gateway.indices import IndexNames
    from flock_gateway.storage.templates import setup_storage

    prefix = "preauth" + uuid.uuid4().hex[:8]
    setup_storage(Elasticsearch(es_url, request_timeout=60), IndexNames(prefix))
    rows = []
    with tempfile.TemporaryDirectory(prefix="flock-preauth-") as tmp:
        for case in cases:
            body_file = Path(tmp) / case.name
            body_file.write_bytes(case.body())
            size = body_file.stat().st_size
            done = subprocess.run(
                [sys.executable, __file__, "--child", case.name, "--body", str(body_file),
                 "--es-url", es_url, "--prefix", prefix],
                capture_output=True, text=True, env=os.environ, check=False,
            )  # fmt: skip
            body_file.unlink()
            if done.returncode != 0:
                print(f"{case.name}: child failed\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((case, size, result))
            print(f"  {case.name}: {result['status']} {result['wall']:.2f}s", file=sys.stderr)
    print(f"code: {rows[0][2]['code']}\n")
    print("| case | endpoint | body sent | answer | wall s | CPU s | peak +MiB | ES requests |")
    print("|---|---|---|---|---|---|---|---|")
    for case, size, r in rows:
        print(
            f"| {case.name}: {case.what} | `{case.path}` | {size / 1024:,.0f} KiB "
            f"| {r['status']} `{r['answer'].strip()}` | {r['wall']:.2f} | {r['cpu']:.2f} "
            f"| {r['peak_mib']:.0f} | {r['es_requests']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
