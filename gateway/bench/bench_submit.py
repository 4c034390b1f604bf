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
    (same template, ids of the same shape as the gateway's) straight to the node: each
    row's results document and its current-state document (``index`` with an external
    version, into an index made as the gateway's state index, ``<prefix>-state-direct``).
    ``--direct-ids`` adds direct sides with other id shapes, to show what the id shape
    costs Elasticsearch.

  * floor: on the /submit loads, the same requests posted to gunicorn and Flask alone
    (framework_floor.py: read and parse the body, answer JSON; no checks, no storage)
    under the role's gunicorn configuration: what serving a request costs before the
    gateway does any work of its own.

  * original: on the 200-row load, the same agents and bodies posted to a stand-in for
    the original Flock server's design (original_design.py: one search to authenticate,
    one index call per row) under gunicorn with the role's configuration, as the
    gateway (same worker class, workers and threads or connections).

  * proxy (``--proxy``): the gateway's requests through nginx in front of the same
    gunicorn, with the role's nginx.conf (plain HTTP, as the load generator speaks; no
    per-client cap, since every agent comes from 127.0.0.1): gateway CPU is then nginx's
    processes and gunicorn's together. nginx is Debian's package (``apt-get install
    nginx`` when it is missing).

Loads: /submit 200-row batches x 32 agents, /submit 5-row batches x 200 agents,
/osquery/log 1024-line gzip batches x 8 hosts. CPU per request is split into gateway
(gunicorn master + workers) and Elasticsearch (the node's process) from /proc over the
same window. Each load's side writes an index of its own (rows dated a day of their own)
that grows round by round; after each run the node is left to settle (merges, refreshes)
until idle, and that CPU is counted as the run's. The table gives the median of the
rounds and the spread (min-max).

    python gateway/bench/bench_submit.py [--rounds 3] [--seconds 20] [--quick] [--proxy]

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
import pwd
import shutil
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
from ansible.plugins.filter.core import to_bool
from elasticsearch import Elasticsearch
from flock_testinfra.esnode import node_url
from loadgen import ID_MARK, Conn, Outcome, Plan, proc_cpu
from profile_top import summarise

from flock_gateway.documents import DocumentBuilder, Tag, daily_index
from flock_gateway.fields import FLOCK_AGENT, OSQUERY
from flock_gateway.indices import IndexNames
from flock_gateway.state import StateLines
from flock_gateway.storage.templates import load_templates, setup_storage

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "gateway"
ENROLL_SECRET = "bench-enroll-secret-0123456789"  # noqa: S105 - throwaway test value
ORIGINAL_LOAD = "submit200"  # the load on which the original design is measured too
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


@dataclass(frozen=True)
class Shape:
    """Overrides of the role's worker settings (None: the role's default)."""

    worker_class: str | None = None
    workers: int | None = None
    threads: int | None = None
    connections: int | None = None


def role_values(port: int) -> tuple[jinja2.Environment, dict]:
    """A template environment with Ansible's ``bool`` filter, and the role's defaults (and
    its internal settings the templates read) for this machine, listening on 127.0.0.1:port."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    internal = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    # renders configuration files, not HTML; trim_blocks as Ansible's template module
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)  # noqa: S701
    env.filters["bool"] = to_bool  # Ansible's own, which the templates use
    facts = {"ansible_facts": {"processor_vcpus": os.cpu_count() or 1}}
    values = {k: v for k, v in defaults.items() if not isinstance(v, str) or "{{" not in v}
    for name in ("gateway_workers",):
        values[name] = env.from_string(defaults[name]).render(**facts, **values)
    values.update(
        {k: v for k, v in internal.items() if k.startswith("_gateway_nginx_")},
        ansible_managed="rendered by gateway/bench/bench_submit.py",
        inventory_hostname="bench",
        gateway_bind_address="127.0.0.1",
        gateway_port=port,
        _gateway_socket_path=internal["_gateway_socket_path"],
    )
    return env, values


def role_gunicorn_conf(
    port: int, logdir: Path, shape: Shape, socket_path: Path | None = None
) -> tuple[str, int, str]:
    """The role's gunicorn.conf.py rendered with its defaults for this machine (and
    ``shape``'s overrides), with bench settings appended (plain HTTP on 127.0.0.1, and on
    ``socket_path`` for nginx; gunicorn's own log to a file); its worker count, and its
    shape as in "gevent 5 x 128"."""
    env, values = role_values(port)
    for name, value in (("gateway_worker_class", shape.worker_class),
                        ("gateway_workers", shape.workers), ("gateway_threads", shape.threads),
                        ("gateway_worker_connections", shape.connections)):  # fmt: skip
        if value:
            values[name] = value
    text = env.from_string((ROLE / "templates" / "gunicorn.conf.py.j2").read_text()).render(
        **values
    )
    binds = [f"127.0.0.1:{port}"] + ([f"unix:{socket_path}"] if socket_path else [])
    text += (
        f"\n# bench overrides\nbind = {binds!r}\nworker_tmp_dir = None\n"
        f"errorlog = {str(logdir / 'error.log')!r}\n"
    )
    gevent = values["gateway_worker_class"] == "gevent"
    each = values["gateway_worker_connections" if gevent else "gateway_threads"]
    workers = int(values["gateway_workers"])
    return text, workers, f"{values['gateway_worker_class']} {workers} x {each}"


def role_nginx_conf(port: int, socket_path: Path, workdir: Path) -> str:
    """The role's nginx.conf for nginx on 127.0.0.1:port in front of gunicorn on
    ``socket_path``: plain HTTP, its files under ``workdir``, run as the bench's user."""
    env, values = role_values(port)
    values.update(_gateway_socket_path=str(socket_path), _gateway_nginx_tls=False,
                  _gateway_nginx_user=pwd.getpwuid(os.getuid()).pw_name)  # fmt: skip
    text = env.from_string((ROLE / "templates" / "nginx.conf.j2").read_text()).render(**values)
    # the load generator's agents all come from 127.0.0.1 on keep-alive connections of
    # their own: no per-client cap or registration rate, and no limit on a connection's
    # requests
    text = text.replace("    limit_conn flock_gateway_per_client", "    # limit_conn (bench)")
    text = text.replace("    limit_req zone=flock_gateway_register", "    # limit_req (bench)")
    text = text.replace("http {\n", "http {\n    keepalive_requests 100000000;\n", 1)
    for path, mine in (("/run/nginx.pid", "nginx.pid"), ("/var/lib/nginx", "lib"),
                       ("/var/log/nginx", "log")):  # fmt: skip
        text = text.replace(path, str(workdir / mine))
    if os.getuid() != 0:  # the user directive is for a root master only
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("user "))
    return text


