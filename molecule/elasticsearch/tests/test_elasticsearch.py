"""One Elasticsearch node installed by roles/elasticsearch (archive install, offline node
with x-pack security: TLS from the pki role, passwords on the controller)."""

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

URL = "https://elasticsearch-node1:9200"
CA = "/etc/flock/pki/ca.crt"
CREDENTIALS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "credentials"
PKI = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "pki"
# The version every role deploys unless told otherwise (the flock role's default).
FLOCK_DEFAULTS = Path(__file__).resolve().parents[3] / "roles/flock/defaults/main.yml"
VERSION = yaml.safe_load(FLOCK_DEFAULTS.read_text())["flock_elastic_version"]
# The index prefix the role's privileges are written for (the same one source).
PREFIX = yaml.safe_load(FLOCK_DEFAULTS.read_text())["flock_index_prefix"]


def password(user):
    return (CREDENTIALS / f"{user}.password").read_text().strip()


def es_call(host, method, path, user="elastic", body=None):
    """(status, parsed JSON) of a request to the node from inside its container, over
    HTTPS (verified against the pki CA) as `user`. The password goes through curl's
    config on stdin, never on a command line."""
    cfg = f'user = "{user}:{password(user)}"\n'
    cmd = f"curl -sS --max-time 20 --cacert {CA} -K - -X {method} -w '\\n%{{http_code}}' "
    if body is not None:
        cmd += f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))} "
    cmd += shlex.quote(URL + path)
    out = host.check_output(f"printf %s {shlex.quote(cfg)} | {cmd}")
    text, _, status = out.rpartition("\n")
    return int(status), (json.loads(text) if text.strip() else {})


def es_get(host, path):
    """GET path as the elastic user; parsed JSON (fails on a non-2xx status)."""
    status, body = es_call(host, "GET", path)
    assert 200 <= status < 300, (path, status, body)
    return body


@pytest.fixture(scope="module")
def inventory(host):
    return host.ansible.get_variables()


def test_service_active_under_systemd(host):
    service = host.service("elasticsearch")
    assert service.is_running
    assert service.is_enabled
    assert host.check_output("systemctl show --value -p User elasticsearch") == "elasticsearch"
    main_pid = host.check_output("systemctl show --value -p MainPID elasticsearch")
    assert host.check_output("ps -o user= -p %s", main_pid) == "elasticsearch"
    # ES_PATH_CONF from the unit: the running JVM reads /etc/elasticsearch.
    cmdline = host.check_output("tr '\\0' ' ' < /proc/%s/cmdline", main_pid)
    assert "-Des.path.conf=/etc/elasticsearch" in cmdline


def test_unit_limits(host):
    # The unit asks for 65535 open files; the process gets at most the container's hard
    # limit (20000 on our build machines, where nothing may raise it).
    assert host.check_output("systemctl show --value -p LimitNOFILE elasticsearch") == "65535"
    hard = int(host.check_output("sh -c 'ulimit -Hn'"))
    stats = es_get(host, "/_nodes/_local/stats/process")
    node = next(iter(stats["nodes"].values()))
    assert node["process"]["max_file_descriptors"] == min(65535, hard)


def test_answers_with_inventory_cluster_name(host, inventory):
    root = es_get(host, "/")
    assert root["cluster_name"] == inventory["elasticsearch_cluster_name"] == "molecule-single"
    assert root["name"] == "elasticsearch-node1"
    assert root["version"]["number"] == VERSION
    health = es_get(host, "/_cluster/health")
    assert health["number_of_nodes"] == 1
    assert health["status"] in ("green", "yellow")


def test_layout_like_the_deb(host):
    home = host.file("/usr/share/elasticsearch")
    assert home.is_symlink
    # The x-pack build's own tree: the open build of the same version would be another.
    assert home.linked_to == f"/usr/share/elasticsearch-{VERSION}-xpack"
    assert host.file("/usr/share/elasticsearch/modules/x-pack-security").is_directory
    conf = host.file("/etc/elasticsearch")
    assert (conf.user, conf.group, conf.mode) == ("root", "elasticsearch", 0o2750)
    for path in (
        "/etc/elasticsearch/elasticsearch.yml",
        "/etc/elasticsearch/jvm.options.d/heap.options",
    ):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "elasticsearch", 0o660)
    logs = host.file("/var/log/elasticsearch")
    assert (logs.user, logs.group, logs.mode) == ("elasticsearch", "elasticsearch", 0o2750)
    assert host.file("/var/log/elasticsearch/molecule-single.log").exists


