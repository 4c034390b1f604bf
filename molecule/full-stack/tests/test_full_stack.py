"""End to end, after site.yml: a laptop registers and submits over HTTPS, the rows are in
Elasticsearch under the site's index prefix, and nothing can be read back through the gateway.

The scenario deploys with a prefix that is not the default (molecule/full-stack/
inventory/hosts.yml, read here through Ansible's own view of the inventory): the gateway's
indices, the Elasticsearch privileges and the dashboards' data view must all follow it.

The "laptop" is curl in the Kibana container: it reaches the gateway across the
scenario's network by name and verifies the certificate against the CA the pki role
installed, as a laptop that pins the CA would. Elasticsearch is the real node built from
Maven Central jars with Elastic's x-pack security: every Elasticsearch call here is HTTPS
with a user the elasticsearch role created, whose password the controller keeps; each
user does what it may and is refused what it may not.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
GATEWAY = "full-stack-gw1"
GATEWAY_URL = f"https://{GATEWAY}:8443"
KIBANA_URL = "https://full-stack-kb1:5601"
CA = "/etc/flock/pki/ca.crt"
DEFAULT_PREFIX = "flock"
ES_URL = "https://full-stack-es1:9200"
# The flock role's flock_elasticsearch_credentials_dir for cluster "flock".
CREDENTIALS = Path(INVENTORY).parent / ".credentials/elasticsearch/flock"
# As the README tells the operator to run the admin commands.
GATEWAY_CLI = (
    "sudo -u flock-gateway FLOCK_CONFIG=/etc/flock/gateway.toml "
    "/opt/flock-gateway/current/venv/bin/flock-gateway"
)


def _host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


@pytest.fixture(scope="module")
def prefix() -> str:
    """The index prefix the scenario's inventory sets, as Ansible reads it (the whole
    inventory directory: the generated hosts file and the linked ones)."""
    inventory_dir = os.path.dirname(INVENTORY)
    site = testinfra.get_host(f"ansible://{GATEWAY}?ansible_inventory={inventory_dir}")
    value = site.ansible.get_variables()["flock_index_prefix"]
    assert value != DEFAULT_PREFIX, "the scenario is meant to test a non-default prefix"
    return value


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


def _password(user: str) -> str:
    return (CREDENTIALS / f"{user}.password").read_text().strip()


def _es(host, method: str, path: str, user: str = "elastic", password=None, body=None):
    """(status, JSON) of an HTTPS request to Elasticsearch from `host` as `user`. The
    password reaches curl through its config on stdin, never a command line."""
    cfg = f'user = "{user}:{password if password is not None else _password(user)}"\n'
    cmd = f"curl -sS --max-time 30 --cacert {CA} -K - -X {method} -w '\\n%{{http_code}}' "
    if body is not None:
        cmd += f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))} "
    out = host.check_output(f"printf %s {shlex.quote(cfg)} | {cmd}{shlex.quote(ES_URL + path)}")
    text, _, status = out.rpartition("\n")
    return int(status), (json.loads(text) if text.strip() else {})


def _es_get(es, path: str) -> tuple[int, dict]:
    """GET on the node's HTTP API as the elastic user, from inside its container."""
    return _es(es, "GET", path)


def _es_search(es, index: str, query: dict) -> dict:
    status, body = _es(es, "POST", f"/{index}/_search", body=query)
    assert status == 200, body
    return body


@pytest.fixture(scope="module")
def registered(laptop):
    return _register(laptop, "Full-stack test laptop")


def _register(laptop, name):
    """A new agent registered from the laptop over HTTPS: (username, token)."""
    username = f"laptop-{uuid.uuid4().hex[:8]}"
    status, body = _curl(
        laptop,
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps({"username": username, "name": name}),
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
        ("full-stack-gw1", "flock-gateway.socket"),
        ("full-stack-gw1", "nginx"),
    ]:
        assert _host(name).service(unit).is_running, f"{unit} on {name}"


def test_gateway_refuses_an_unverified_peer(laptop):
    # Without the CA the laptop's TLS handshake must fail: the gateway serves our cert.
    result = laptop.run(f"curl -sS -o /dev/null {GATEWAY_URL}/healthz")
    assert result.rc == 60, result.stderr  # curl: peer certificate cannot be authenticated


