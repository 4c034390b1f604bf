"""The Kibana stand-in (test-infra/kibana-standin) behaves like Kibana where the role
touches it, and the Flock dashboards import through it cleanly.

The stand-in is NOT Kibana; these tests pin the contract it shares with Kibana 8
(status shape, import API, rejections) so the kibana role's offline scenario tests
something meaningful. Runs the stand-in as a subprocess on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
STANDIN = ROOT / "test-infra/kibana-standin/kibana_standin.py"
NDJSON = ROOT / "dashboards/flock-dashboards.ndjson"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path, port, **extra):
    conf = {
        "server.host": "127.0.0.1",
        "server.port": port,
        "server.publicBaseUrl": f"http://127.0.0.1:{port}",
        "path.data": str(tmp_path / "data"),
        "elasticsearch.hosts": ["https://es1.invalid:9200"],
        "xpack.encryptedSavedObjects.encryptionKey": "k" * 32,
    }
    conf.update(extra)
    path = tmp_path / "kibana.yml"
    path.write_text(json.dumps(conf), encoding="utf-8")  # JSON is YAML
    return path


def start(config, scheme="http", context=None):
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--allow-root", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    port = json.loads(config.read_text(encoding="utf-8"))["server.port"]
    url = f"{scheme}://127.0.0.1:{port}"
    for _ in range(100):
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())
        try:
            urllib.request.urlopen(f"{url}/api/status", context=context, timeout=2)  # noqa: S310
            return proc, url
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("stand-in did not start")


@pytest.fixture
def standin(tmp_path):
    proc, url = start(write_config(tmp_path, free_port()))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def request(url, method="GET", body=None, headers=None, context=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def multipart(data, filename="flock-dashboards.ndjson"):
    boundary = uuid.uuid4().hex
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/ndjson\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def do_import(url, data, xsrf=True, filename="flock-dashboards.ndjson", overwrite=True):
    body, headers = multipart(data, filename)
    if xsrf:
        headers["kbn-xsrf"] = "true"
    query = "?overwrite=true" if overwrite else ""
    return request(f"{url}/api/saved_objects/_import{query}", "POST", body, headers)


def test_status_is_kibana8_shape(standin):
    status, body = request(f"{standin}/api/status")
    assert status == 200
    assert body["status"]["overall"]["level"] == "available"
    assert body["version"]["number"]


def test_flock_dashboards_import_cleanly_and_are_counted(standin):
    data = NDJSON.read_bytes()
    lines = [line for line in data.splitlines() if line.strip()]
    status, body = do_import(standin, data)
    assert status == 200, body
    assert body["success"] is True, body.get("errors")
    assert body["successCount"] == len(lines)
    assert "errors" not in body
    status, found = request(f"{standin}/api/saved_objects/_find?type=dashboard&per_page=100")
    assert {o["attributes"]["title"] for o in found["saved_objects"]} == {
        "Flock",
        "Flock - Linux",
        "Flock - Fleet overview",
    }
    status, again = do_import(standin, data)
    assert again["success"] and all(r.get("overwrite") for r in again["successResults"])
    _, stats = request(f"{standin}/__standin__/imports")
    assert stats["import_requests"] == 2


def test_import_requires_kbn_xsrf(standin):
    status, body = do_import(standin, NDJSON.read_bytes(), xsrf=False)
    assert status == 400
    assert body == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": "Request must contain a kbn-xsrf header.",
    }
    _, stats = request(f"{standin}/__standin__/imports")
    assert stats["import_requests"] == 0


def test_import_rejects_malformed_ndjson_and_extension(standin):
    status, body = do_import(standin, b'{"type": "lens", "id": "x"}\n{not json\n')
    assert status == 400
    assert set(body) == {"statusCode", "error", "message"}
    status, body = do_import(standin, NDJSON.read_bytes(), filename="dashboards.json")
    assert status == 400 and body["message"] == "Invalid file extension .json"


def test_import_reports_missing_references_and_conflicts(standin):
    lens = {
        "type": "lens",
        "id": "l1",
        "attributes": {"title": "t"},
        "references": [
            {"type": "index-pattern", "id": "nope", "name": "indexpattern-datasource-layer-a"}
        ],
    }
    status, body = do_import(standin, json.dumps(lens).encode())
    assert status == 200 and body["success"] is False
    assert body["errors"][0]["error"]["type"] == "missing_references"
    view = {"type": "index-pattern", "id": "v", "attributes": {"title": "x-*"}, "references": []}
    assert do_import(standin, json.dumps(view).encode(), overwrite=False)[1]["success"]
    status, body = do_import(standin, json.dumps(view).encode(), overwrite=False)
    assert body["errors"][0]["error"]["type"] == "conflict"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"elasticsearch.username": "elastic", "elasticsearch.password": "x"}, "forbidden"),
        ({"server.publicBaseUrl": "https://kibana.example/"}, "publicBaseUrl"),
        ({"xpack.security.encryptionKey": "short"}, "must be >= 32"),
        ({"elasticsearch.ssl.certificateAuthorities": ["/nonexistent/ca.crt"]}, "cannot read"),
        ({"server.ssl.enabled": True, "server.ssl.certificate": "/nonexistent"}, "server.ssl"),
        (
            {
                "elasticsearch.username": "kibana_system",
                "elasticsearch.password": "x",
                "elasticsearch.serviceAccountToken": "t",
            },
            "serviceAccountToken",
        ),
    ],
)
def test_invalid_config_is_fatal_like_kibana(tmp_path, extra, message):
    config = write_config(tmp_path, free_port(), **extra)
    result = subprocess.run(
        [sys.executable, str(STANDIN), "--allow-root", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_refuses_root_without_allow_root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only meaningful as root")
    config = write_config(tmp_path, free_port())
    result = subprocess.run(
        [sys.executable, str(STANDIN), "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1 and "should not be run as root" in result.stderr


def test_serves_tls_with_configured_certificate(tmp_path):
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("openssl CLI not installed")
    key, cert = tmp_path / "k.key", tmp_path / "k.crt"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=kibana-standin-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    config = write_config(
        tmp_path,
        port,
        **{
            "server.ssl.enabled": True,
            "server.ssl.certificate": str(cert),
            "server.ssl.key": str(key),
        },
    )
    context = ssl.create_default_context(cafile=str(cert))
    proc, url = start(config, "https", context)
    try:
        status, body = request(f"{url}/api/status", context=context)
        assert status == 200 and body["status"]["overall"]["level"] == "available"
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert dict(x[0] for x in tls.getpeercert()["subject"])["commonName"] == (
                "kibana-standin-test"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


VIEWER_ROLE = {
    "elasticsearch": {"cluster": [], "indices": []},
    "kibana": [
        {
            "base": [],
            "feature": {"dashboard": ["read"], "discover": ["read"], "visualize": ["read"]},
            "spaces": ["*"],
        }
    ],
}
AUTH = {"Authorization": "Basic ZWxhc3RpYzpzZWNyZXQ=", "kbn-xsrf": "true"}


def put_role(url, name, role, headers=AUTH):
    req = urllib.request.Request(  # noqa: S310
        f"{url}/api/security/role/{name}",
        data=json.dumps(role).encode(),
        method="PUT",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_role_api_accepts_feature_privileges_and_records_them(standin):
    status, body = put_role(standin, "flock_dashboards", VIEWER_ROLE)
    assert (status, body) == (204, b"")
    status, role = request(f"{standin}/api/security/role/flock_dashboards")
    assert status == 200
    assert role["name"] == "flock_dashboards"
    assert role["kibana"] == VIEWER_ROLE["kibana"]
    assert role["elasticsearch"]["indices"] == []
    assert request(f"{standin}/__standin__/roles")[1]["role_writes"] == 1
    assert request(f"{standin}/api/security/role/nobody")[0] == 404


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"kibana": [{"base": [], "feature": {"dashboards": ["read"]}, "spaces": ["*"]}]},
            "Feature [dashboards] does not exist",
        ),
        (
            {"kibana": [{"base": [], "feature": {"discover": ["write"]}, "spaces": ["*"]}]},
            "does not support privilege [write]",
        ),
        (
            {"kibana": [{"base": ["read"], "feature": {"discover": ["read"]}, "spaces": ["*"]}]},
            "Cannot specify both base and feature privileges",
        ),
        ({"kibana": [{"base": ["read"], "spaces": ["*", "default"]}]}, "cannot be combined"),
        ({"elasticsearch": None}, "[request body.elasticsearch]"),
        ({"applications": []}, "[request body.applications]: definition for this key is missing"),
    ],
)
def test_role_api_rejects_what_kibana_rejects(standin, change, message):
    status, body = put_role(standin, "bad", {**VIEWER_ROLE, **change})
    assert status == 400
    assert message in body["message"]
    assert request(f"{standin}/api/security/role/bad")[0] == 404


def test_role_api_needs_xsrf_and_credentials(standin):
    status, body = put_role(standin, "r", VIEWER_ROLE, headers={"kbn-xsrf": "true"})
    assert status == 401
    status, body = put_role(
        standin, "r", VIEWER_ROLE, headers={"Authorization": AUTH["Authorization"]}
    )
    assert status == 400 and "kbn-xsrf" in body["message"]
    assert request(f"{standin}/__standin__/roles")[1]["role_writes"] == 0


KEYSTORE_TOOL = ROOT / "test-infra/kibana-standin/kibana_keystore_standin.py"


def keystore(*args, stdin=None):
    return subprocess.run(
        [sys.executable, str(KEYSTORE_TOOL), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_keystore_settings_are_read_at_start_up(tmp_path, monkeypatch):
    """The kibana-keystore stand-in's commands as the role uses them, and the stand-in
    taking elasticsearch.password from the keystore (never printing it)."""
    monkeypatch.setenv("KBN_PATH_CONF", str(tmp_path))
    assert "not found" in keystore("list").stderr
    assert keystore("create").returncode == 0
    assert keystore("create").returncode == 1  # an existing keystore is not replaced
    secret = "password-from-the-keystore"  # noqa: S105 - a test value
    assert keystore("add", "elasticsearch.password", "--stdin", stdin=secret).returncode == 0
    assert keystore("add", "elasticsearch.password", "--stdin", stdin="x").returncode == 1
    forced = keystore("add", "--force", "--stdin", "elasticsearch.password", stdin=secret)
    assert forced.returncode == 0
    assert keystore("list").stdout.split() == ["elasticsearch.password"]

    config = write_config(tmp_path, free_port(), **{"elasticsearch.username": "kibana_system"})
    proc, url = start(config)
    status, body = request(f"{url}/api/status")
    proc.terminate()
    proc.wait(timeout=10)
    log = proc.stdout.read().decode()
    assert status == 200, body
    assert '"keystore_settings": ["elasticsearch.password"]' in log
    assert secret not in log

    assert keystore("remove", "elasticsearch.password").returncode == 0
    result = subprocess.run(
        [sys.executable, str(STANDIN), "--allow-root", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "[elasticsearch.password]: required" in result.stderr