def test_data_under_configured_path(host, inventory):
    data_dir = inventory["elasticsearch_data_dir"]
    assert data_dir == "/srv/elasticsearch/data"
    d = host.file(data_dir)
    assert (d.user, d.group, d.mode) == ("elasticsearch", "elasticsearch", 0o2750)
    # The node's persisted cluster state lives there, and ES reports that path as its data path.
    assert host.file(data_dir + "/_state").is_directory
    assert host.check_output("find %s/_state -type f -name 'segments_*' | wc -l", data_dir) != "0"
    fs = es_get(host, "/_nodes/_local/stats/fs")
    paths = [p["path"] for p in next(iter(fs["nodes"].values()))["fs"]["data"]]
    assert paths == [data_dir]
    assert not host.file("/usr/share/elasticsearch/data").exists


def test_config_rendered_from_variables(host):
    cfg = host.file("/etc/elasticsearch/elasticsearch.yml").content_string
    settings = yaml.safe_load(cfg)
    assert settings["cluster.name"] == "molecule-single"
    assert settings["node.name"] == "elasticsearch-node1"
    assert settings["node.roles"] == ["master", "data", "ingest"]
    assert settings["path.data"] == "/srv/elasticsearch/data"
    # One host in the group: single-node discovery, nothing to bootstrap.
    assert settings["discovery.type"] == "single-node"
    assert "discovery.seed_hosts" not in settings
    assert "cluster.initial_master_nodes" not in settings
    # Bound beyond loopback (the container's address), so other hosts can reach it.
    assert "_local_" in settings["network.host"]
    assert len(settings["network.host"]) == 2
    # x-pack security on: TLS on both layers with the pki role's files, no auto-configuration.
    assert settings["xpack.security.enabled"] is True
    assert settings["xpack.security.http.ssl.enabled"] is True
    assert settings["xpack.security.transport.ssl.enabled"] is True
    assert settings["xpack.security.autoconfiguration.enabled"] is False
    assert settings["xpack.security.transport.ssl.client_authentication"] == "required"


def test_heap_from_variable(host):
    heap = host.file("/etc/elasticsearch/jvm.options.d/heap.options").content_string
    assert "-Xms512m" in heap and "-Xmx512m" in heap
    jvm = es_get(host, "/_nodes/_local/jvm")
    node = next(iter(jvm["nodes"].values()))
    assert node["jvm"]["mem"]["heap_max_in_bytes"] == 512 * 1024 * 1024


def test_config_change_restarted_the_node(host):
    """side_effect.yml changed a setting; the handler must have restarted the node."""
    before = json.loads(host.file("/root/molecule-node-before.json").content_string)
    after = json.loads(host.file("/root/molecule-node-after.json").content_string)
    assert "flock_marker" not in before["attributes"]
    # The new setting is live, so the JVM re-read the config: a new process, a new unit run.
    assert after["attributes"].get("flock_marker") == "side-effect"
    assert after["pid"] != before["pid"]
    assert after["invocation_id"] != before["invocation_id"]
    assert after["jvm_start_ms"] > before["jvm_start_ms"]
    # And it is still the node that runs now.
    now = next(iter(es_get(host, "/_nodes/_local")["nodes"].values()))
    assert now["attributes"]["flock_marker"] == "side-effect"


