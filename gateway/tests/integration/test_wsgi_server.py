"""The gateway under gunicorn with the worker class the role deploys (gevent), driven by
the README's curl examples, and by concurrent agents whose rows share bulk requests."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import basic, osquery_line, register, stored


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn_cmd(port: int, workers: int = 2) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"127.0.0.1:{port}",
        "--worker-class", "gevent", "--workers", str(workers), "--worker-connections", "64",
        "--timeout", "60",
        "flock_gateway.wsgi:app",
    ]  # fmt: skip


def wait_for(port: int, proc: subprocess.Popen, log: Path, attempts: int = 300) -> None:
    for _ in range(attempts):
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited ({proc.returncode}):\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"gunicorn did not answer:\n{log.read_text()}")


@contextlib.contextmanager
def serving(env: dict[str, str], log: Path, workers: int = 2) -> Iterator[int]:
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            gunicorn_cmd(port, workers),
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(port, proc, log)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def server(env, storage, tmp_path):
    log = tmp_path / "gunicorn.log"
    with serving(env, log) as port:
        yield port, log


def curl(*args: str) -> tuple[int, dict]:
    out = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_examples(server, es, prefix):
    port, log = server
    base = f"http://127.0.0.1:{port}"
    # README: register
    status, body = curl("-v", "--data", "username=insert_endpoint_uuid_here", f"{base}/register")
    assert status == 200
    assert body["error"] is False
    token = body["auth_token"]
    assert len(token) == 32

    # README: submit, verbatim apart from the token (the README's is an example value)
    readme_header = "Authorization: Basic aW5zZXJ0X2VuZHBvaW50X3V1aWRfaGVyZTozYjBiZTUxMDVhZDRmZDg5ZWZjM2YyNDIwZjYwNzRmMw=="  # noqa: E501
    data = '{"host_uuid": "insert_endpoint_uuid_here", "other_arbitrary_data": "goes here"}'
    args = ["-v", "-H", "Content-Type: application/json", "--data", data, f"{base}/submit"]
    status, body = curl("-H", readme_header, *args)
    assert status == 401
    assert body["error"] is True

    creds = base64.b64encode(f"insert_endpoint_uuid_here:{token}".encode()).decode()
    status, body = curl("-H", f"Authorization: Basic {creds}", *args)
    assert status == 200
    assert body == {
        "processed_count": 1,
        "stored_count": 1,
        "quarantined_count": 0,
        "expired_count": 0,
        "error": False,
    }

    (hit,) = stored(es, prefix)
    assert hit["_source"]["data"]["other_arbitrary_data"] == "goes here"

    # structured logs, and never a token or an Authorization value in them
    status, _ = curl(f"{base}/readyz")
    assert status == 200
    text = log.read_text()
    assert token not in text
    assert creds not in text
    assert "aW5zZXJ0X2VuZHBvaW50" not in text
    access = [json.loads(line) for line in text.splitlines() if '"flock_gateway.access"' in line]
    assert {(e["path"], e["status"]) for e in access} >= {
        ("/register", 200),
        ("/submit", 401),
        ("/submit", 200),
    }


def test_chunked_body_over_limit_is_413(server, client):
    """A body sent without Content-Length (chunked) is cut off at the limit too."""
    port, _ = server
    from .helpers import register

    token = register(client, "host-1")
    creds = base64.b64encode(f"host-1:{token}".encode()).decode()
    piece = b'{"hostIdentifier": "host-1", "x": "' + b"y" * 65536 + b'"},'
    head = (
        "POST /submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Basic {creds}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head)
        try:
            for data in [b"[", *([piece] * 400)]:  # ~26 MiB, over the 20 MiB default
                sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything
        reply = b""
        try:
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        except ConnectionResetError:
            pass
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.split()[1] == b"413", reply[:500]
    body = rest.partition(b"\r\n\r\n")[2]
    assert json.loads(body)["error"] is True


def test_gunicorn_serves_503_while_elasticsearch_is_down(tmp_path, node_port, storage, prefix):
    """Workers (re)started while the node is down serve 503, not a halted server; the
    same workers serve rows once it is back."""
    env = {
        "FLOCK_ES_HOSTS": node_port.url,
        "FLOCK_ES_MAX_RETRIES": "0",
        "FLOCK_INDEX_PREFIX": prefix,
        "FLOCK_READINESS_INTERVAL": "0.2",
    }
    with serving(env, tmp_path / "gunicorn.log") as port:
        base = f"http://127.0.0.1:{port}"
        for path, data in (("/readyz", None), ("/register", "username=host-1")):
            args = [f"{base}{path}"] + (["--data", data] if data else [])
            status, body = curl(*args)
            assert status == 503, (path, body)
            assert body == {"error": True, "error_msg": "Storage is unavailable, try again later"}
        head = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-D", "-", f"{base}/readyz"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert "retry-after: 10" in head.lower()

        node_port.open()
        for _ in range(100):
            status, _ = curl(f"{base}/readyz")
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
        status, body = curl("--data", "username=host-1", f"{base}/register")
        assert status == 200, body


def _raw(port: int, request: bytes) -> tuple[int, str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    ctype = next(
        (h.split(":", 1)[1].strip() for h in lines if h.lower().startswith("content-type")), ""
    )
    return int(lines[0].split()[1]), ctype, body


SERVER_ERRORS = [
    # headers over gunicorn's limits or unparsable: answered by gunicorn itself
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (
        b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(200)) + b"\r\n",
        431,
    ),
    (b"NOT A REQUEST\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    # unexpected methods: answered by the app
    (b"PUT /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
    (b"DELETE /register HTTP/1.1\r\nHost: x\r\n\r\n", 405),
]


def test_every_error_is_json_even_the_servers_own(server):
    port, _ = server
    for request_bytes, status in SERVER_ERRORS:
        got, ctype, body = _raw(port, request_bytes)
        assert got == status, (request_bytes[:40], body[:200])
        assert ctype == "application/json", request_bytes[:40]
        answer = json.loads(body)
        assert answer["error"] is True
        assert answer["error_msg"]


def test_concurrent_agents_share_bulks_and_get_their_own_answers(
    env, storage, client, es, prefix, tmp_path
):
    """40 agents post 5 rows each at once to one worker: every one gets its own 200 and
    count, every row is stored once, and the worker sent them in fewer bulks than
    requests (its /metrics says how many)."""
    agents = [f"agent-{i}" for i in range(40)]
    headers = {name: basic(name, register(client, name)) for name in agents}
    barrier = threading.Barrier(len(agents))
    answers: dict[str, tuple[int, dict]] = {}

    def post(port: int, name: str) -> None:
        rows = [osquery_line(name, counter=i) for i in range(5)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        barrier.wait()
        conn.request("POST", "/submit", body=json.dumps(rows), headers={
            "Content-Type": "application/json", **headers[name]})  # fmt: skip
        res = conn.getresponse()
        answers[name] = res.status, json.loads(res.read())

    with serving(env, tmp_path / "gunicorn.log", workers=1) as port:
        threads = [threading.Thread(target=post, args=(port, name)) for name in agents]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read().decode()
    answer = {
        "processed_count": 5,
        "stored_count": 5,
        "quarantined_count": 0,
        "expired_count": 0,
        "error": False,
    }
    assert answers == dict.fromkeys(agents, (200, answer))
    assert len(stored(es, prefix)) == 200
    counts = {line.split("{")[0]: int(line.rsplit(" ", 1)[1])
              for line in metrics.splitlines() if line.startswith("flock_bulk")}  # fmt: skip
    # documents: each row, its current-state document, and each host's host document
    assert counts["flock_bulk_rows_total"] == 200 + 200 + len(agents)
    assert counts["flock_bulks_total"] < len(agents)