def test_submitted_rows_land_under_the_prefix_with_timestamp(laptop, es, registered, prefix):
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
        hits = _es_search(es, f"{prefix}-results-*", query)["hits"]["hits"]
        if len(hits) == 3:
            break
        time.sleep(1)
    assert len(hits) == 3
    for hit in hits:
        doc = hit["_source"]
        assert doc["@timestamp"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(unix_time)))
        assert doc["data"]["hostIdentifier"] == username
        assert doc["flock"]["name"] == "Full-stack test laptop"
        assert hit["_index"] == time.strftime(f"{prefix}-results-%Y.%m.%d", time.gmtime(unix_time))


def test_storage_follows_the_prefix_and_nothing_uses_the_default(es, registered, prefix):
    status, body = _es_get(es, "/_cat/indices?format=json&h=index&expand_wildcards=all")
    assert status == 200, body
    indices = {row["index"] for row in body}
    assert f"{prefix}-agents" in indices
    assert not {i for i in indices if i.startswith(f"{DEFAULT_PREFIX}-")}, indices
    status, body = _es_get(es, "/_index_template")
    assert status == 200, body
    ours = {t["name"] for t in body["index_templates"] if t["name"].startswith(f"{prefix}-")}
    assert f"{prefix}-results" in ours
    assert not any(t["name"].startswith(f"{DEFAULT_PREFIX}-") for t in body["index_templates"])


DAILY = ["{p}-results-*", "{p}-agent-logs-*", "{p}-status-*"]


@pytest.mark.parametrize(
    ("role", "wanted"),
    [
        ("flock_gateway_writer", [*DAILY, "{p}-agents", "{p}-state"]),
        ("flock_retention", [*DAILY, "{p}-state"]),
        ("flock_setup", ["{p}-agents", "{p}-state"]),
        ("flock_viewer", [*DAILY, "{p}-state"]),
    ],
)
def test_privileges_grant_on_the_prefix(es, prefix, role, wanted):
    status, body = _es_get(es, f"/_security/role/{role}")
    assert status == 200, body
    names = sorted(n for entry in body[role]["indices"] for n in entry["names"])
    assert names == sorted(w.format(p=prefix) for w in wanted)


def test_wrong_token_is_refused(laptop, registered):
    username, _ = registered
    status, body = _curl(laptop, "-u", f"{username}:not-the-token", f"{GATEWAY_URL}/ping")
    assert status == 401
    assert body["error"] is True


def test_nothing_can_be_read_back_through_the_gateway(laptop, registered, prefix):
    username, token = registered
    for path in ("/submit", f"/{prefix}-results-*/_search", "/agents", "/_search"):
        status, _ = _curl(laptop, "-u", f"{username}:{token}", f"{GATEWAY_URL}{path}")
        assert status in (404, 405), path


def test_dashboards_were_imported_into_kibana(laptop):
    status, body = _curl(laptop, f"{KIBANA_URL}/api/status")
    assert status == 200
    assert body["status"]["overall"]["level"] == "available"
    status, found = _curl(laptop, f"{KIBANA_URL}/api/saved_objects/_find?type=dashboard")
    assert status == 200
    assert found["total"] >= 1


def test_dashboards_data_view_searches_the_prefix(laptop, prefix):
    status, found = _curl(laptop, f"{KIBANA_URL}/api/saved_objects/_find?type=index-pattern")
    assert status == 200, found
    titles = sorted(o["attributes"]["title"] for o in found["saved_objects"])
    assert titles == [f"{prefix}-results-*", f"{prefix}-state"]


@pytest.fixture(scope="module")
def gateway_es_user() -> tuple[str, str]:
    """The Elasticsearch user and password the gateway runs with (its own config)."""
    gw = _host(GATEWAY)
    settings = tomllib.loads(gw.file("/etc/flock/gateway.toml").content_string)["elasticsearch"]
    assert settings["hosts"] == [ES_URL]
    # The password is in its own file, which gateway.toml names.
    password = gw.file(settings["password_file"]).content_string.strip()
    return settings["username"], password