def test_http_is_tls_only_and_needs_a_password(host):
    # Allowed: HTTPS, verified against the pki CA, with the elastic password.
    status, body = es_call(host, "GET", "/_security/_authenticate")
    assert status == 200 and body["username"] == "elastic"
    # Forbidden: plain HTTP on the same port, no credentials, a wrong password.
    plain = host.run(
        "curl -sS --max-time 10 -o /dev/null -w '%{http_code}' http://elasticsearch-node1:9200/"
    )
    assert plain.stdout.strip() in ("000", "")
    anon = host.check_output(
        "curl -sS --max-time 10 --cacert %s -o /dev/null -w '%%{http_code}' %s/", CA, URL
    )
    assert anon == "401"
    wrong = host.check_output(
        "curl -sS --max-time 10 --cacert %s -u elastic:wrong -o /dev/null -w '%%{http_code}' %s/",
        CA,
        URL,
    )
    assert wrong == "401"


def test_elastic_works_without_bootstrap_password(host):
    """The role stored elastic's password in the cluster and removed bootstrap.password from
    the keystore; the side effect restarted the node since, so the password that works now
    can only come from the cluster."""
    entries = host.check_output(
        "ES_PATH_CONF=/etc/elasticsearch /usr/share/elasticsearch/bin/elasticsearch-keystore list"
    ).split()
    assert "keystore.seed" in entries
    assert "bootstrap.password" not in entries
    ks = host.file("/etc/elasticsearch/elasticsearch.keystore")
    assert (ks.user, ks.group, ks.mode) == ("root", "elasticsearch", 0o660)
    after = json.loads(host.file("/root/molecule-node-after.json").content_string)
    now = next(iter(es_get(host, "/_nodes/_local/process")["nodes"].values()))
    assert now["process"]["id"] == after["pid"]
    status, _ = es_call(host, "GET", "/_security/_authenticate")
    assert status == 200


def test_builtin_and_flock_users_authenticate(host):
    for user in (
        "kibana_system",
        "flock_gateway",
        "flock_retention",
        "flock_setup",
        "flock_viewer",
    ):
        status, body = es_call(host, "GET", "/_security/_authenticate", user=user)
        assert status == 200, (user, body)
        assert body["username"] == user


def test_gateway_user_writes_but_cannot_read(host):
    status, body = es_call(
        host, "POST", f"/{PREFIX}-results-2020.01.01/_doc?refresh=true", "flock_gateway", {"a": 1}
    )
    assert status == 201, body
    for path in (
        f"/{PREFIX}-results-2020.01.01/_search",
        f"/{PREFIX}-results-2020.01.01/_count",
        f"/{PREFIX}-results-2020.01.01/_doc/{body['_id']}",
    ):
        status, _ = es_call(host, "GET", path, "flock_gateway")
        assert status == 403, path
    # A wildcard expands only to indices the user may read: none, so the row stays unseen.
    status, found = es_call(host, "GET", f"/{PREFIX}-results-*/_search", "flock_gateway")
    assert status == 200 and found["hits"]["total"]["value"] == 0, found
    # The agent registry: read and written by the gateway (token hashes live there); it is
    # created by setup-storage with admin credentials, never by the gateway's user.
    status, body = es_call(host, "PUT", f"/{PREFIX}-agents", "flock_gateway")
    assert status == 403, body
    status, body = es_call(host, "PUT", f"/{PREFIX}-agents", "elastic")
    assert status == 200, body
    status, body = es_call(
        host, "PUT", f"/{PREFIX}-agents/_doc/a1?refresh=true", "flock_gateway", {"n": 1}
    )
    assert status in (200, 201), body
    status, _ = es_call(host, "GET", f"/{PREFIX}-agents/_doc/a1", "flock_gateway")
    assert status == 200
    # Nothing outside Flock's indices.
    status, _ = es_call(host, "PUT", "/other/_doc/1", "flock_gateway", {"n": 1})
    assert status == 403


def test_viewer_reads_results_not_the_agent_registry(host):
    es_call(host, "PUT", f"/{PREFIX}-agents/_doc/a2?refresh=true", "elastic", {"n": 2})
    status, body = es_call(host, "GET", f"/{PREFIX}-results-*/_search", "flock_viewer")
    assert status == 200, body
    status, _ = es_call(host, "GET", f"/{PREFIX}-agents/_search", "flock_viewer")
    assert status == 403
    status, _ = es_call(
        host, "POST", f"/{PREFIX}-results-2020.01.01/_doc", "flock_viewer", {"a": 1}
    )
    assert status == 403