def nginx_binary() -> str:
    """nginx from Debian's archive: installed with apt-get when missing."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found:
        return found
    print("nginx is missing: apt-get install nginx", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-q", "nginx"], check=True, env=env)
    return shutil.which("nginx", path="/usr/sbin:/usr/bin") or "/usr/sbin/nginx"


@contextlib.contextmanager
def nginx_proxy(socket_path: Path, logdir: Path) -> Iterator[tuple[int, list[int]]]:
    """nginx with the role's configuration in front of the gateway's gunicorn (already
    listening on ``socket_path``); yields its port and its master's and workers' pids."""
    port = free_port()
    workdir = logdir / "nginx"
    workdir.mkdir()
    for sub in ("lib", "log"):
        (workdir / sub).mkdir()
    conf = workdir / "nginx.conf"
    conf.write_text(role_nginx_conf(port, socket_path, workdir))
    binary = nginx_binary()
    # -e: nginx opens its error log before it reads the configuration
    args = ["-p", str(workdir), "-e", str(workdir / "log" / "error.log"), "-c", str(conf)]
    subprocess.run([binary, "-t", "-q", *args], check=True)
    cmd = [binary, *args, "-g", "daemon off;"]
    # nginx forks one worker per CPU (worker_processes auto)
    with serving(cmd, dict(os.environ), workdir / "nginx.out", port, os.cpu_count() or 1) as pids:
        yield port, pids


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
def serving(
    cmd: list[str], env: dict[str, str], log: Path, port: int, workers: int
) -> Iterator[list[int]]:
    """Run a gunicorn command until the block ends; yields its master's and workers' pids
    once /healthz answers and every worker has forked."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit(f"{cmd} exited with {proc.returncode}; see {log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        while len(children(proc.pid)) < workers:
            time.sleep(0.1)
        yield [proc.pid, *children(proc.pid)]
    finally:
        proc.terminate()
        proc.wait(30)


def gateway_env(es_url: str, prefix: str) -> dict[str, str]:
    """The gateway's configuration for a bench run (FLOCK_* environment variables)."""
    return {"FLOCK_ES_HOSTS": es_url, "FLOCK_INDEX_PREFIX": prefix, "FLOCK_LOG_LEVEL": "INFO",
            "FLOCK_ENROLL_SECRETS": ENROLL_SECRET,
            "FLOCK_REGISTER_REQUIRES_SECRET": "false"}  # fmt: skip


@contextlib.contextmanager
def gunicorn(
    es_url: str, prefix: str, logdir: Path, shape: Shape, socket_path: Path | None = None
) -> Iterator[tuple[int, list[int], int, str]]:
    port = free_port()
    conf_text, workers, label = role_gunicorn_conf(port, logdir, shape, socket_path)
    conf = logdir / "gunicorn.conf.py"
    conf.write_text(conf_text)
    env = {**os.environ, **gateway_env(es_url, prefix)}
    cmd = [sys.executable, "-m", "gunicorn", "--config", str(conf)]
    with serving(cmd, env, logdir / "gunicorn.out", port, workers) as pids:
        yield port, pids, workers, label


@contextlib.contextmanager
def beside(
    app: str, logdir: Path, workers: int, env: dict[str, str] | None = None
) -> Iterator[tuple[int, list[int]]]:
    """A bench app module (``framework_floor:create_app()``, ``original_design:...``) under
    gunicorn with the role's configuration as the gateway has it (its rendered
    gunicorn.conf.py, already in ``logdir``), on a port of its own."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--config", str(logdir / "gunicorn.conf.py"),
           "--bind", f"127.0.0.1:{port}", "--chdir", str(Path(__file__).parent), app]  # fmt: skip
    log = logdir / f"{app.partition(':')[0]}.out"
    with serving(cmd, {**os.environ, **(env or {})}, log, port, workers) as pids:
        yield port, pids


def rows_template(host: str, n: int, name: str) -> list[dict]:
    """n osquery result lines; every string carrying MARK becomes unique per request."""
    unix = TIME_MARK
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


# direct _bulk ids: the first is the gateway's shape (documents.py), the others are only
# for comparison (--direct-ids)
ID_SHAPES = {
    "hex": "the gateway's: 40 hex digits of a hash (here random)",
    "time-led": "base64url of the second of sending (4 bytes) and 16 random bytes",
    "numbered": "30 hex digits fixed per row position, then the request number",
}
GATEWAY_IDS = next(iter(ID_SHAPES))
# the rows' time in the templates, replaced by the second of sending in every request
# (less the run's days back, see Bench.run)
TIME_MARK = int(time.time()) - 60
DAY = 86_400
# After each run the benchmark refreshes the indices (the run's last rows become segments
# and merges are scheduled now, not whenever the node would) and waits until the node
# uses less than this share of a core for SETTLE_QUIET seconds in a row, for at most
# SETTLE_MAX seconds.
SETTLE_IDLE_CORES = 0.1
SETTLE_QUIET = 3
SETTLE_MAX = 120.0


def direct_parts(prefix: str, host: str, load: Load, ids: str, days_back: int) -> list[bytes]:
    """The NDJSON _bulk body the gateway would send for one request of this load, with
    ids of the given shape (ID_SHAPES), into the index of rows dated ``days_back``."""
    source = OSQUERY if load.osquery else FLOCK_AGENT
    rows = rows_template(host, load.rows, OSQUERY_QUERY if load.osquery else "apps")
    builder = DocumentBuilder(prefix, Tag(host, "", source), 90, received=datetime.now(tz=UTC))
    index = daily_index(prefix, "results", datetime.fromtimestamp(TIME_MARK - days_back * DAY, UTC))
    state = StateLines(builder, direct_state_index(prefix))
    lines = []
    for doc in builder.results(rows, state):
        # the gateway's id is a hash of the row; here the load generator makes each unique
        _id = doc.id[:30] + MARK if ids == "numbered" else ID_MARK.decode()
        action = {"create": {"_index": index, "_id": _id}}
        lines += [json.dumps(action), json.dumps(doc.source, ensure_ascii=False)]
    # each row's current-state document, as the gateway writes it (fresh ids: every row
    # of the load is new, so none is refused for its version)
    state_lines = state.bulk({})[0].decode().splitlines()
    for action_line, source_line in zip(state_lines[::2], state_lines[1::2], strict=True):
        action = json.loads(action_line)
        action["index"]["_id"] = (
            ID_MARK.decode() if ids != "numbered" else action["index"]["_id"][:30] + MARK
        )
        lines += [json.dumps(action), source_line]
    return parts("\n".join(lines) + "\n")


def direct_state_index(prefix: str) -> str:
    return f"{prefix}-state-direct"


def make_direct_state_index(es: Elasticsearch, prefix: str) -> None:
    """The direct side's state index: the gateway's state index's settings and mapping."""
    names = IndexNames(prefix)
    (tpl,) = [t for t in load_templates(names) if t.name == names.state]
    body = tpl.body["template"]
    es.indices.create(
        index=direct_state_index(prefix), settings=body["settings"], mappings=body["mappings"]
    )


class Bench:
    def __init__(
        self,
        es: Elasticsearch,
        es_url: str,
        prefix: str,
        port: int,
        *,
        original_port: int | None = None,
        floor_port: int | None = None,
        proxy_port: int | None = None,
        id_shapes: tuple[str, ...] = (),
        py_spy: str | None = None,
        logdir: Path | None = None,
    ) -> None:
        self.es = es
        self.py_spy = py_spy
        self.logdir = logdir
        self.es_port = int(es_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
        self.prefix = prefix
        self.port = port
        self.id_shapes = id_shapes  # direct sides beside the one with the gateway's shape
        # the sides not on the gateway's port
        self.ports = {"original": original_port, "floor": floor_port, "proxy": proxy_port}
        # (side, load key) -> (host, credential); side "gateway" or "original"
        self.agents: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.runs = 0
        # (load key, side) -> how many days back its rows are dated (see run)
        self.days_back: dict[tuple[str, str], int] = {}

    def bulk_stats(self) -> tuple[int, int]:
        """(documents indexed, shard-level bulk operations) on the node so far."""
        stats = self.es.nodes.stats(metric="indices", index_metric="indexing,bulk")
        node = next(iter(stats["nodes"].values()))["indices"]
        return node["indexing"]["index_total"], node["bulk"]["total_operations"]

    def request(self, path: str, body: dict, port: int | None = None) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=60)
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
        self.agents[("gateway", load.key)] = creds
        if self.ports["original"] and load.key == ORIGINAL_LOAD:
            originals = []
            for host, _ in creds:
                reply = self.request("/register", {"username": host}, self.ports["original"])
                basic = f"{host}:{reply['auth_token']}".encode()
                originals.append((host, base64.b64encode(basic).decode()))
            self.agents[("original", load.key)] = originals

    def gateway_conns(self, load: Load, side: str) -> list[Conn]:
        port = self.ports.get(side) or self.port
        conns = []
        # the floor is sent the gateway's requests (it reads no credentials); the proxy
        # passes them to the gateway
        for host, cred in self.agents[("original" if side == "original" else "gateway", load.key)]:
            if load.osquery:
                rows = rows_template(host, load.rows, OSQUERY_QUERY)
                body = json.dumps({"node_key": cred, "log_type": "result", "data": rows})
                headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
                path = "/osquery/log"
            else:
                body = json.dumps(rows_template(host, load.rows, "apps"))
                headers = {"Content-Type": "application/json", "Authorization": f"Basic {cred}"}
                path = "/submit"
            conns.append(Conn(http_head("POST", path, port, headers), parts(body), load.rows))
        return conns

    def direct_conns(self, load: Load, ids: str, days_back: int) -> list[Conn]:
        headers = {"Content-Type": "application/x-ndjson"}
        head = http_head("POST", "/_bulk", self.es_port, headers)
        return [
            Conn(
                head,
                direct_parts(self.prefix, host, load, ids, days_back),
                load.rows,
                "" if ids == "numbered" else ids,
            )
            for host, _ in self.agents[("gateway", load.key)]
        ]

    def sides(self, load: Load, round_: int) -> list[str]:
        """The sides measured for a load, their order alternating by round so that drift
        hits them alike."""
        sides = ["gateway", "direct", *(f"direct {ids}" for ids in self.id_shapes)]
        if self.ports["original"] and load.key == ORIGINAL_LOAD:
            sides.append("original")
        if self.ports["floor"] and not load.osquery:
            sides.append("floor")
        if self.ports["proxy"]:
            sides.append("proxy")
        return sides if round_ % 2 == 0 else sides[::-1]

    def run(
        self,
        load: Load,
        side: str,
        seconds: float,
        warmup: float,
        pids: dict[str, list[int]],
        *,
        profile: bool = True,
    ) -> Outcome:
        self.runs += 1
        direct = side.startswith("direct")
        # Each load's side writes an index of its own (its rows dated a day of their own,
        # within retention), which grows round by round as a day's index does; the merges
        # of its segments are then paid by its own runs. When all sides wrote one index,
        # each window held merges of the others' segments, and Elasticsearch's CPU per
        # row of one and the same direct load moved between 33 and 63 µs across runs.
        days_back = self.days_back.setdefault((load.key, side), 1 + len(self.days_back))
        # the original design's server, the floor and nginx with the gateway behind it
        # count as "gateway" in their runs
        pids = {"gateway": pids[side if side in ("original", "floor", "proxy") else "gateway"],
                "elasticsearch": pids["elasticsearch"]}  # fmt: skip
        plan = Plan(
            host="127.0.0.1",
            port=self.es_port if direct else self.ports.get(side, self.port),
            conns=(
                self.direct_conns(load, side.partition(" ")[2] or GATEWAY_IDS, days_back)
                if direct
                else self.gateway_conns(load, side)
            ),
            gzip=load.osquery and not direct,
            direct=direct,
            first_number=self.runs * 10**8,
            time_mark=b"%d" % TIME_MARK,
            time_offset=days_back * DAY,
            warmup=warmup,
            seconds=seconds,
            pids=pids,
        )
        spy = None
        if self.py_spy and profile and side == "gateway" and self.logdir:
            raw = self.logdir / f"profile-{load.key}-{self.runs}.txt"
            spy = subprocess.Popen(
                [self.py_spy, "record", "--pid", str(pids["gateway"][0]), "--subprocesses",
                 "--gil", "--nonblocking", "--rate", "50", "--format", "raw", "--output", str(raw),
                 "--duration", str(int(warmup + seconds))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        before = self.bulk_stats()
        with tempfile.TemporaryFile() as plan_file:
            plan_file.write(pickle.dumps(plan))
            plan_file.seek(0)
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("loadgen.py"))],
                stdin=plan_file,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        indexed = None
        if side == "original":
            # One original request (an index call per row, each waiting for its fsync)
            # can take longer than the window, so few complete inside it: its rate is the
            # node's count of indexed rows over the window instead.
            time.sleep(warmup)
            first, t0 = self.bulk_stats()[0], time.perf_counter()
            time.sleep(seconds)
            indexed = (self.bulk_stats()[0] - first, time.perf_counter() - t0)
        stdout, stderr = proc.communicate()
        if spy is not None:
            spy.wait(60)
            print(summarise(raw.read_text(), title=f"profile: {load.key} via the gateway"))
        if proc.returncode != 0:
            raise SystemExit(f"load generator failed:\n{stderr.decode()[-3000:]}")
        out = Outcome(**json.loads(stdout))
        if indexed is not None:
            out.rows, out.seconds = indexed
        after = self.bulk_stats()
        # rows per shard-level bulk on the node, over the run (warm-up included)
        out.rows_per_bulk = div(after[0] - before[0], after[1] - before[1])
        # what the run's writes still cost the node after the window (merges, refreshes)
        # is its own: counted, and kept out of the next run's window
        out.settle_seconds, settle_cpu = self.settle(pids["elasticsearch"])
        out.cpu["elasticsearch"] += settle_cpu
        if out.errors:
            print(f"  {out.errors} failed requests, first: {out.first_error}", flush=True)
        return out

    def settle(self, es_pids: list[int]) -> tuple[float, float]:
        """Wait until the node is idle; (seconds waited, the node's CPU seconds meanwhile).

        Starts once the load generator has ended, so the requests still in flight at the
        window's end (not counted in its rows) are mostly done; what follows is the work
        the run's writes left behind."""
        start = last_t = time.perf_counter()
        first = last = proc_cpu(es_pids)
        self.es.indices.refresh(index=f"{self.prefix}-*")
        now, quiet = start, 0
        while now - start < SETTLE_MAX and quiet < SETTLE_QUIET:
            time.sleep(1.0)
            now, cpu = time.perf_counter(), proc_cpu(es_pids)
            busy = (cpu - last) / (now - last_t)
            last, last_t = cpu, now
            quiet = quiet + 1 if busy < SETTLE_IDLE_CORES else 0
        return now - start, last - first


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def rows_per_s(runs: list[Outcome]) -> list[float]:
    return [div(o.rows, o.seconds) for o in runs]


def ms_per_request(runs: list[Outcome], process: str) -> list[float]:
    """CPU ms per request of ``process`` ("gateway" or "elasticsearch"), per run."""
    return [div(o.cpu[process] * 1000, o.requests) for o in runs]


def us_per_row(runs: list[Outcome], process: str) -> list[float]:
    """CPU µs per stored row of ``process`` ("gateway" or "elasticsearch"), per run."""
    return [div(o.cpu[process] * 1e6, o.rows) for o in runs]


def ratios(a: list[float], b: list[float]) -> list[float]:
    return [div(x, y) for x, y in zip(a, b, strict=True)]


def spread(values: list[float], fmt: str = ",.0f") -> str:
    mid = statistics.median(values)
    return f"{mid:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report(results: dict[tuple[str, str], list[Outcome]], loads: list[Load]) -> None:
    print()
    print("| load | gateway rows/s | direct `_bulk` rows/s | ratio "
          "| CPU ms per request, gateway / ES (via gateway) | ES CPU µs per row, via gateway "
          "/ direct | gateway CPU per row ÷ direct ES CPU per row | p99 ms, gateway / direct "
          "| load generator cores, gateway / direct "
          "| rows per shard bulk in ES, gateway / direct |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for load in loads:
        gw, dr = results[(load.key, "gateway")], results[(load.key, "direct")]
        gw_rate, dr_rate = rows_per_s(gw), rows_per_s(dr)
        ratio = ratios(gw_rate, dr_rate)
        gw_ms, es_ms = ms_per_request(gw, "gateway"), ms_per_request(gw, "elasticsearch")
        es_row_gw, es_row_dr = us_per_row(gw, "elasticsearch"), us_per_row(dr, "elasticsearch")
        cpu_ratio = ratios(us_per_row(gw, "gateway"), es_row_dr)
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
    shapes = sorted({side.partition(" ")[2] for _, side in results if side.startswith("direct ")})
    if shapes:
        print()
        print("| load | direct `_bulk` ids | rows/s | ES CPU µs per row |")
        print("|---|---|---|---|")
        for load in loads:
            for ids in [GATEWAY_IDS, *shapes]:
                runs = results[(load.key, "direct" if ids == GATEWAY_IDS else f"direct {ids}")]
                print(f"| {load.label} | {ID_SHAPES[ids]} | {spread(rows_per_s(runs))} "
                      f"| {spread(us_per_row(runs, 'elasticsearch'))} |")  # fmt: skip
    floors = [ld for ld in loads if (ld.key, "floor") in results]
    if floors:
        print()
        print("| load | CPU ms per request: gunicorn + Flask alone (floor) | the gateway "
              "| the gateway's own (gateway - floor) |")  # fmt: skip
        print("|---|---|---|---|")
        for load in floors:
            # the floor's server counts as "gateway" in its runs
            gw_ms, fl_ms = (ms_per_request(results[(load.key, side)], "gateway")
                            for side in ("gateway", "floor"))  # fmt: skip
            own = [g - f for g, f in zip(gw_ms, fl_ms, strict=True)]
            print(f"| {load.label} | {spread(fl_ms, '.2f')} | {spread(gw_ms, '.2f')} "
                  f"| {spread(own, '.2f')} |")  # fmt: skip
    proxied = [ld for ld in loads if (ld.key, "proxy") in results]
    if proxied:
        print()
        print("| load | rows/s, gateway / through nginx | p99 ms, gateway / through nginx "
              "| gateway CPU ms per request: gunicorn alone / nginx + gunicorn "
              "| what nginx adds, CPU ms per request |")  # fmt: skip
        print("|---|---|---|---|---|")
        for load in proxied:
            gw, px = results[(load.key, "gateway")], results[(load.key, "proxy")]
            gw_ms, px_ms = ms_per_request(gw, "gateway"), ms_per_request(px, "gateway")
            added = [p - g for p, g in zip(px_ms, gw_ms, strict=True)]
            p99_gw = statistics.median(pct(o.latencies_ms, 0.99) for o in gw)
            p99_px = statistics.median(pct(o.latencies_ms, 0.99) for o in px)
            print(f"| {load.label} | {spread(rows_per_s(gw))} / {spread(rows_per_s(px))} "
                  f"| {p99_gw:.0f} / {p99_px:.0f} "
                  f"| {spread(gw_ms, '.2f')} / {spread(px_ms, '.2f')} "
                  f"| {spread(added, '.2f')} |")  # fmt: skip
    originals = [ld for ld in loads if (ld.key, "original") in results]
    if not originals:
        return
    print()
    print("| load | gateway rows/s | original design rows/s (one search + one index call "
          "per row) | gateway ÷ original "
          "| CPU µs per row, original's server / ES |")  # fmt: skip
    print("|---|---|---|---|---|")
    for load in originals:
        gw, og = results[(load.key, "gateway")], results[(load.key, "original")]
        gw_rate, og_rate = rows_per_s(gw), rows_per_s(og)
        ratio = ratios(gw_rate, og_rate)
        # the original design's server counts as "gateway" in its runs
        og_us, es_us = us_per_row(og, "gateway"), us_per_row(og, "elasticsearch")
        print(
            f"| {load.label} | {spread(gw_rate)} | {spread(og_rate)} | {spread(ratio, '.1f')} "
            f"| {statistics.median(og_us):.0f} / {statistics.median(es_us):.0f} |"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--seconds", type=float, default=20, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each run")
    ap.add_argument(
        "--warm-pass",
        type=float,
        default=10,
        help="unmeasured seconds per side before the first round (default 10)",
    )
    ap.add_argument("--load", action="append", choices=[ld.key for ld in LOADS],
                    help="run only this load (repeatable; default: all three)")  # fmt: skip
    ap.add_argument("--worker-class", choices=["gevent", "gthread"],
                    help="instead of the role's default")  # fmt: skip
    ap.add_argument("--workers", type=int, help="instead of the role's default")
    ap.add_argument("--threads", type=int, help="gthread: instead of the role's default")
    ap.add_argument("--connections", type=int, help="gevent: instead of the role's default")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    ap.add_argument("--py-spy", metavar="PATH", help="profile every gateway run with py-spy")
    ap.add_argument("--direct-ids", action="append", default=[],
                    choices=[k for k in ID_SHAPES if k != GATEWAY_IDS],
                    help="also run direct _bulk with ids of this shape (repeatable)")  # fmt: skip
    ap.add_argument("--no-floor", action="store_true",
                    help="skip gunicorn + Flask alone (framework_floor.py)")  # fmt: skip
    ap.add_argument("--proxy", action="store_true",
                    help="also run each gateway load through the role's nginx")  # fmt: skip
    ap.add_argument("--no-original", action="store_true",
                    help="skip the original design's baseline on the 200-row load")  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup, args.warm_pass = 1, 2.0, 1.0, 1.0
    loads = [ld for ld in LOADS if not args.load or ld.key in args.load]

    prefix = "bench" + uuid.uuid4().hex[:8]
    with (
        node_url(heap="1g", prefix="flock-bench-es-") as es_url,
        tempfile.TemporaryDirectory(prefix="flock-bench-") as tmp,
    ):
        es = Elasticsearch(es_url, request_timeout=60)
        setup_storage(es, IndexNames(prefix))
        make_direct_state_index(es, prefix)
        es_pid = listener_pid(int(es_url.rsplit(":", 1)[1]))
        if es_pid is None:
            print("cannot find the Elasticsearch process: its CPU is not reported")
        try:
            with contextlib.ExitStack() as servers:
                wanted = Shape(args.worker_class, args.workers, args.threads, args.connections)
                socket_path = Path(tmp) / "gunicorn.sock" if args.proxy else None
                port, gw_pids, workers, shape = servers.enter_context(
                    gunicorn(es_url, prefix, Path(tmp), wanted, socket_path)
                )
                pids = {"gateway": gw_pids, "elasticsearch": [es_pid] if es_pid else []}
                proxy_port = None
                if socket_path:
                    proxy_port, nginx_pids = servers.enter_context(
                        nginx_proxy(socket_path, Path(tmp))
                    )
                    pids["proxy"] = nginx_pids + gw_pids
                original_port = None
                if not args.no_original and any(ld.key == ORIGINAL_LOAD for ld in loads):
                    env = {"ORIGINAL_ES_URL": es_url, "ORIGINAL_INDEX": f"{prefix}-original"}
                    original_port, pids["original"] = servers.enter_context(
                        beside("original_design:create_app()", Path(tmp), workers, env)
                    )
                floor_port = None
                if not args.no_floor and not all(ld.osquery for ld in loads):
                    floor_port, pids["floor"] = servers.enter_context(
                        beside("framework_floor:create_app()", Path(tmp), workers)
                    )
                bench = Bench(es, es_url, prefix, port, original_port=original_port,
                              floor_port=floor_port, proxy_port=proxy_port,
                              id_shapes=tuple(args.direct_ids), py_spy=args.py_spy,
                              logdir=Path(tmp))  # fmt: skip
                for load in loads:
                    bench.enroll(load)
                # One unmeasured pass first: a fresh node's first seconds of indexing (JIT,
                # new indices) ran at half the rate, which made the first round's first
                # side look twice as costly as the same side in later rounds.
                for load in loads if args.warm_pass else ():
                    for side in bench.sides(load, 0):
                        bench.run(load, side, args.warm_pass, 0, pids, profile=False)
                results: dict[tuple[str, str], list[Outcome]] = {}
                for r in range(args.rounds):
                    for load in loads:
                        for side in bench.sides(load, r):
                            out = bench.run(load, side, args.seconds, args.warmup, pids)
                            results.setdefault((load.key, side), []).append(out)
                            print(
                                f"round {r + 1}: {load.key:12s} {side:15s} "
                                f"{out.rows / out.seconds:8.0f} rows/s "
                                f"{out.requests / out.seconds:7.0f} req/s, CPU server "
                                f"{out.cpu['gateway']:.1f}s ES {out.cpu['elasticsearch']:.1f}s"
                                f" in {out.seconds:.1f}s (ES settled in "
                                f"{out.settle_seconds:.0f}s), load generator "
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