def test_gateway_credentials_write_and_run_but_cannot_read(
    laptop, es, registered, gateway_es_user, prefix
):
    """Allowed: the gateway stored rows and passes its check and /readyz with these
    credentials (the idempotence run passed through the role's check too). Forbidden:
    reading any result back."""
    user, password = gateway_es_user
    assert user == "flock_gateway"
    gw = _host(GATEWAY)
    check = gw.run(f"{GATEWAY_CLI} check")
    assert check.rc == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["reason"] == "ready"
    status, body = _curl(laptop, f"{GATEWAY_URL}/readyz")
    assert status == 200, body
    found = _es_search(es, f"{prefix}-results-*", {"size": 1})
    assert found["hits"]["hits"], "no stored row to try to read"
    hit = found["hits"]["hits"][0]
    for path in (
        f"/{hit['_index']}/_search",
        f"/{hit['_index']}/_count",
        f"/{hit['_index']}/_doc/{hit['_id']}",
    ):
        status, _ = _es(gw, "GET", path, user, password)
        assert status == 403, (path, status)
    # A wildcard expands only to indices the user may read: none, so no row is seen.
    status, body = _es(gw, "GET", f"/{prefix}-results-*/_search", user, password)
    assert status == 200 and body["hits"]["total"]["value"] == 0, body


def _listening(host) -> set[tuple[str, int]]:
    out = host.check_output("ss -Htln")
    found = set()
    for line in out.splitlines():
        local = line.split()[3]
        addr, _, port = local.rpartition(":")
        found.add((addr.strip("[]"), int(port)))
    return found


# Listening ports that may stay without TLS, each with its reason. Empty: none may.
PLAIN_ALLOWED: dict[tuple[str, int], str] = {}
# Addresses whose every port is not the deployment's, each with its reason.
NOT_DEPLOYED: dict[str, str] = {
    "127.0.0.11": "Docker's embedded DNS resolver of the scenario's network (the test rig's "
    "containers, loopback only; a real host has no such listener)",
}


@pytest.mark.parametrize("name", ["full-stack-es1", "full-stack-kb1", "full-stack-gw1"])
def test_every_listening_port_speaks_tls_with_a_pki_certificate(name):
    """Every TCP port listening on the host completes a TLS handshake whose certificate
    chains to the pki role's CA (checked from the host itself, so loopback-only ports
    count too). A new plain port fails here until it is TLS or listed above with why."""
    host = _host(name)
    sockets = _listening(host)
    assert sockets, f"nothing listens on {name}"
    script = (
        "import socket, ssl, sys\n"
        "c = ssl.create_default_context(cafile=sys.argv[1])\n"
        "c.check_hostname = False\n"
        # The host's own certificate as client certificate: transport demands one.
        "c.load_cert_chain(sys.argv[4], sys.argv[5])\n"
        "s = c.wrap_socket(socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=20))\n"
        "print(s.version())\n"
    )
    pki = f"/etc/flock/pki/{name}"
    for addr, port in sorted(sockets):
        wildcard = addr in ("0.0.0.0", "*", "::")  # noqa: S104 (reading ss output)
        target = "127.0.0.1" if wildcard else addr
        if addr in NOT_DEPLOYED or (target, port) in PLAIN_ALLOWED or (addr, port) in PLAIN_ALLOWED:
            continue
        result = host.run(
            "python3 -c %s %s %s %s %s %s",
            script,
            CA,
            target,
            str(port),
            f"{pki}.crt",
            f"{pki}.key",
        )
        assert result.rc == 0, f"{name} {addr}:{port} is not TLS with a pki certificate: {result}"
        assert result.stdout.strip().startswith("TLSv1."), result.stdout


def _transport_handshake(host, cert: str, key: str) -> str:
    """TLS 1.2 handshake with the node's transport port presenting cert/key: 'ok' or the
    error (1.2, so a refused client certificate fails the handshake itself)."""
    script = (
        "import socket, ssl, sys\n"
        "c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        "c.maximum_version = ssl.TLSVersion.TLSv1_2\n"
        "c.check_hostname = False\n"
        "c.load_verify_locations(sys.argv[1])\n"
        "c.load_cert_chain(sys.argv[2], sys.argv[3])\n"
        "c.wrap_socket(socket.create_connection(('full-stack-es1', 9300), timeout=20))\n"
        "print('ok')\n"
    )
    result = host.run("python3 -c %s %s %s %s", script, CA, cert, key)
    return "ok" if result.rc == 0 and result.stdout.strip() == "ok" else result.stderr.strip()


