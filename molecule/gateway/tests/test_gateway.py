"""Verify the gateway role: nginx serving TLS in front of a sandboxed gunicorn on a Unix
socket, writing to a real Elasticsearch.

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
    ("path", "group", "mode"),
    [
        ("/etc/flock/gateway.toml", "flock-gateway", 0o640),
        ("/etc/flock/gateway/enroll-secrets", "flock-gateway", 0o640),
        ("/etc/flock/gateway/gunicorn.conf.py", "flock-gateway", 0o640),
        # nginx's master reads it as root; gunicorn never holds it
        ("/etc/flock/gateway/tls.key", "root", 0o600),
    ],
)
def test_private_files(gw, path, group, mode):
    f = gw.file(path)
    assert f.exists
    assert f.user == "root"
    assert f.group == group
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
    """Plain HTTP to the port reaches nothing of the gateway: nginx answers it in the
    gateway's JSON shape that the port speaks HTTPS only, and closes."""
    rc, body, status = _curl(es, f"http://{GATEWAY}:{PORT}/healthz")
    assert (rc, status) == (0, "400"), body
    assert json.loads(body) == {"error": True, "error_msg": "This port speaks HTTPS only"}


def _listening_tcp(gw):
    """(address, port, uid) of every listening TCP socket but Docker's DNS resolver."""
    found = set()
    for line in gw.check_output("ss -Hltne").splitlines():
        local = line.split()[3]
        addr, _, port = local.rpartition(":")
        uid = re.search(r"\buid:(\d+)", line)
        if addr != "127.0.0.11":  # the container network's resolver, not the deployment's
            found.add((addr.strip("[]"), port, uid.group(1) if uid else "0"))
    return found


def test_only_nginx_listens_on_the_tls_port(gw):
    """The one TCP port is nginx's TLS port (root's socket; no port 80 of Debian's default
    site); the service user owns no listening TCP socket (by socket uid: the container's
    root lacks CAP_SYS_PTRACE, so ss cannot name other users' pids)."""
    listening = _listening_tcp(gw)
    assert {port for _, port, _ in listening} == {str(PORT)}, listening
    assert {uid for _, _, uid in listening} == {"0"}, listening
    assert gw.check_output("dpkg-query -W -f '${Status}' nginx") == "install ok installed"
    assert gw.service("nginx").is_running
    assert gw.service("nginx").is_enabled


def test_gunicorn_listens_on_the_socket_systemd_holds(gw):
    """gunicorn's only listener is flock-gateway.socket's Unix socket, which only nginx's
    user may connect to, and which systemd keeps open while gunicorn restarts."""
    sock = gw.file("/run/flock-gateway/gunicorn.sock")
    assert sock.is_socket
    assert (sock.user, sock.mode) == ("www-data", 0o600)
    props = gw.check_output("systemctl show flock-gateway.socket -p ActiveState -p Listen")
    assert "ActiveState=active" in props
    assert "Listen=/run/flock-gateway/gunicorn.sock (Stream)" in props
    assert gw.service("flock-gateway.socket").is_enabled
    master = _show(gw, "MainPID")["MainPID"]
    log = gw.check_output("journalctl _SYSTEMD_UNIT=%s _PID=%s --no-pager -o cat", UNIT, master)
    assert "Listening at: unix:/run/flock-gateway/gunicorn.sock" in log


def test_ready_means_a_worker_answers(gw):
    """systemd reports the service started only once a worker has loaded the app: right
    after `systemctl restart` returns, gunicorn answers on its socket at once."""
    out = gw.check_output(
        "systemctl restart %s && curl -sS --max-time 0.5 -o /dev/null -w '%%{http_code}' "
        "--unix-socket /run/flock-gateway/gunicorn.sock http://gateway/healthz",
        UNIT,
    )
    assert out == "200"


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


