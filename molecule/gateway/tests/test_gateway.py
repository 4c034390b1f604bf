"""Verify the gateway role: a sandboxed TLS-only service writing to a real Elasticsearch.

Runs after converge, idempotence and side_effect (Elasticsearch-down run, then the
upgrade to a .post1 wheel), so everything here is checked on the upgraded release.
The agent side runs on the Elasticsearch container: a remote client on the network that
knows only the CA certificate.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
import tomllib
import uuid

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
GATEWAY = "gateway-gw1"
ES = "gateway-es1"
PORT = 8443
CA = "/etc/flock/pki/ca.crt"
UNIT = "flock-gateway.service"
# `systemd-analyze security` scores 0 (locked down) to 10 (unprotected); below 2.0 is
# "OK" territory with margin. What keeps it above 0: the service needs AF_INET/AF_INET6
# (it is a network server) and IPAddressDeny= cannot be used for a public endpoint.
MAX_EXPOSURE = 2.0
UPGRADE_SUFFIX = ".post1"

# One node per test module: the tests name their hosts themselves.
testinfra_hosts = [f"ansible://{GATEWAY}?ansible_inventory={INVENTORY}"]


@pytest.fixture(scope="module")
def gw():
    return testinfra.get_host(f"ansible://{GATEWAY}?ansible_inventory={INVENTORY}")


@pytest.fixture(scope="module")
def es():
    return testinfra.get_host(f"ansible://{ES}?ansible_inventory={INVENTORY}")


@pytest.fixture(scope="module")
def enroll_secret(gw):
    return gw.ansible.get_variables()["gateway_enrollment_secrets"][0]


@pytest.fixture(scope="module")
def prefix(gw):
    """The index prefix as deployed: every index and template name follows it."""
    config = tomllib.loads(gw.file("/etc/flock/gateway.toml").content_string)
    return config["storage"]["index_prefix"]


def _show(host, *props):
    out = host.check_output("systemctl show %s --property=%s", UNIT, ",".join(props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _curl(host, *args):
    """curl as a remote client would run it; returns (rc, body, http_status)."""
    cmd = "curl --silent --show-error --max-time 20 --write-out '\\n%{http_code}' " + " ".join(
        shlex.quote(a) for a in args
    )
    res = host.run(cmd)
    body, _, status = res.stdout.rpartition("\n")
    return res.rc, body, status


def _url(path):
    return f"https://{GATEWAY}:{PORT}{path}"


# --- the unit -------------------------------------------------------------------------


def test_service_active_and_enabled(gw):
    svc = gw.service("flock-gateway")
    assert svc.is_running
    assert svc.is_enabled
    props = _show(gw, "User", "Type", "SubState")
    assert props["User"] == "flock-gateway"
    assert props["Type"] == "notify"
    assert props["SubState"] == "running"


def test_prune_timer_enabled(gw):
    timer = gw.service("flock-gateway-prune.timer")
    assert timer.is_enabled
    assert timer.is_running
    unit = gw.check_output("systemctl cat flock-gateway-prune.service")
    assert "ExecStart=/opt/flock-gateway/current/venv/bin/flock-gateway prune" in unit


PRUNE_UNIT = "flock-gateway-prune.service"
PRUNE_SECRET = "/etc/flock/prune/es-password"  # noqa: S105 - a path


@pytest.fixture(scope="module")
def prune_password(gw):
    return gw.ansible.get_variables()["gateway_prune_elasticsearch_password"]


def test_prune_runs_as_its_own_user_with_a_systemd_credential(gw, prune_password):
    assert "User=flock-prune" in gw.check_output("systemctl show %s -p User", PRUNE_UNIT)
    unit = gw.check_output("systemctl cat %s", PRUNE_UNIT)
    assert f"LoadCredential=es_password:{PRUNE_SECRET}\n" in unit
    secret = gw.file(PRUNE_SECRET)
    assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600)
    assert secret.content_string.strip() == prune_password
    show = gw.check_output("systemctl show %s", PRUNE_UNIT)
    assert "EnvironmentFile" not in unit
    assert prune_password not in unit + show
    assert not gw.file("/etc/flock/gateway/prune.env").exists


@pytest.mark.parametrize("path", [PRUNE_SECRET, "/etc/flock/prune/prune.toml"])
def test_the_gateway_user_cannot_read_the_prune_job_files(gw, path):
    result = gw.run("runuser -u flock-gateway -- cat %s", path)
    assert result.rc != 0
    assert "Permission denied" in result.stderr


def test_prune_job_gets_its_password_and_nothing_else_does(gw, prune_password):
    """Run as the job runs: the password reaches the job's credentials directory only."""
    script = (
        "import os, sys; from flock_gateway.config import load_config; "
        "c = load_config(); "
        "print(c.es_username, c.es_password == sys.argv[1], "
        "sys.argv[1] in open('/proc/self/environ').read())"
    )
    out = gw.check_output(
        "systemd-run --quiet --wait --pipe --property=User=flock-prune "
        "--property=LoadCredential=es_password:%s --setenv=FLOCK_CONFIG=%s "
        "/opt/flock-gateway/current/venv/bin/python -c %s %s",
        PRUNE_SECRET, "/etc/flock/prune/prune.toml", script, prune_password,
    )  # fmt: skip
    assert out.split() == ["flock_retention", "True", "False"]


