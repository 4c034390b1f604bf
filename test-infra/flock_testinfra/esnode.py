"""Run a throwaway single-node Elasticsearch (the Maven-built node of
test-infra/elasticsearch-node) for tests, the benchmark and ``make dev``.

    from flock_testinfra.esnode import start_node
    with start_node(tmp_path) as es:
        requests.get(es.url + "/_cluster/health")

CLI: ``python -m flock_testinfra.esnode [--port N] [--heap 512m] [--workdir DIR]`` prints
``ES_URL=http://127.0.0.1:<port>`` once the node is ready and runs until Ctrl-C/SIGTERM.

Env: FLOCK_ES_ARTIFACT (use this tarball instead of running build.sh), FLOCK_CACHE,
FLOCK_ES_START_TIMEOUT (seconds, default 180), JAVA_HOME (else java on PATH).
Stdlib only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The node recipe (build.sh) sits beside this package in test-infra/.
NODE_DIR = Path(__file__).resolve().parents[1] / "elasticsearch-node"


class NodeStartError(RuntimeError):
    pass


@dataclass
class Node:
    url: str
    port: int
    home: Path
    workdir: Path
    log: Path
    process: subprocess.Popen


def cache_dir() -> Path:
    base = os.environ.get("FLOCK_CACHE") or Path.home() / ".cache" / "flock"
    return Path(base) / "elasticsearch-node"


def artifact() -> Path:
    """FLOCK_ES_ARTIFACT if set, else build.sh's result (cached by build.sh itself)."""
    env = os.environ.get("FLOCK_ES_ARTIFACT")
    if env:
        return Path(env).resolve()
    out = subprocess.run(
        [str(NODE_DIR / "build.sh")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def unpacked_home(tarball: Path) -> Path:
    """Unpack once per artifact into the cache; nodes only read ES home (data/logs/config live
    in the workdir), so test runs share it."""
    name = tarball.name.removesuffix(".tar.gz")
    target = cache_dir() / "unpacked" / name
    if (target / ".complete").exists():
        return es_home_in(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
            # tar(1), not tarfile: the data filter rejects lib/platform's absolute libzstd link
            subprocess.run(["tar", "-xzf", str(tarball), "-C", str(tmp)], check=True)
            (tmp / ".complete").touch()
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
    return es_home_in(target)


def es_home_in(target: Path) -> Path:
    """The tarball's one top directory, elasticsearch-<version> (build.sh builds any version)."""
    homes = [p for p in target.glob("elasticsearch-*") if p.is_dir()]
    if len(homes) != 1:
        raise NodeStartError(f"expected one elasticsearch-<version>/ in {target}, found {homes}")
    return homes[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(workdir: Path, home: Path, port: int, heap: str) -> Path:
    conf = workdir / "config"
    (conf / "jvm.options.d").mkdir(parents=True, exist_ok=True)
    for d in ("data", "logs", "snapshots"):
        (workdir / d).mkdir(exist_ok=True)
    shutil.copy(home / "config" / "jvm.options", conf / "jvm.options")
    shutil.copy(home / "config" / "log4j2.properties", conf / "log4j2.properties")
    (conf / "jvm.options.d" / "heap.options").write_text(f"-Xms{heap}\n-Xmx{heap}\n")
    settings = {
        "cluster.name": "flock-test",
        "node.name": "flock-test-node",
        "path.data": str(workdir / "data"),
        "path.logs": str(workdir / "logs"),
        # shared-filesystem snapshot repositories may live below it (backup tests)
        "path.repo": str(workdir / "snapshots"),
        "network.host": "127.0.0.1",
        "http.port": port,
        "transport.port": free_port(),
        "discovery.type": "single-node",
        # test hosts often have little free disk; don't let the watermark make indices read-only
        "cluster.routing.allocation.disk.threshold_enabled": False,
    }
    # JSON is valid YAML and quotes paths safely
    (conf / "elasticsearch.yml").write_text(
        "".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items())
    )
    return conf


def command(home: Path) -> list[str]:
    cmd = [str(home / "bin" / "elasticsearch")]
    if os.geteuid() == 0:
        # ES refuses to run as root. A user namespace where we appear as uid 1000 passes that
        # check while files stay owned by (and readable for) the real user, even under 0700
        # parents like /root or pytest's tmp dirs. Inside the role's containers the real
        # service user is used instead.
        cmd = ["unshare", "--user", "--map-user=1000", "--map-group=1000", *cmd]
    return cmd


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NodeStartError(
                f"Elasticsearch exited with code {proc.returncode} during startup;"
                f" log tail:\n{tail(log)}"
            )
        try:
            with urllib.request.urlopen(  # noqa: S310 - url is http://127.0.0.1:<port>
                f"{url}/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=5
            ) as resp:
                if json.load(resp).get("status") in ("yellow", "green"):
                    return
        except (urllib.error.URLError, OSError, ValueError) as e:
            last_error = str(e)
        time.sleep(0.5)
    raise NodeStartError(
        f"Elasticsearch not ready at {url} after {timeout:.0f}s ({last_error});"
        f" log tail:\n{tail(log)}"
    )


def stop(proc: subprocess.Popen, grace: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # ES's shutdown hook closes the node cleanly
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def start_node(workdir: Path, port: int | None = None, heap: str = "512m") -> Iterator[Node]:
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    home = unpacked_home(artifact())
    port = port or free_port()
    conf = write_config(workdir, home, port, heap)
    log = workdir / "logs" / "console.log"
    env = dict(os.environ, ES_PATH_CONF=str(conf))
    env.pop("ES_JAVA_OPTS", None)  # heap comes from the heap argument
    url = f"http://127.0.0.1:{port}"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command(home),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal goes to us, and we stop the node
        )
    try:
        wait_ready(url, proc, log, float(os.environ.get("FLOCK_ES_START_TIMEOUT", "180")))
        yield Node(url=url, port=port, home=home, workdir=workdir, log=log, process=proc)
    finally:
        stop(proc)


@contextlib.contextmanager
def node_url(heap: str = "512m", prefix: str = "flock-es-") -> Iterator[str]:
    """$FLOCK_ES_URL when set (a node already running), else a node in a temporary dir."""
    url = os.environ.get("FLOCK_ES_URL")
    if url:
        yield url.rstrip("/")
        return
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        start_node(Path(tmp), heap=heap) as node,
    ):
        yield node.url.rstrip("/")


def main() -> int:
    parser = argparse.ArgumentParser(description="Run a test Elasticsearch node in the foreground.")
    parser.add_argument("--port", type=int, help="HTTP port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--heap", default="512m")
    parser.add_argument("--workdir", type=Path, help="default: a temp dir, removed at exit")
    args = parser.parse_args()

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="flock-es-"))
        )
        try:
            node = stack.enter_context(start_node(workdir, port=args.port, heap=args.heap))
            print(f"ES_URL={node.url}", flush=True)
            node.process.wait()
            print(
                f"Elasticsearch exited with code {node.process.returncode};"
                f" log tail:\n{tail(node.log)}",
                file=sys.stderr,
            )
            return 1
        except KeyboardInterrupt:
            return 0
        except NodeStartError as e:
            print(e, file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