def test_unmodified_flock_agent_registers_and_osquery_still_needs_the_secret(gw, es):
    """gateway_agent_registration: open. The published agent's request (JSON, its
    User-Agent, no secret anywhere) registers; osquery's enrollment keeps its secret."""
    config = tomllib.loads(gw.file("/etc/flock/gateway.toml").content_string)
    assert config["gateway"]["register_requires_secret"] is False
    username = str(uuid.uuid4()).upper()
    rc, body, status = _curl(
        es, "--cacert", CA, "-H", "Content-Type: application/json",
        "-H", "User-Agent: Flock Agent 0.1.4",
        "--data", json.dumps({"username": username, "name": "Unmodified agent"}),
        _url("/register"),
    )  # fmt: skip
    assert (rc, status) == (0, "200"), body
    token = json.loads(body)["auth_token"]
    _, body, status = _curl(es, "--cacert", CA, "-u", f"{username}:{token}", _url("/ping"))
    assert status == "200", body
    _, body, status = _curl(
        es, "--cacert", CA, "-H", "Content-Type: application/json",
        "--data", json.dumps({"enroll_secret": "not-the-secret-0123456789",
                              "host_identifier": str(uuid.uuid4())}),
        _url("/osquery/enroll"),
    )  # fmt: skip
    assert json.loads(body) == {"node_invalid": True}, body


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


# --- the proxy: limits, slow clients, restarts ------------------------------------------

CLIENTS = "/root/proxy_clients.py"
SMALL_BODY_ENDPOINTS = ("/register", "/osquery/enroll", "/osquery/config")
# Kept open on the gateway while a laptop is served (issue 24: with 1,500 idle
# connections, or 700 clients trickling a body, gunicorn alone served no laptop in 5 s).
IDLE_CONNECTIONS = 1000
SLOW_CLIENTS = 700
LAPTOP_WITHIN_S = 2.0


@pytest.fixture(scope="module")
def clients(gw, es):
    """proxy_clients.py on both containers (stdlib only, run by their own python3)."""
    src = os.path.join(os.path.dirname(__file__), "proxy_clients.py")
    for host in (gw, es):
        res = host.ansible("copy", f"src={src} dest={CLIENTS} mode=0700", check=False)
        assert "failed" not in res or not res["failed"], res
    return CLIENTS


def _rows(username, columns):
    now = int(time.time())
    return json.dumps([{
        "name": "molecule_probe", "hostIdentifier": username, "unixTime": now,
        "calendarTime": time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(now)),
        "epoch": 0, "counter": 0, "numerics": False, "action": "added", "columns": columns,
    }])  # fmt: skip


def _laptop(es, agent, path, data=None):
    """One request of a registered laptop from the network: (status, body, seconds)."""
    username, token = agent
    args = ["curl", "-sS", "--max-time", "30", "--cacert", CA, "-u", f"{username}:{token}",
            "-w", "\n%{http_code} %{time_total}"]  # fmt: skip
    if data is not None:
        args += ["-H", "Content-Type: application/json", "--data", data]
    res = es.run(shlex.join([*args, _url(path)]))
    body, _, tail = res.stdout.rpartition("\n")
    status, seconds = tail.split()
    return status, body, float(seconds)


@pytest.fixture(scope="module")
def big_body(es):
    """70 KiB of JSON whitespace on the laptop."""
    path = "/root/molecule-70k.json"
    es.check_output("head -c 71680 /dev/zero | tr '\\0' ' ' > %s", path)
    return path


@pytest.mark.parametrize("path", SMALL_BODY_ENDPOINTS)
def test_small_endpoints_refuse_big_bodies_with_json(es, path, big_body):
    """70 KiB to an endpoint that needs a few KB: nginx answers 413 in the gateway's shape
    before gunicorn reads anything."""
    rc, body, status = _curl(
        es, "--cacert", CA, "-H", "Content-Type: application/json",
        "--data-binary", f"@{big_body}", _url(path),
    )  # fmt: skip
    assert (rc, status) == (0, "413"), body
    assert json.loads(body) == {"error": True, "error_msg": "Request body is too large"}