def test_only_nodes_open_a_transport_connection(es):
    gw = _host(GATEWAY)
    # Allowed: the node's own certificate.
    pki = "/etc/flock/pki/full-stack-es1"
    assert _transport_handshake(es, f"{pki}.crt", f"{pki}.key") == "ok"
    # Forbidden: the gateway's certificate, from the same CA.
    pki = f"/etc/flock/pki/{GATEWAY}"
    result = _transport_handshake(gw, f"{pki}.crt", f"{pki}.key")
    assert result != "ok"
    assert "SSL" in result or "alert" in result.lower(), result


def test_retention_job_deletes_expired_indices_only(es, prefix):
    """The prune job, with its own user, deletes an expired daily index and keeps today's
    results and the agent registry; its user cannot read rows nor drop the registry."""
    expired = f"{prefix}-results-2001.01.01"
    status, body = _es(es, "PUT", f"/{expired}")
    assert status == 200, body
    today = time.strftime(f"{prefix}-results-%Y.%m.%d", time.gmtime())
    status, body = _es(es, "POST", f"/{today}/_doc?refresh=true", body={"probe": 1})
    assert status == 201, body
    gw = _host(GATEWAY)
    settings = tomllib.loads(gw.file("/etc/flock/prune/prune.toml").content_string)
    assert settings["elasticsearch"]["username"] == "flock_retention"
    gw.check_output("systemctl start flock-gateway-prune.service")
    status, _ = _es(es, "GET", f"/{expired}")
    assert status == 404
    for index in (today, f"{prefix}-agents"):
        status, _ = _es(es, "GET", f"/{index}")
        assert status == 200, index
    status, _ = _es(es, "GET", f"/{today}/_search", "flock_retention")
    assert status == 403
    status, _ = _es(es, "DELETE", f"/{prefix}-agents", "flock_retention")
    assert status == 403


def test_prune_job_runs_as_its_own_user_with_its_password_as_a_credential():
    gw = _host(GATEWAY)
    props = gw.check_output("systemctl show flock-gateway-prune.service --property=User")
    assert "User=flock-prune" in props
    unit = gw.check_output("systemctl cat flock-gateway-prune.service")
    assert "LoadCredential=es_password:/etc/flock/prune/es-password\n" in unit
    secret = gw.file("/etc/flock/prune/es-password")
    assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600)
    assert secret.content_string.strip() == _password("flock_retention")
    denied = gw.run("runuser -u flock-gateway -- cat /etc/flock/prune/es-password")
    assert denied.rc != 0
    assert "Permission denied" in denied.stderr


def _files_holding(host, secret: str, *paths: str) -> list[str]:
    """Files under `paths` that contain `secret` (given to grep on stdin, not as an
    argument; Ansible's own working files, which hold the command, left out)."""
    result = host.run(
        "printf %%s %s | grep -rlF --devices=skip --exclude-dir=.ansible -f - "
        + " ".join(shlex.quote(p) for p in paths),
        secret,
    )
    assert result.rc in (0, 1), result.stderr
    return result.stdout.split()


def test_no_gateway_file_holds_the_superuser_password():
    """Storage was set up as flock_setup: the elastic password never went to the gateway
    host. (Control: the gateway's own password is found where it belongs.)"""
    gw = _host(GATEWAY)
    dirs = ("/etc", "/opt", "/var/lib", "/root")
    assert _files_holding(gw, _password("elastic"), *dirs) == []
    assert _files_holding(gw, _password("flock_gateway"), *dirs) == [
        "/etc/flock/gateway/es-password"
    ]


def test_storage_set_up_user_has_only_what_set_up_needs(es, prefix):
    status, body = _es(es, "GET", "/_security/_authenticate", "flock_setup")
    assert status == 200, body
    assert body["roles"] == ["flock_setup"]
    status, _ = _es(es, "GET", f"/_index_template/{prefix}-results", "flock_setup")
    assert status == 200
    found = _es_search(es, f"{prefix}-results-*", {"size": 1})
    assert found["hits"]["hits"], "no stored row to try to read"
    index = found["hits"]["hits"][0]["_index"]
    for method, path in (
        ("GET", f"/{prefix}-agents/_search"),
        ("GET", f"/{index}/_search"),
        ("DELETE", f"/{index}"),
        ("DELETE", f"/{prefix}-agents"),
        ("GET", "/_security/user"),
    ):
        status, _ = _es(es, method, path, "flock_setup")
        assert status == 403, (method, path, status)