def test_prune_runs_in_its_sandbox(gw):
    """The retention job itself works under the same sandbox (oneshot, exits 0)."""
    gw.check_output("systemctl start flock-gateway-prune.service")
    props = gw.check_output(
        "systemctl show flock-gateway-prune.service --property=Result --property=ExecMainStatus"
    )
    assert "Result=success" in props
    assert "ExecMainStatus=0" in props


def test_sandbox_exposure_score(gw):
    out = gw.check_output("systemd-analyze security --no-pager %s", UNIT)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match, out[-500:]
    assert float(match.group(1)) < MAX_EXPOSURE, out


def test_sandbox_directives_present(gw):
    unit = gw.check_output("systemctl cat %s", UNIT)
    for directive in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet=\n",
    ):
        assert directive in unit + "\n", directive


def test_processes_unprivileged(gw):
    pid = _show(gw, "MainPID")["MainPID"]
    assert pid != "0"
    status = gw.file(f"/proc/{pid}/status").content_string
    assert re.search(r"^CapEff:\s+0+$", status, re.M), status
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
    owners = gw.check_output("ps -o user= --ppid %s", pid).split()
    assert owners
    assert set(owners) == {"flock-gateway"}


def test_workers_run_gevent(gw):
    # the role's default worker class: each worker has gevent's greenlets loaded
    pid = _show(gw, "MainPID")["MainPID"]
    workers = gw.check_output("ps -o pid= --ppid %s", pid).split()
    assert workers
    for worker in workers:
        assert "greenlet" in gw.file(f"/proc/{worker}/maps").content_string, worker


def test_release_has_the_compiled_row_path(gw):
    # built into the wheelhouse on the controller (gateway_rowpath: required here) and
    # installed with the release: the gateway's accelerator module finds it
    python = "/opt/flock-gateway/current/venv/bin/python"
    check = "import flock_gateway.accelerator as a; assert a.available()"
    assert gw.run(f"{python} -c '{check}'").rc == 0


# --- files and secrets ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("/etc/flock/gateway.toml", 0o640),
        ("/etc/flock/gateway/enroll-secrets", 0o640),
        ("/etc/flock/gateway/tls.key", 0o640),
        ("/etc/flock/gateway/gunicorn.conf.py", 0o640),
    ],
)
def test_private_files(gw, path, mode):
    f = gw.file(path)
    assert f.exists
    assert f.user == "root"
    assert f.group == "flock-gateway"
    assert f.mode == mode


def test_secret_only_in_its_file(gw, enroll_secret):
    assert gw.file("/etc/flock/gateway/enroll-secrets").content_string.split() == [enroll_secret]
    config = gw.file("/etc/flock/gateway.toml").content_string
    assert enroll_secret not in config
    assert 'enroll_secrets_file = "/etc/flock/gateway/enroll-secrets"' in config
    pid = _show(gw, "MainPID")["MainPID"]
    for text in (
        gw.check_output("systemctl cat %s", UNIT),
        gw.check_output("systemctl show %s", UNIT),
        gw.check_output("cat /proc/%s/cmdline | tr '\\0' ' '", pid),
    ):
        assert enroll_secret not in text


# --- TLS only -------------------------------------------------------------------------


