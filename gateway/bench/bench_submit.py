"""Benchmark: the gateway at saturation beside direct ``_bulk`` of the same documents.

Not a test. Starts the test Elasticsearch node (or uses $FLOCK_ES_URL), installs the
index templates under a throwaway prefix, and runs the gateway under gunicorn with the
gateway role's own gunicorn.conf.py template and defaults (worker count computed for
this machine; plain HTTP on 127.0.0.1 instead of TLS; logs to a file). Then, for each
load and each round (interleaved), a separate load-generator process (loadgen.py: one
selector loop, keep-alive sockets, request bytes joined from pre-encoded parts) keeps
every agent busy for --seconds and measures:

  * gateway: registered agents (or enrolled osquery hosts) posting to the gateway;
  * direct:  the same number of clients posting ``_bulk`` with the same documents
    (same index, same template, same id shape) straight to the node.

Loads: /submit 200-row batches x 32 agents, /submit 5-row batches x 200 agents,
/osquery/log 1024-line gzip batches x 8 hosts. CPU per request is split into gateway
(gunicorn master + workers) and Elasticsearch (the node's process) from /proc over the
same window. The table gives the median of the rounds and the spread (min-max).

    python gateway/bench/bench_submit.py [--rounds 3] [--seconds 20] [--quick]

With ``--py-spy PATH`` (py-spy is not a dependency: ``pip install py-spy``), every gateway
run is also sampled by py-spy (all workers, 50 Hz, without pausing them, only the thread
holding the GIL: Python on the CPU) and the run's top functions are printed: self time,
and time including callees per area of the request path, as shares of all samples.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import yaml
from elasticsearch import Elasticsearch
from flock_testinfra.esnode import node_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import Conn, Outcome, Plan
from profile_top import summarise

from flock_gateway.documents import DocumentBuilder, Tag
from flock_gateway.fields import FLOCK_AGENT, OSQUERY
from flock_gateway.storage.names import IndexNames
from flock_gateway.storage.templates import setup_storage

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "gateway"
ENROLL_SECRET = "bench-enroll-secret-0123456789"  # noqa: S105 - throwaway test value
OSQUERY_QUERY = "installed_applications"  # a query name from the reviewed schedule
MARK = "QQBATCHNOQQ"  # replaced by a 10-digit request number in every request


@dataclass(frozen=True)
class Load:
    key: str
    label: str
    rows: int
    agents: int
    osquery: bool


LOADS = (
    Load("submit200", "/submit, 200-row batches, 32 agents", 200, 32, False),
    Load("submit5", "/submit, 5-row batches, 200 agents", 5, 200, False),
    Load("osquery1024", "/osquery/log, 1024-line gzip, 8 hosts", 1024, 8, True),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def role_gunicorn_conf(
    port: int, logdir: Path, workers: int | None = None, threads: int | None = None
) -> tuple[str, int, int]:
    """The role's gunicorn.conf.py rendered with its defaults for this machine, with
    bench overrides appended (plain HTTP on 127.0.0.1, gunicorn's own log to a file)."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    # renders a Python config file, not HTML
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)  # noqa: S701
    facts = {"ansible_facts": {"processor_vcpus": os.cpu_count() or 1}}
    values = {k: v for k, v in defaults.items() if not isinstance(v, str) or "{{" not in v}
    for name in ("gateway_workers",):
        values[name] = env.from_string(defaults[name]).render(**facts, **values)
    values.update(
        ansible_managed="rendered by gateway/bench/bench_submit.py",
        inventory_hostname="bench",
        gateway_bind_address="127.0.0.1",
        gateway_port=port,
    )
    if workers:
        values["gateway_workers"] = workers
    if threads:
        values["gateway_threads"] = threads
    text = env.from_string((ROLE / "templates" / "gunicorn.conf.py.j2").read_text()).render(
        **values
    )
    text += (
        "\n# bench overrides\ncertfile = None\nkeyfile = None\nworker_tmp_dir = None\n"
        f"errorlog = {str(logdir / 'error.log')!r}\n"
    )
    return text, int(values["gateway_workers"]), int(values["gateway_threads"])


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                out.append(int(entry))
    return out


def listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:port (the Elasticsearch JVM), via /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{entry}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return int(entry)
    return None