def test_submit_takes_bodies_beyond_the_small_cap(es, big_body):
    """The same 70 KiB reach the gateway on /submit (which then wants credentials)."""
    rc, body, status = _curl(
        es, "--cacert", CA, "-H", "Content-Type: application/json",
        "--data-binary", f"@{big_body}", _url("/submit"),
    )  # fmt: skip
    assert (rc, status) == (0, "401"), body


def test_per_client_cap_refuses_the_excess_with_json(gw, clients):
    """From one address, requests in progress beyond gateway_proxy_connections_per_client
    are refused at once (429, JSON, Retry-After); those within it are held."""
    limit = int(gw.ansible.get_variables().get("gateway_proxy_connections_per_client", 64))
    out = json.loads(gw.check_output("python3 %s cap --count %s", clients, str(limit + 6)))
    assert (out["held"], out["refused"]) == (limit, 6), out
    head, _, body = out["answer"].partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 429"), out["answer"]
    assert "Retry-After: 10" in head, head
    assert json.loads(body)["error"] is True, body


def test_laptop_served_while_idle_and_slow_clients_hold_connections(gw, es, agent, clients):
    """IDLE_CONNECTIONS connections that never start TLS (each reopened when nginx drops
    it) and SLOW_CLIENTS clients trickling a /submit body, each from an address of its own
    (127.0.0.0/8 on the gateway host: the per-client cap is not what saves the laptop),
    are open while a laptop on the network pings and submits."""
    status_file = "/root/molecule-hold.json"
    gw.check_output("rm -f %s", status_file)
    hold = shlex.join(
        ["python3", clients, "hold", "--idle", str(IDLE_CONNECTIONS), "--slow", str(SLOW_CLIENTS),
         "--seconds", "90", "--status", status_file]
    )  # fmt: skip
    gw.check_output(
        "setsid -f sh -c %s </dev/null",
        f"echo $$ > /root/molecule-hold.pid; exec {hold} >/root/molecule-hold.log 2>&1",
    )
    try:
        before = None
        for _ in range(60):
            res = gw.run("cat %s", status_file)
            if res.rc == 0:
                before = json.loads(res.stdout)
                if before["idle_open"] == IDLE_CONNECTIONS and before["slow_open"] == SLOW_CLIENTS:
                    break
            time.sleep(1)
        log = gw.run("cat /root/molecule-hold.log").stdout
        assert before and before["slow_open"] == SLOW_CLIENTS, (before, log)
        time.sleep(3)  # the slow clients have sent more of their bodies meanwhile
        ping = _laptop(es, agent, "/ping")
        submit = _laptop(es, agent, "/submit", _rows(agent[0], {"during": "slow clients"}))
        after = json.loads(gw.check_output("cat %s", status_file))
    finally:
        gw.run("kill $(cat /root/molecule-hold.pid)")
    print(
        f"proxy: {after['idle_open']} idle and {after['slow_open']} slow connections open "
        f"({after['idle_reopened']} idle ones reopened after nginx dropped them); laptop "
        f"/ping {ping[0]} in {ping[2]:.3f} s, /submit {submit[0]} in {submit[2]:.3f} s"
    )
    assert ping[0] == "200", ping
    assert submit[0] == "200", submit
    assert json.loads(submit[1])["processed_count"] == 1
    assert ping[2] < LAPTOP_WITHIN_S and submit[2] < LAPTOP_WITHIN_S, (ping, submit)
    # the pressure was still there while the laptop was served
    assert after["idle_open"] == IDLE_CONNECTIONS
    assert after["slow_open"] == SLOW_CLIENTS and after["slow_failed"] == 0, after