def test_serves_our_certificate(es, gw):
    """From the network: the chain verifies against our CA for the host name."""
    out = es.check_output(
        "openssl s_client -connect %s:%s -servername %s -CAfile %s -verify_return_error "
        "-verify_hostname %s </dev/null 2>&1",
        GATEWAY,
        str(PORT),
        GATEWAY,
        CA,
        GATEWAY,
    )
    assert "Verify return code: 0 (ok)" in out
    served = es.check_output(
        "openssl s_client -connect %s:%s -servername %s </dev/null 2>/dev/null "
        "| openssl x509 -noout -fingerprint -sha256",
        GATEWAY,
        str(PORT),
        GATEWAY,
    )
    expected = gw.check_output(
        "openssl x509 -noout -fingerprint -sha256 -in /etc/flock/pki/%s.crt", GATEWAY
    )
    assert served.strip() == expected.strip()
    san = gw.check_output(
        "openssl x509 -noout -ext subjectAltName -in /etc/flock/pki/%s.crt", GATEWAY
    )
    assert f"DNS:{GATEWAY}" in san
    issuer = gw.check_output(
        "openssl x509 -noout -issuer -nameopt RFC2253 -in /etc/flock/pki/%s.crt", GATEWAY
    )
    ca_subject = gw.check_output("openssl x509 -noout -subject -nameopt RFC2253 -in %s", CA)
    assert issuer.split("=", 1)[1].strip() == ca_subject.split("=", 1)[1].strip()


def test_untrusted_client_refused_by_verification(es):
    """Without our CA the client cannot verify the gateway (no public trust assumed)."""
    rc, _, _ = _curl(es, _url("/healthz"))
    assert rc == 60  # curl: peer certificate cannot be authenticated


def test_no_plain_http(es):
    rc, body, status = _curl(es, f"http://{GATEWAY}:{PORT}/healthz")
    assert rc != 0
    assert status in ("000", "")
    assert '"status"' not in body


def test_only_the_tls_port_listens(gw):
    """Every listening TCP socket the service user owns is the TLS port (by socket uid:
    the container's root lacks CAP_SYS_PTRACE, so ss cannot name other users' pids)."""
    uid = gw.user("flock-gateway").uid
    ports = set()
    for line in gw.check_output("ss -Hltne").splitlines():
        if re.search(rf"\buid:{uid}\b", line):
            ports.add(line.split()[3].rsplit(":", 1)[1])
    assert ports == {str(PORT)}


def test_each_worker_listens_on_the_port(gw):
    """gateway_reuse_port: a listening socket per worker (gateway_workers is 2 here), so
    the kernel spreads connections over the workers; not one socket they share."""
    uid = gw.user("flock-gateway").uid
    listening = [
        line
        for line in gw.check_output("ss -Hltne").splitlines()
        if re.search(rf"\buid:{uid}\b", line) and line.split()[3].endswith(f":{PORT}")
    ]
    assert len(listening) == 2, listening


# --- the agent flow ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent(es, enroll_secret):
    username = "molecule-" + uuid.uuid4().hex[:12]
    rc, body, status = _curl(
        es,
        "--cacert",
        CA,
        "-H",
        "Content-Type: application/json",
        "-H",
        f"X-Flock-Enroll-Secret: {enroll_secret}",
        "--data",
        json.dumps({"username": username, "name": "Molecule laptop"}),
        _url("/register"),
    )
    assert rc == 0, body
    assert status == "200", body
    reply = json.loads(body)
    assert reply["error"] is False
    return username, reply["auth_token"]


def test_register_needs_enrollment_secret(es):
    rc, body, status = _curl(
        es, "--cacert", CA, "--data", "username=molecule-nosecret", _url("/register")
    )
    assert rc == 0
    assert status == "401", body
    assert json.loads(body)["error"] is True


def test_ping_with_token(es, agent):
    username, token = agent
    rc, body, status = _curl(es, "--cacert", CA, "-u", f"{username}:{token}", _url("/ping"))
    assert (rc, status) == (0, "200"), body
    rc, body, status = _curl(es, "--cacert", CA, "-u", f"{username}:wrong", _url("/ping"))
    assert status == "401", body


