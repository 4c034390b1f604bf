"""Rows through the gateway and a cluster-health sampler, while the role restarts nodes.

Runs on the controller from the scenario's venv: installs the gateway's storage
(`flock-gateway setup-storage`), serves the gateway under gunicorn on 127.0.0.1 pointed at
every node of one cluster, registers an agent, then until --stop-file exists:

- a writer POSTs /submit batches of rows numbered 0, 1, 2, ... (a batch the gateway refuses
  with 429/503 or a failed connection is resent as is, as a real agent does: the gateway's
  ids make a resend land on the same documents); a row counts as acknowledged once its
  batch got 200;
- a sampler asks every node for /_cluster/health twice a second and keeps the status and
  node count of the first node that has a master (a node that is down or still joining
  cannot say).

Then writes --out (JSON): the agent, acknowledged rows, resends, health samples. The
scenario's tests compare that with what Elasticsearch stored.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

BATCH = 10


def http(method: str, url: str, body: object = None, headers: dict | None = None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    if not url.startswith("http://"):
        raise ValueError(f"not an http:// URL: {url}")
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(es_hosts: str, log: Path) -> tuple[subprocess.Popen, str]:
    # Every node holds data: the gateway's shard budget counts them.
    env = dict(
        os.environ,
        FLOCK_ES_HOSTS=es_hosts,
        FLOCK_DATA_NODES=str(len(es_hosts.split(","))),
        FLOCK_LOG_LEVEL="WARNING",
    )
    bindir = Path(sys.executable).parent
    subprocess.run([str(bindir / "flock-gateway"), "setup-storage"], env=env, check=True)
    port = free_port()
    proc = subprocess.Popen(
        [str(bindir / "gunicorn"), "--worker-class", "gthread", "--workers", "1",
         "--threads", "4", "--bind", f"127.0.0.1:{port}", "--timeout", "60",
         # Else every gunicorn of this user shares ~/.gunicorn/gunicorn.ctl (one per cluster here).
         "--no-control-socket", "flock_gateway.wsgi:app"],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if http("GET", url + "/readyz", timeout=2)[0] == 200:
                return proc, url
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited ({proc.returncode}); see {log}")
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"gateway not ready; see {log}")


def register(gw: str, agent: str) -> tuple[str, dict]:
    """A loaded build machine can make the first write (the registry) slow: retry a while,
    under a new name each time (a timed-out attempt may have registered its name)."""
    for attempt in range(10):
        name = agent if attempt == 0 else f"{agent}-{attempt}"
        try:
            status, body = http("POST", gw + "/register", {"username": name}, timeout=60)
        except OSError:
            status, body = None, None
        if status == 200:
            return name, body
        time.sleep(2)
    raise SystemExit(f"register failed: {status} {body}")


def writer(gw: str, user: str, token: str, stop: Path, out: dict) -> None:
    auth = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
    seq = 0
    while not stop.exists():
        rows = [
            {"host_uuid": user, "seq": n, "upgrade_check": True} for n in range(seq, seq + BATCH)
        ]
        while True:
            try:
                status, body = http("POST", gw + "/submit", rows, {"Authorization": auth}, 70)
            except OSError:
                status, body = None, None
            if status == 200 and body and body.get("processed_count") == BATCH:
                out["acknowledged"] += BATCH
                break
            if status not in (None, 429, 503):
                out["refused"].append(status)
                break
            out["resends"] += 1
            time.sleep(0.5)
        seq += BATCH
        time.sleep(0.1)
    out["sent"] = seq


def sampler(es_urls: list[str], stop: Path, samples: list) -> None:
    while not stop.exists():
        status, nodes = "unavailable", None
        for url in es_urls:
            try:
                # Generous: on a loaded build machine a healthy node can take seconds.
                code, body = http("GET", url + "/_cluster/health", timeout=10)
            except OSError:
                continue
            if code == 200:
                status, nodes = body["status"], body["number_of_nodes"]
                break
        samples.append([round(time.time(), 2), status, nodes])
        time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--es-hosts", required=True, help="comma-separated node URLs")
    ap.add_argument("--agent", required=True, help="username to register (unique per run)")
    ap.add_argument("--stop-file", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    es_urls = args.es_hosts.split(",")
    # Killed (a failed side_effect): still stop the gateway, in the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    gw_proc, gw = start_gateway(args.es_hosts, args.out.with_suffix(".gateway.log"))
    try:
        agent, body = register(gw, args.agent)
        args.out.with_suffix(".started").touch()
        out = {"agent": agent, "es_hosts": es_urls, "acknowledged": 0, "resends": 0,
               "refused": [], "started": time.time()}  # fmt: skip
        samples: list = []
        token = body["auth_token"]
        threads = [
            threading.Thread(
                target=writer, args=(gw, agent, token, args.stop_file, out), daemon=True
            ),
            threading.Thread(target=sampler, args=(es_urls, args.stop_file, samples), daemon=True),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out["stopped"] = time.time()
        out["health_samples"] = samples
    finally:
        gw_proc.terminate()
        gw_proc.wait(30)
    args.out.write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