def test_operator_agent_commands_work_with_the_gateways_credentials(laptop, es, prefix):
    """The README's `flock-gateway agents list|rename|revoke`, run as the README says;
    the prune job, as its own user, then takes the revoked host's rows from the state."""
    username, token = _register(laptop, "to be renamed")
    assert _submit(laptop, username, token, _rows(username, 2)) == 200
    gw = _host(GATEWAY)
    listed = gw.run(f"{GATEWAY_CLI} agents list")
    assert listed.rc == 0, listed.stderr
    assert username in listed.stdout
    renamed = gw.run(f"{GATEWAY_CLI} agents rename %s %s", username, "Renamed laptop")
    assert renamed.rc == 0, renamed.stderr
    assert "Renamed laptop" in gw.check_output(f"{GATEWAY_CLI} agents list")
    revoked = gw.run(f"{GATEWAY_CLI} agents revoke %s", username)
    assert revoked.rc == 0, revoked.stderr
    assert username not in gw.check_output(f"{GATEWAY_CLI} agents list")

    def state_kinds() -> list[str]:
        status, body = _es(es, "POST", f"/{prefix}-state/_refresh")
        assert status == 200, body
        query = {"query": {"term": {"flock.username": username}}, "size": 100}
        hits = _es_search(es, f"{prefix}-state", query)["hits"]["hits"]
        return sorted(hit["_source"]["flock"]["kind"] for hit in hits)

    assert state_kinds() == ["host", "revocation", "row", "row"]
    gw.check_output("systemctl start flock-gateway-prune.service")
    # the revocation itself stays a minute, for rows not yet searchable
    assert state_kinds() == ["revocation"]


def test_viewer_reads_results_but_not_the_agent_registry(es, registered, prefix):
    status, body = _es(es, "GET", f"/{prefix}-results-*/_search", "flock_viewer")
    assert status == 200, body
    assert body["hits"]["total"]["value"] >= 1
    status, _ = _es(es, "GET", f"/{prefix}-agents/_search", "flock_viewer")
    assert status == 403
    status, _ = _es(es, "POST", f"/{prefix}-results-2001.01.02/_doc", "flock_viewer", body={})
    assert status == 403
    status, body = _es(es, "GET", "/_security/_authenticate", "flock_viewer")
    assert body["roles"] == ["flock_viewer", "flock_dashboards"]


def test_kibana_role_api_got_the_viewers_feature_privileges(laptop):
    """The kibana role wrote the viewer's feature privileges through Kibana's role API,
    once (the idempotence run wrote nothing)."""
    status, role = _curl(laptop, f"{KIBANA_URL}/api/security/role/flock_dashboards")
    assert status == 200, role
    assert role["kibana"] == [
        {
            "base": [],
            "feature": {
                "dashboard_v2": ["read"],
                "discover_v2": ["read"],
                "visualize_v2": ["read"],
            },
            "spaces": ["*"],
        }
    ]
    status, writes = _curl(laptop, f"{KIBANA_URL}/__standin__/roles")
    assert status == 200, writes
    assert writes["role_writes"] == 1


# --- backups: the snapshot timer and playbooks/restore.yml

RESTORE = Path(__file__).resolve().parents[3] / "playbooks" / "restore.yml"
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
# The job's settings are the unit's root-only EnvironmentFile; an operator sources it.
SNAPSHOT = "set -a; . /etc/flock/snapshot.env; set +a; /usr/local/sbin/flock-snapshot"


def _rows(username: str, n: int) -> list[dict]:
    unix_time = int(time.time()) - 120
    return [
        {
            "name": "os_version",
            "hostIdentifier": username,
            "calendarTime": time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(unix_time)),
            "unixTime": unix_time,
            "epoch": 0,
            "counter": i,
            "numerics": False,
            "columns": {"name": "Debian GNU/Linux", "version": "12", "build": f"backup-{i}"},
            "action": "added",
        }
        for i in range(n)
    ]