def test_submit_lands_in_elasticsearch(es, agent, prefix):
    username, token = agent
    marker = uuid.uuid4().hex
    now = int(time.time())
    rows = [
        {
            "name": "molecule_probe",
            "hostIdentifier": username,
            "calendarTime": time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(now)),
            "unixTime": now,
            "epoch": 0,
            "counter": i,
            "numerics": False,
            "action": "added",
            "columns": {"marker": marker, "row": str(i)},
        }
        for i in range(3)
    ]
    rc, body, status = _curl(
        es,
        "--cacert",
        CA,
        "-u",
        f"{username}:{token}",
        "-H",
        "Content-Type: application/json",
        "--data",
        json.dumps(rows),
        _url("/submit"),
    )
    assert (rc, status) == (0, "200"), body
    assert json.loads(body)["processed_count"] == 3

    es.check_output("curl -sSf -XPOST 'http://127.0.0.1:9200/%s-results-*/_refresh'", prefix)
    # what the laptop sent is under data.*; only the reviewed schedule's columns are
    # indexed, so the marker column is matched in _source
    query = json.dumps(
        {
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"flock.username": username}},
                        {"term": {"data.name": "molecule_probe"}},
                    ]
                }
            },
            "size": 100,
        }
    )
    found = json.loads(
        es.check_output(
            "curl -sSf -H 'Content-Type: application/json' "
            "'http://127.0.0.1:9200/%s-results-*/_search' --data %s",
            prefix,
            query,
        )
    )
    hits = [h for h in found["hits"]["hits"] if h["_source"]["data"]["columns"]["marker"] == marker]
    assert len(hits) == 3
    day = time.strftime("%Y.%m.%d", time.gmtime(now))
    for hit in hits:
        assert hit["_index"] == f"{prefix}-results-{day}"
        src = hit["_source"]
        assert src["data"]["hostIdentifier"] == username
        assert src["flock"]["username"] == username
        assert src["data"]["name"] == "molecule_probe"
    assert sorted(h["_source"]["data"]["counter"] for h in hits) == [0, 1, 2]


def test_storage_was_set_up_by_the_role(es, prefix):
    out = json.loads(
        es.check_output("curl -sSf 'http://127.0.0.1:9200/_index_template/%s-*'", prefix)
    )
    names = {t["name"] for t in out["index_templates"]}
    assert f"{prefix}-results" in names


def test_names_cannot_be_taken_over(gw, es, agent, enroll_secret):
    """A delivered registration is never registered again; osquery names are reserved;
    an osquery host seen moments ago cannot be enrolled again by whoever knows its id."""
    config = tomllib.loads(gw.file("/etc/flock/gateway.toml").content_string)
    assert config["osquery"]["refuse_reenroll_within_hours"] == 24

    def post(path, body):
        return _curl(
            es, "--cacert", CA, "-H", "Content-Type: application/json",
            "-H", f"X-Flock-Enroll-Secret: {enroll_secret}",
            "--data", json.dumps(body), _url(path),
        )  # fmt: skip

    username, token = agent
    _, body, status = post("/register", {"username": username, "name": "Intruder"})
    assert status == "400", body
    _, body, status = post("/register", {"username": "osq-" + username})
    assert status == "400", body
    assert "reserved for osquery hosts" in json.loads(body)["error_msg"]
    _, body, status = _curl(es, "--cacert", CA, "-u", f"{username}:{token}", _url("/ping"))
    assert status == "200", body

    host = str(uuid.uuid4()).upper()
    enroll = {"enroll_secret": enroll_secret, "host_identifier": host}
    _, body, status = post("/osquery/enroll", enroll)
    key = json.loads(body)["node_key"]
    assert key.startswith(f"osq-{host}:")
    for _ in range(2):  # seen by the gateway, on either worker
        _, body, status = post("/osquery/config", {"node_key": key})
        assert json.loads(body)["node_invalid"] is False, body
    _, body, status = post("/osquery/enroll", enroll)
    assert json.loads(body) == {"node_invalid": True}
    _, body, status = post("/osquery/config", {"node_key": key})
    assert json.loads(body)["node_invalid"] is False, body


# --- Elasticsearch down, then the upgrade ------------------------------------------------


def test_role_failed_clearly_when_elasticsearch_was_down(gw):
    msg = gw.file("/root/molecule-es-down.txt").content_string.strip()
    assert msg.startswith("flock-gateway check failed on gateway-gw1:"), msg
    assert "cannot reach Elasticsearch at http://gateway-es1:9200" in msg


