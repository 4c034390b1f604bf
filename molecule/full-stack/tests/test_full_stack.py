"""End to end, after site.yml: a laptop registers and submits over HTTPS, the rows are in
Elasticsearch, and nothing can be read back through the gateway.

The "laptop" is curl in the Kibana container: it reaches the gateway across the
scenario's network by name and verifies the certificate against the CA the pki role
installed, as a laptop that pins the CA would. Elasticsearch is the real node built from
Maven Central jars; it has no x-pack security, so the check that the gateway's own
Elasticsearch credentials cannot read results back is skipped (visibly) here and runs only
against Elastic's packages.
"""

from __future__ import annotations

import json
import os
import shlex
import time
import tomllib
import uuid

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
GATEWAY = "full-stack-gw1"
GATEWAY_URL = f"https://{GATEWAY}:8443"
CA = "/etc/flock/pki/ca.crt"


def _host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


@pytest.fixture(scope="module")
def laptop():
    return _host("full-stack-kb1")


@pytest.fixture(scope="module")
def es():
    return _host("full-stack-es1")


def _curl(host, *args: str) -> tuple[int, dict]:
    """Runs curl on `host`; returns (HTTP status, JSON body)."""
    cmd = "curl -sS --cacert {} -w '\\n%{{http_code}}' {}".format(
        CA, " ".join(shlex.quote(a) for a in args)
    )
    out = host.check_output(cmd)
    body, _, status = out.rpartition("\n")
    return int(status), (json.loads(body) if body.strip() else {})


def _es_search(es, query: dict) -> dict:
    out = es.check_output(
        "curl -sS -H 'Content-Type: application/json' -d %s "
        "'http://127.0.0.1:9200/flock-results-*/_search'",
        json.dumps(query),
    )
    return json.loads(out)


@pytest.fixture(scope="module")
def registered(laptop):
    username = f"laptop-{uuid.uuid4().hex[:8]}"
    status, body = _curl(
        laptop,
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps({"username": username, "name": "Full-stack test laptop"}),
        f"{GATEWAY_URL}/register",
    )
    assert status == 200, body
    assert body["error"] is False
    return username, body["auth_token"]


def test_every_service_is_active():
    for name, unit in [
        ("full-stack-es1", "elasticsearch"),
        ("full-stack-kb1", "kibana"),
        ("full-stack-gw1", "flock-gateway"),
    ]:
        assert _host(name).service(unit).is_running, f"{unit} on {name}"


def test_gateway_refuses_an_unverified_peer(laptop):
    # Without the CA the laptop's TLS handshake must fail: the gateway serves our cert.
    result = laptop.run(f"curl -sS -o /dev/null {GATEWAY_URL}/healthz")
    assert result.rc == 60, result.stderr  # curl: peer certificate cannot be authenticated


def test_submitted_rows_land_in_elasticsearch_with_timestamp(laptop, es, registered):
    username, token = registered
    unix_time = int(time.time()) - 60
    rows = [
        {
            "name": "os_version",
            "hostIdentifier": username,
            "calendarTime": time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(unix_time)),
            "unixTime": unix_time,
            "epoch": 0,
            "counter": i,
            "numerics": False,
            "columns": {"name": "Debian GNU/Linux", "version": "12", "build": f"b{i}"},
            "action": "added",
        }
        for i in range(3)
    ]
    status, body = _curl(
        laptop,
        "-u",
        f"{username}:{token}",
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps(rows),
        f"{GATEWAY_URL}/submit",
    )
    assert status == 200, body
    assert body["error"] is False
    assert body["processed_count"] == 3

    query = {"query": {"term": {"flock.username": username}}, "size": 10}
    for _ in range(30):  # the refresh interval decides when rows become searchable
        hits = _es_search(es, query)["hits"]["hits"]
        if len(hits) == 3:
            break
        time.sleep(1)
    assert len(hits) == 3
    for hit in hits:
        doc = hit["_source"]
        assert doc["@timestamp"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(unix_time)))
        assert doc["data"]["hostIdentifier"] == username
        assert doc["flock"]["name"] == "Full-stack test laptop"
        assert hit["_index"] == time.strftime("flock-results-%Y.%m.%d", time.gmtime(unix_time))


def test_wrong_token_is_refused(laptop, registered):
    username, _ = registered
    status, body = _curl(laptop, "-u", f"{username}:not-the-token", f"{GATEWAY_URL}/ping")
    assert status == 401
    assert body["error"] is True


def test_nothing_can_be_read_back_through_the_gateway(laptop, registered):
    username, token = registered
    for path in ("/submit", "/flock-results-*/_search", "/agents", "/_search"):
        status, _ = _curl(laptop, "-u", f"{username}:{token}", f"{GATEWAY_URL}{path}")
        assert status in (404, 405), path


def test_dashboards_were_imported_into_kibana(laptop):
    status, body = _curl(laptop, "https://full-stack-kb1:5601/api/status")
    assert status == 200
    assert body["status"]["overall"]["level"] == "available"
    status, found = _curl(
        laptop, "https://full-stack-kb1:5601/api/saved_objects/_find?type=dashboard"
    )
    assert status == 200
    assert found["total"] >= 1


def test_gateway_credentials_cannot_read_results():
    """The gateway's own Elasticsearch user can write results but never read them back."""
    gw = _host(GATEWAY)
    settings = tomllib.loads(gw.file("/etc/flock/gateway.toml").content_string)["elasticsearch"]
    if not settings.get("username"):
        pytest.skip(
            "x-pack security is not available on the test node (built from Maven Central "
            "jars): the gateway has no Elasticsearch user here; this check runs only "
            "against Elastic's packages"
        )
    # A throw-away test deployment's password, so the command line is acceptable here.
    result = gw.run(
        "curl -sS -o /dev/null -w '%%{http_code}' --cacert %s -u %s %s",
        settings.get("ca_file", CA),
        "{}:{}".format(settings["username"], settings["password"]),
        settings["hosts"][0].rstrip("/") + "/flock-results-*/_search",
    )
    assert result.stdout.strip() == "403", result.stdout