def _submit(laptop, username: str, token: str, rows: list[dict]) -> int:
    status, _ = _curl(
        laptop,
        "-u",
        f"{username}:{token}",
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps(rows),
        f"{GATEWAY_URL}/submit",
    )
    return status


def _counts(es, prefix: str) -> dict[str, int]:
    pattern = f"{prefix}-results-*,{prefix}-agent-logs-*,{prefix}-status-*"
    status, body = _es(es, "POST", f"/{pattern}/_refresh?allow_no_indices=true")
    assert status == 200, body
    status, rows = _es(es, "GET", f"/_cat/indices/{pattern}?format=json&h=index,docs.count")
    assert status == 200, rows
    return {row["index"]: int(row["docs.count"]) for row in rows}


def _restore(*extra: str) -> tuple[int, str]:
    proc = subprocess.run(
        [PLAYBOOK, "-i", os.path.dirname(INVENTORY), str(RESTORE), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    recap = re.findall(r"changed=(\d+)", proc.stdout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return sum(int(n) for n in recap), proc.stdout


def _snapshots(es) -> list[str]:
    listed = json.loads(es.check_output(f"{SNAPSHOT} list"))
    return [s["snapshot"] for s in listed["snapshots"]]


def test_snapshot_loss_restore_and_expiry(es, laptop, prefix):
    """Backups: rows stored, the timer's snapshot, a laptop revoked afterwards, every result
    index lost; playbooks/restore.yml (as an operator runs it) brings back the same per-index
    counts, the viewer finds the rows, the revoked laptop stays refused, a second restore
    changes nothing, and the timer's command deletes snapshots older than the retention."""
    kept, kept_token = _register(laptop, "Backed-up laptop")
    revoked, revoked_token = _register(laptop, "Revoked after the snapshot")
    assert _submit(laptop, kept, kept_token, _rows(kept, 4)) == 200
    assert _submit(laptop, revoked, revoked_token, _rows(revoked, 2)) == 200
    before = _counts(es, prefix)
    assert before and sum(before.values()) >= 6, before

    # The unit the timer starts; it runs with the snapshot user, which may not read rows.
    assert es.service("flock-snapshot.timer").is_enabled
    es.check_output("systemctl start flock-snapshot.service")
    taken = _snapshots(es)
    assert len(taken) >= 1, taken
    status, body = _es(es, "GET", f"/{prefix}-results-*/_search", "flock_snapshots")
    assert status == 403 or body["hits"]["total"]["value"] == 0, body

    # After the snapshot: one laptop revoked, then every result index lost.
    gw = _host(GATEWAY)
    result = gw.run(f"{GATEWAY_CLI} agents revoke %s", revoked)
    assert result.rc == 0, result.stderr
    status, body = _es(es, "DELETE", "/" + ",".join(before))
    assert status == 200, body
    assert _counts(es, prefix) == {}

    changed, out = _restore()
    assert changed >= 1, out
    assert _counts(es, prefix) == before

    status, body = _es(
        es,
        "POST",
        f"/{prefix}-results-*/_search",
        "flock_viewer",
        body={"query": {"term": {"flock.username": kept}}, "size": 0},
    )
    assert status == 200 and body["hits"]["total"]["value"] == 4, body

    # The registry was not rolled back: the revoked laptop stays refused (within the
    # gateway's credential cache time), the other one still submits.
    deadline = time.monotonic() + 30
    while _submit(laptop, revoked, revoked_token, _rows(revoked, 1)) != 401:
        assert time.monotonic() < deadline, "a laptop revoked after the snapshot works again"
        time.sleep(2)
    assert _submit(laptop, kept, kept_token, _rows(kept, 5)) == 200

    # Nothing is missing any more: a second restore changes nothing.
    changed, out = _restore()
    assert changed == 0, out

    # The timer's command deletes snapshots older than the retention (an operator previews
    # the ages from a later day with --now).
    settings = es.check_output("cat /etc/flock/snapshot.env")
    keep_days = int(re.search(r'FLOCK_SNAPSHOT_KEEP_DAYS="(\d+)"', settings)[1])
    later = (datetime.now(tz=UTC) + timedelta(days=keep_days + 1)).isoformat()
    expired = json.loads(es.check_output(f"{SNAPSHOT} expire --now {later}"))
    assert sorted(expired["deleted"]) == sorted(taken), expired
    assert _snapshots(es) == []