@contextlib.contextmanager
def gunicorn(
    es_url: str, prefix: str, logdir: Path, workers: int | None, threads: int | None
) -> Iterator[tuple[int, list[int], str]]:
    port = free_port()
    conf_text, workers, threads = role_gunicorn_conf(port, logdir, workers, threads)
    conf = logdir / "gunicorn.conf.py"
    conf.write_text(conf_text)
    env = {**os.environ, "FLOCK_ES_HOSTS": es_url, "FLOCK_INDEX_PREFIX": prefix,
           "FLOCK_LOG_LEVEL": "INFO", "FLOCK_ENROLL_SECRETS": ENROLL_SECRET,
           "FLOCK_REGISTER_REQUIRES_SECRET": "false"}  # fmt: skip
    with open(logdir / "gunicorn.out", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(conf)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit(f"gunicorn exited with {proc.returncode}; see {logdir}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        while len(children(proc.pid)) < workers:
            time.sleep(0.1)
        yield port, [proc.pid, *children(proc.pid)], f"gthread {workers} x {threads}"
    finally:
        proc.terminate()
        proc.wait(30)


def rows_template(host: str, n: int, name: str) -> list[dict]:
    """n osquery result lines; every string carrying MARK becomes unique per request."""
    unix = int(time.time()) - 60
    cal = time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(unix))
    return [
        {
            "name": name,
            "hostIdentifier": host,
            "calendarTime": cal,
            "unixTime": unix,
            "epoch": 0,
            "counter": i,
            "numerics": False,
            "decorations": {"username": "bench", "batch": MARK},
            "columns": {
                "name": f"App {MARK}-{i}.app",
                "path": f"/Applications/App {MARK}-{i}.app",
                "bundle_identifier": f"com.example.app{MARK}.{i}",
                "bundle_short_version": f"1.{i}",
                "bundle_version": f"{i}.0",
                "last_opened_time": str(unix - i),
            },
            "action": "added",
        }
        for i in range(n)
    ]


def parts(text: str) -> list[bytes]:
    return [p.encode() for p in text.split(MARK)]


def http_head(method: str, path: str, port: int, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n").encode()


def direct_parts(prefix: str, host: str, load: Load) -> list[bytes]:
    """The NDJSON _bulk body the gateway would send for one request of this load."""
    source = OSQUERY if load.osquery else FLOCK_AGENT
    rows = rows_template(host, load.rows, OSQUERY_QUERY if load.osquery else "apps")
    builder = DocumentBuilder(prefix, Tag(host, "", source), 90, received=datetime.now(tz=UTC))
    lines = []
    for doc in builder.results(rows):
        # the gateway's id is a hash of the row; here the request number makes it unique
        action = {"create": {"_index": doc.index, "_id": doc.id[:30] + MARK}}
        lines += [json.dumps(action), json.dumps(doc.source, ensure_ascii=False)]
    return parts("\n".join(lines) + "\n")


class Bench:
    def __init__(
        self,
        es: Elasticsearch,
        es_url: str,
        prefix: str,
        port: int,
        *,
        py_spy: str | None = None,
        logdir: Path | None = None,
    ) -> None:
        self.es = es
        self.py_spy = py_spy
        self.logdir = logdir
        self.es_port = int(es_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
        self.prefix = prefix
        self.port = port
        self.agents: dict[str, list[tuple[str, str]]] = {}  # load key -> (host, auth header)
        self.runs = 0

    def bulk_stats(self) -> tuple[int, int]:
        """(documents indexed, shard-level bulk operations) on the node so far."""
        stats = self.es.nodes.stats(metric="indices", index_metric="indexing,bulk")
        node = next(iter(stats["nodes"].values()))["indices"]
        return node["indexing"]["index_total"], node["bulk"]["total_operations"]

    def request(self, path: str, body: dict) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Content-Type": "application/json"})  # fmt: skip
        res = conn.getresponse()
        data = json.loads(res.read())
        if res.status != 200:
            raise SystemExit(f"{path} answered {res.status}: {data}")
        return data

    def enroll(self, load: Load) -> None:
        creds = []
        for i in range(load.agents):
            host = f"bench-{load.key}-{i}-{uuid.uuid4().hex[:6]}"
            if load.osquery:
                key = self.request(
                    "/osquery/enroll", {"enroll_secret": ENROLL_SECRET, "host_identifier": host}
                )["node_key"]
                creds.append((host, key))
            else:
                token = self.request("/register", {"username": host})["auth_token"]
                creds.append((host, base64.b64encode(f"{host}:{token}".encode()).decode()))
        self.agents[load.key] = creds

    def gateway_conns(self, load: Load) -> list[Conn]:
        conns = []
        for host, cred in self.agents[load.key]:
            if load.osquery:
                rows = rows_template(host, load.rows, OSQUERY_QUERY)
                body = json.dumps({"node_key": cred, "log_type": "result", "data": rows})
                headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
                path = "/osquery/log"
            else:
                body = json.dumps(rows_template(host, load.rows, "apps"))
                headers = {"Content-Type": "application/json", "Authorization": f"Basic {cred}"}
                path = "/submit"
            conns.append(Conn(http_head("POST", path, self.port, headers), parts(body), load.rows))
        return conns

    def direct_conns(self, load: Load) -> list[Conn]:
        headers = {"Content-Type": "application/x-ndjson"}
        head = http_head("POST", "/_bulk", self.es_port, headers)
        return [
            Conn(head, direct_parts(self.prefix, host, load), load.rows)
            for host, _ in self.agents[load.key]
        ]

    def run(
        self, load: Load, direct: bool, seconds: float, warmup: float, pids: dict[str, list[int]]
    ) -> Outcome:
        self.runs += 1
        plan = Plan(
            host="127.0.0.1",
            port=self.es_port if direct else self.port,
            conns=self.direct_conns(load) if direct else self.gateway_conns(load),
            gzip=load.osquery and not direct,
            direct=direct,
            first_number=self.runs * 10**8,
            warmup=warmup,
            seconds=seconds,
            pids=pids,
        )
        spy = None
        if self.py_spy and not direct and self.logdir:
            raw = self.logdir / f"profile-{load.key}-{self.runs}.txt"
            spy = subprocess.Popen(
                [self.py_spy, "record", "--pid", str(pids["gateway"][0]), "--subprocesses",
                 "--gil", "--nonblocking", "--rate", "50", "--format", "raw", "--output", str(raw),
                 "--duration", str(int(warmup + seconds))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        before = self.bulk_stats()
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("loadgen.py"))],
            input=pickle.dumps(plan),
            capture_output=True,
            check=False,
        )
        if spy is not None:
            spy.wait(60)
            print(summarise(raw.read_text(), title=f"profile: {load.key} via the gateway"))
        if proc.returncode != 0:
            raise SystemExit(f"load generator failed:\n{proc.stderr.decode()[-3000:]}")
        out = Outcome(**json.loads(proc.stdout))
        after = self.bulk_stats()
        # rows per shard-level bulk on the node, over the run (warm-up included)
        out.rows_per_bulk = div(after[0] - before[0], after[1] - before[1])
        if out.errors:
            print(f"  {out.errors} failed requests, first: {out.first_error}", flush=True)
        return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def spread(values: list[float], fmt: str = ",.0f") -> str:
    mid = statistics.median(values)
    return f"{mid:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report(results: dict[tuple[str, bool], list[Outcome]], loads: list[Load]) -> None:
    print()
    print("| load | gateway rows/s | direct `_bulk` rows/s | ratio "
          "| CPU ms per request, gateway / ES (via gateway) | ES CPU µs per row, via gateway "
          "/ direct | gateway CPU per row ÷ direct ES CPU per row | p99 ms, gateway / direct "
          "| load generator cores, gateway / direct "
          "| rows per shard bulk in ES, gateway / direct |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for load in loads:
        gw, dr = results[(load.key, False)], results[(load.key, True)]
        gw_rate = [div(o.rows, o.seconds) for o in gw]
        dr_rate = [div(o.rows, o.seconds) for o in dr]
        ratio = [div(g, d) for g, d in zip(gw_rate, dr_rate, strict=True)]
        gw_ms = [div(o.cpu["gateway"] * 1000, o.requests) for o in gw]
        es_ms = [div(o.cpu["elasticsearch"] * 1000, o.requests) for o in gw]
        es_row_gw = [div(o.cpu["elasticsearch"] * 1e6, o.rows) for o in gw]
        es_row_dr = [div(o.cpu["elasticsearch"] * 1e6, o.rows) for o in dr]
        gw_row = [div(o.cpu["gateway"] * 1e6, o.rows) for o in gw]
        cpu_ratio = [div(g, d) for g, d in zip(gw_row, es_row_dr, strict=True)]
        p99_gw = [pct(o.latencies_ms, 0.99) for o in gw]
        p99_dr = [pct(o.latencies_ms, 0.99) for o in dr]
        lg = [o.loadgen_cpu / o.seconds for o in gw]
        lg_dr = [o.loadgen_cpu / o.seconds for o in dr]
        print(
            f"| {load.label} | {spread(gw_rate)} | {spread(dr_rate)} | {spread(ratio, '.2f')} "
            f"| {statistics.median(gw_ms):.2f} / {statistics.median(es_ms):.2f} "
            f"| {statistics.median(es_row_gw):.0f} / {statistics.median(es_row_dr):.0f} "
            f"| {spread(cpu_ratio, '.2f')} "
            f"| {statistics.median(p99_gw):.0f} / {statistics.median(p99_dr):.0f} "
            f"| {statistics.median(lg):.2f} / {statistics.median(lg_dr):.2f} "
            f"| {statistics.median(o.rows_per_bulk for o in gw):.0f} / "
            f"{statistics.median(o.rows_per_bulk for o in dr):.0f} |"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--seconds", type=float, default=20, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each run")
    ap.add_argument("--load", action="append", choices=[ld.key for ld in LOADS],
                    help="run only this load (repeatable; default: all three)")  # fmt: skip
    ap.add_argument("--workers", type=int, help="instead of the role's default")
    ap.add_argument("--threads", type=int, help="instead of the role's default")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    ap.add_argument("--py-spy", metavar="PATH", help="profile every gateway run with py-spy")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 2.0, 1.0
    loads = [ld for ld in LOADS if not args.load or ld.key in args.load]

    prefix = "bench" + uuid.uuid4().hex[:8]
    with (
        node_url(heap="1g", prefix="flock-bench-es-") as es_url,
        tempfile.TemporaryDirectory(prefix="flock-bench-") as tmp,
    ):
        es = Elasticsearch(es_url, request_timeout=60)
        setup_storage(es, IndexNames(prefix))
        es_pid = listener_pid(int(es_url.rsplit(":", 1)[1]))
        if es_pid is None:
            print("cannot find the Elasticsearch process: its CPU is not reported")
        try:
            with gunicorn(es_url, prefix, Path(tmp), args.workers, args.threads) as (
                port,
                gw_pids,
                shape,
            ):
                pids = {"gateway": gw_pids, "elasticsearch": [es_pid] if es_pid else []}
                bench = Bench(es, es_url, prefix, port, py_spy=args.py_spy, logdir=Path(tmp))
                for load in loads:
                    bench.enroll(load)
                results: dict[tuple[str, bool], list[Outcome]] = {}
                for r in range(args.rounds):
                    for load in loads:
                        # alternate which side goes first, so drift hits both alike
                        for direct in (False, True) if r % 2 == 0 else (True, False):
                            out = bench.run(load, direct, args.seconds, args.warmup, pids)
                            results.setdefault((load.key, direct), []).append(out)
                            side = "direct" if direct else "gateway"
                            print(
                                f"round {r + 1}: {load.key:12s} {side:8s} "
                                f"{out.rows / out.seconds:8.0f} rows/s "
                                f"{out.requests / out.seconds:7.0f} req/s, CPU gateway "
                                f"{out.cpu['gateway']:.1f}s ES {out.cpu['elasticsearch']:.1f}s"
                                f" in {out.seconds:.1f}s, load generator "
                                f"{out.loadgen_cpu / out.seconds:.2f} cores",
                                flush=True,
                            )
        finally:
            with contextlib.suppress(Exception):
                rows = es.cat.indices(index=f"{prefix}*", format="json", h="index")
                names = [r["index"] for r in rows]
                if names:
                    es.indices.delete(index=",".join(names))
                for t in es.indices.get_index_template(name=f"{prefix}*")["index_templates"]:
                    es.indices.delete_index_template(name=t["name"])

    print()
    bulk = {k: v for k, v in os.environ.items() if k.startswith("FLOCK_BULK_")}
    print(f"gunicorn {shape} on {os.cpu_count()} CPUs{f', {bulk}' if bulk else ''}, "
          f"{args.rounds} rounds of {args.seconds:g} s, median (min-max); "
          f"load average at the end {os.getloadavg()[0]:.2f}")  # fmt: skip
    report(results, loads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