def test_restart_and_reload_lose_no_request(gw, es, agent, clients):
    """Four laptops submit in a loop (a new connection per request) while gunicorn
    restarts (as a release does) and nginx reloads (as a certificate change does): every
    request is answered 200; none is reset or refused."""
    username, token = agent
    out_file = "/root/molecule-submit-loop.json"
    loop = shlex.join(["python3", clients, "submit", "--host", GATEWAY, "--ca", CA,
                       "--user", username, "--token", token, "--seconds", "24"])  # fmt: skip
    es.check_output(f"setsid -f sh -c {shlex.quote(loop + ' > ' + out_file + ' 2>&1')} </dev/null")
    time.sleep(4)
    before = _show(gw, "MainPID")["MainPID"]
    gw.check_output("systemctl restart %s", UNIT)
    assert _show(gw, "MainPID")["MainPID"] != before
    time.sleep(3)
    gw.check_output("systemctl reload nginx")
    time.sleep(3)
    gw.check_output("systemctl restart %s", UNIT)
    result = None
    for _ in range(60):
        text = es.run("cat %s", out_file).stdout.strip()
        if text.endswith("}"):
            result = json.loads(text)
            break
        time.sleep(1)
    assert result, text
    print(
        f"proxy: {result['requests']} requests across two gunicorn restarts and an nginx "
        f"reload: {result['answers']}; slowest {result['slowest_s']:.2f} s"
    )
    assert result["answers"] == {"200": result["requests"]}, result
    assert result["requests"] >= 20, result


def test_storage_was_set_up_by_the_role(es, prefix):
    out = json.loads(
        es.check_output("curl -sSf 'http://127.0.0.1:9200/_index_template/%s-*'", prefix)
    )
    names = {t["name"] for t in out["index_templates"]}
    assert f"{prefix}-results" in names
    # the installed package generated the result columns from its reviewed schema
    (results,) = [t for t in out["index_templates"] if t["name"] == f"{prefix}-results"]
    data = results["index_template"]["template"]["mappings"]["properties"]["data"]
    columns = data["properties"]["columns"]["properties"]
    assert columns["remote_address"]["type"] == "keyword"
    assert columns["remote_port"]["type"] == "long"


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
    assert "retention_days = 400 with one index per day needs up to 1208 shards" in result
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


# --- last: it spends this address's registration budget --------------------------------


def test_registrations_per_address_are_rate_limited(gw):
    """From one address, /register passes gateway_proxy_register_burst requests at once
    (and then gateway_proxy_register_per_minute a minute); the rest get nginx's 429 in the
    gateway's shape, before the gateway reads them. Other endpoints are not limited. Sent
    from a loopback address of its own on the gateway host: the laptop's address has
    spent some of its budget in the tests above."""
    variables = gw.ansible.get_variables()
    burst = int(variables.get("gateway_proxy_register_burst", 20))
    per_minute = int(variables.get("gateway_proxy_register_per_minute", 10))
    count = burst + 15
    answers = "/root/molecule-register"
    curl = (
        f"curl -s -i --interface 127.0.33.{uuid.uuid4().int % 250 + 2} --cacert {CA} "
        f"--resolve {GATEWAY}:{PORT}:127.0.0.1"
    )
    loop = (
        f"mkdir -p {answers}; start=$(date +%s.%N); for i in $(seq {count}); do "
        f"{curl} --data username=-invalid {_url('/register')} > {answers}/$i; done; "
        f"echo $start $(date +%s.%N); "
        f"for i in $(seq {count}); do head -n1 {answers}/$i | cut -d' ' -f2; done"
    )
    out = gw.check_output("bash -c %s", loop).split()
    start, end, statuses = float(out[0]), float(out[1]), out[2:]
    assert len(statuses) == count
    passed = [s for s in statuses if s != "429"]
    assert set(passed) == {"400"}, statuses  # the gateway's own answer to the bad name
    refilled = (end - start) * per_minute / 60
    assert burst + 1 <= len(passed) <= burst + 2 + refilled, statuses
    first_refused = statuses.index("429") + 1
    answer = gw.check_output("cat %s/%s", answers, str(first_refused))
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 429"), answer
    assert "Retry-After: 10" in head, head
    assert json.loads(body) == {
        "error": True,
        "error_msg": "Too many requests from this address, try again later",
    }
    # the same address's other requests still pass
    status = gw.check_output(f"{curl} -o /dev/null -w '%{{http_code}}' {_url('/healthz')}")
    assert status == "200", status