def _es_down_serving(gw):
    text = gw.file("/root/molecule-es-down-serving.txt").content_string
    readyz, submit, before, after = (part.strip() for part in text.split("\n---\n"))
    return readyz, submit, before, after


def _http(raw: str) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_workers_started_while_elasticsearch_was_down_served_503(gw):
    readyz, submit, before, after = _es_down_serving(gw)
    for raw in (readyz, submit):
        status, headers, body = _http(raw)
        assert status == 503, raw
        assert int(headers["retry-after"]) > 0
        assert body == {"error": True, "error_msg": "Storage is unavailable, try again later"}
    # the same service stayed up: not halted and restarted by systemd
    assert "ActiveState=active" in after
    assert before.splitlines()[0] in after


def test_gateway_recovered_by_itself_when_elasticsearch_came_back(gw):
    _, _, before, _ = _es_down_serving(gw)
    back = gw.file("/root/molecule-es-back.txt").content_string.strip()
    assert back == before.splitlines()[0]


def test_role_refused_a_retention_beyond_the_shard_budget(gw):
    text = gw.file("/root/molecule-shard-budget.txt").content_string
    result, before, after = (part.strip() for part in text.split("\n---\n"))
    # The gateway's own start-up rule, run on the new file by the new release.
    assert "retention_days = 400 with one index per day needs up to 1207 shards" in result
    assert "index_granularity = 'month' fits" in result
    # Nothing was replaced or restarted.
    assert before == after
    assert "retention_days = 90" in gw.file("/etc/flock/gateway.toml").content_string


def _before(gw):
    text = gw.file("/root/molecule-upgrade-before.txt").content_string
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_upgrade_switched_release(gw):
    before = _before(gw)
    current = gw.check_output("readlink /opt/flock-gateway/current")
    assert current != before["Release"]
    assert os.path.basename(current).startswith("0.1.0" + UPGRADE_SUFFIX + "-")
    version = gw.check_output(
        "/opt/flock-gateway/current/venv/bin/python -c "
        "'import importlib.metadata as m; print(m.version(\"flock-gateway\"))'"
    )
    assert version.endswith(UPGRADE_SUFFIX)
    # The previous release stays installed for a rollback.
    assert gw.file(before["Release"]).is_directory
    assert gw.file(before["Release"] + "/.installed").exists


def test_upgrade_restarted_exactly_once(gw):
    before = _before(gw)
    now = _show(gw, "InvocationID", "MainPID")
    assert now["InvocationID"] != before["InvocationID"]
    assert now["MainPID"] != before["MainPID"]
    # Up to the rollback case, which restarts the service again on purpose.
    until = _rollback_epoch(gw)
    entries = gw.check_output(
        "journalctl --no-pager -o json --since @%s --until @%s -u %s",
        before["Epoch"],
        until,
        UNIT,
    ).splitlines()
    invocations = set()
    for line in entries:
        entry = json.loads(line)
        inv = entry.get("INVOCATION_ID") or entry.get("_SYSTEMD_INVOCATION_ID")
        if inv:
            invocations.add(inv)
    invocations.discard(before["InvocationID"])
    assert len(invocations) == 1, invocations


def _rollback_epoch(gw):
    text = gw.file("/root/molecule-rollback-before.txt").content_string
    return text.strip().split("=", 1)[1]


def test_broken_release_rolled_back(gw):
    """A .post2 release whose app cannot start: the role fails, says it rolled back, and
    the .post1 release is in service again (the other tests then check it serves)."""
    msg = gw.file("/root/molecule-rollback.txt").content_string.strip()
    assert "0.1.0.post2-" in msg, msg
    assert "did not become ready" in msg, msg
    assert "Rolled back to 0.1.0" + UPGRADE_SUFFIX + "-" in msg, msg
    current = os.path.basename(gw.check_output("readlink /opt/flock-gateway/current"))
    assert current.startswith("0.1.0" + UPGRADE_SUFFIX + "-")
    # The broken release stays on disk (for inspection) but is not in service.
    broken = gw.check_output("ls /opt/flock-gateway/releases").split()
    assert any(r.startswith("0.1.0.post2-") for r in broken)


def test_upgraded_release_serves(es):
    rc, body, status = _curl(es, "--cacert", CA, _url("/readyz"))
    assert (rc, status) == (0, "200"), body