def test_retention_user_deletes_daily_indices_only(host):
    es_call(host, "PUT", f"/{PREFIX}-results-2000.01.01", "elastic")
    es_call(host, "PUT", f"/{PREFIX}-agents/_doc/a3?refresh=true", "elastic", {"n": 3})
    # What `flock-gateway prune` lists the daily indices with (view_index_metadata).
    status, body = es_call(
        host,
        "GET",
        f"/{PREFIX}-results-*,{PREFIX}-agent-logs-*,{PREFIX}-status-*/_settings/index.uuid"
        "?expand_wildcards=all&allow_no_indices=true",
        "flock_retention",
    )
    assert status == 200, body
    assert f"{PREFIX}-results-2000.01.01" in body
    assert f"{PREFIX}-agents" not in body
    # _cat/indices would need the cluster privilege monitor, which it does not have.
    status, _ = es_call(host, "GET", f"/_cat/indices/{PREFIX}-results-*", "flock_retention")
    assert status == 403
    status, _ = es_call(host, "DELETE", f"/{PREFIX}-results-2000.01.01", "flock_retention")
    assert status == 200
    status, _ = es_call(host, "DELETE", f"/{PREFIX}-agents", "flock_retention")
    assert status == 403
    es_call(host, "POST", f"/{PREFIX}-results-2020.01.02/_doc?refresh=true", "elastic", {"a": 1})
    status, _ = es_call(host, "GET", f"/{PREFIX}-results-2020.01.02/_search", "flock_retention")
    assert status == 403


def _handshake(host, cert, key):
    """TLS 1.2 handshake with the transport port, presenting cert/key (files in the
    container); 'ok' or the error. TLS 1.2 so a refused client certificate fails the
    handshake itself (under 1.3 the refusal would only arrive with the first read)."""
    script = (
        "import socket, ssl\n"
        "c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        "c.maximum_version = ssl.TLSVersion.TLSv1_2\n"
        "c.check_hostname = False\n"
        f"c.load_verify_locations('{CA}')\n"
        f"c.load_cert_chain('{cert}', '{key}')\n"
        "s = c.wrap_socket(socket.create_connection(('127.0.0.1', 9300), timeout=20))\n"
        "print('ok')\n"
    )
    r = host.run("python3 -c %s", script)
    return r.stdout.strip() if r.rc == 0 else (r.stderr.strip().splitlines() or ["failed"])[-1]


def test_transport_accepts_nodes_only(host, tmp_path):
    """A certificate from the same CA issued to another host (a gateway, Kibana) must not
    open a transport connection: trust restrictions admit only the cluster's node names."""
    # Allowed: the node's own certificate.
    assert (
        _handshake(
            host, "/etc/flock/pki/elasticsearch-node1.crt", "/etc/flock/pki/elasticsearch-node1.key"
        )
        == "ok"
    )
    # Forbidden: a valid certificate of the same CA for a gateway's name.
    key, csr, crt = tmp_path / "gw.key", tmp_path / "gw.csr", tmp_path / "gw.crt"
    subprocess.run(
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key], check=True
    )
    subprocess.run(
        ["openssl", "req", "-new", "-key", key, "-subj", "/CN=flock-gateway1", "-out", csr],
        check=True,
    )
    ext = tmp_path / "ext"
    ext.write_text(
        "subjectAltName=DNS:flock-gateway1,DNS:localhost,IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            PKI / "ca.crt",
            "-CAkey",
            PKI / "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext,
            "-out",
            crt,
        ],
        check=True,
    )
    for src, dest in ((crt, "/root/gw.crt"), (key, "/root/gw.key")):
        host.check_output("umask 077 && printf '%%s' %s > %s", src.read_text(), dest)
    assert host.check_output("openssl verify -CAfile %s /root/gw.crt", CA).endswith("OK")
    result = _handshake(host, "/root/gw.crt", "/root/gw.key")
    assert result != "ok"
    assert "SSL" in result or "alert" in result.lower(), result
