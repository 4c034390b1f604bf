"""osquery's TLS remote API: request and response shapes as osquery's tls enroll, config
and logger plugins send and expect them (osquery/remote/enroll/tls_enroll.cpp,
osquery/config/plugins/tls_config.cpp, osquery/logger/plugins/tls_logger.cpp)."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from flock_gateway.app import create_app
from flock_gateway.cli import main
from flock_gateway.config import Config
from flock_gateway.schedule import load_schedule

from .helpers import OLD_SECRET, SECRET, basic, osquery_line, register, stored, submit

UUID = "9A8B7C6D-5E4F-3A2B-1C0D-E9F8A7B6C5D4"
SCHEDULE = load_schedule()


def host_details(uuid=UUID):
    return {
        "os_version": {"name": "macOS", "version": "14.1", "major": "14", "platform": "darwin",
                       "build": "23B74"},
        "osquery_info": {"version": "5.10.2", "uuid": uuid, "pid": "123"},
        "system_info": {"hostname": "nicks-mbp.local", "computer_name": "Nick's MacBook",
                        "hardware_serial": "C02ABCDEFGH", "uuid": uuid,
                        "hardware_model": "MacBookPro18,1"},
        "platform_info": {"vendor": "Apple Inc.", "version": "10151.41.12"},
    }  # fmt: skip


def post(client, path, body, gzipped=False):
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "osquery/5.10.2"}
    if gzipped:
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    res = client.post(path, data=data, headers=headers)
    return res, (json.loads(res.data) if res.data else None)


def enroll(client, secret=SECRET, uuid=UUID):
    res, body = post(client, "/osquery/enroll", {
        "enroll_secret": secret, "host_identifier": uuid, "host_details": host_details(uuid),
    })  # fmt: skip
    assert res.status_code == 200
    return body


def result_line(name, uuid=UUID, **kw):
    line = osquery_line(uuid, name=name, **kw)
    line["decorations"] = {"host_uuid": uuid, "username": "nick"}
    return line


def snapshot_line(name, rows, uuid=UUID):
    line = result_line(name, uuid, action="snapshot")
    del line["columns"]
    line["snapshot"] = rows
    return line


def status_line(uuid=UUID):
    unix = int(time.time()) - 10
    return {"hostIdentifier": uuid, "calendarTime": "x", "unixTime": str(unix),
            "severity": "0", "filename": "scheduler.cpp", "line": "83",
            "message": "Executing scheduled query os_version", "version": "5.10.2",
            "decorations": {"host_uuid": uuid}}  # fmt: skip


def test_enroll_config_log_roundtrip(oclient, es, prefix, names):
    body = enroll(oclient)
    assert body["node_invalid"] is False
    node_key = body["node_key"]
    assert node_key.startswith(f"osq-{UUID}:")

    res, cfg = post(oclient, "/osquery/config", {"node_key": node_key})
    assert res.status_code == 200
    assert cfg["node_invalid"] is False
    assert cfg["schedule"] == SCHEDULE.queries
    assert cfg["options"]["disable_distributed"] is True
    assert cfg["options"]["disable_carver"] is True
    assert cfg["options"]["carver_disable_function"] is True

    names_in_schedule = sorted(SCHEDULE.names)
    lines = [
        snapshot_line(names_in_schedule[0], [{"name": "a", "version": "1"},
                                             {"name": "b", "version": "2"}]),
        result_line(names_in_schedule[1], columns={"x": "1"}),
    ]  # fmt: skip
    res, out = post(oclient, "/osquery/log",
                    {"node_key": node_key, "log_type": "result", "data": lines})  # fmt: skip
    assert res.status_code == 200
    assert out["node_invalid"] is False
    assert out["stored_count"] == 3
    assert out["refused_count"] == 0

    docs = [h["_source"] for h in stored(es, prefix)]
    assert len(docs) == 3
    for d in docs:
        assert d["data"]["hostIdentifier"] == UUID
        assert d["flock"]["source"] == "osquery"
        assert d["flock"]["username"] == f"osq-{UUID}"
        assert d["flock"]["name"] == "Nick's MacBook"
        assert d["@timestamp"] == time.strftime(
            "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(lines[1]["unixTime"])
        )

    # the registry keeps a hash and a few host details, never serials or the key
    es.indices.refresh(index=names.agents)
    (hit,) = es.search(index=names.agents)["hits"]["hits"]
    dump = json.dumps(hit)
    assert node_key.split(":")[1] not in dump
    assert "C02ABCDEFGH" not in dump
    assert hit["_source"]["source"] == "osquery"
    assert hit["_source"]["host_identifier"] == UUID


def test_status_logs_kept_apart(oclient, es, prefix):
    key = enroll(oclient)["node_key"]
    res, out = post(
        oclient,
        "/osquery/log",
        {"node_key": key, "log_type": "status", "data": [status_line()] * 2},
    )
    assert res.status_code == 200
    assert out["stored_count"] == 2
    assert stored(es, prefix, "results") == []
    docs = [h["_source"] for h in stored(es, prefix, "status")]
    assert len(docs) == 2
    assert docs[0]["data"]["message"] == "Executing scheduled query os_version"


def test_status_logs_can_be_dropped(es_url, prefix, storage, es):
    cfg = Config(es_hosts=(es_url,), index_prefix=prefix, enroll_secrets=(SECRET,),
                 status_logs="drop")  # fmt: skip
    client = create_app(cfg).test_client()
    key = enroll(client)["node_key"]
    res, out = post(
        client, "/osquery/log", {"node_key": key, "log_type": "status", "data": [status_line()]}
    )
    assert res.status_code == 200
    assert out["dropped_count"] == 1
    assert stored(es, prefix, "status") == []


def test_gzip_and_a_full_1024_line_batch(oclient, es, prefix):
    key = enroll(oclient)["node_key"]
    name = sorted(SCHEDULE.names)[0]
    lines = [result_line(name, counter=i, columns={"n": str(i), "pad": "p" * 200})
             for i in range(1024)]  # fmt: skip
    res, out = post(
        oclient,
        "/osquery/log",
        {"node_key": key, "log_type": "result", "data": lines},
        gzipped=True,
    )
    assert res.status_code == 200
    assert out["stored_count"] == 1024
    # osquery resends the same buffer after a timeout: stored once
    res, out = post(
        oclient,
        "/osquery/log",
        {"node_key": key, "log_type": "result", "data": lines},
        gzipped=True,
    )
    assert res.status_code == 200
    assert len(stored(es, prefix)) == 1024

    res, _ = post(
        oclient, "/osquery/log", {"node_key": key, "log_type": "result", "data": lines + lines[:1]}
    )
    assert res.status_code == 413


def test_a_line_beyond_the_line_limit_is_413(es_url, prefix, storage, es):
    # lines are measured one by one only in a body larger than the limit: both sides
    cfg = Config(es_hosts=(es_url,), index_prefix=prefix, enroll_secrets=(SECRET,),
                 osquery_max_line_bytes=4096)  # fmt: skip
    client = create_app(cfg).test_client()
    key = enroll(client)["node_key"]
    name = sorted(SCHEDULE.names)[0]
    small = [result_line(name, counter=i, columns={"pad": "p" * 1000}) for i in range(8)]
    big = result_line(name, counter=99, columns={"pad": "p" * 5000})
    for data in ([*small, big], [big], [json.dumps(big)]):
        res, out = post(client, "/osquery/log", {"node_key": key, "log_type": "result",
                                                 "data": data})  # fmt: skip
        assert res.status_code == 413, data
        assert "line limit" in out["error_msg"]
    assert stored(es, prefix) == []
    res, out = post(client, "/osquery/log", {"node_key": key, "log_type": "result",
                                             "data": small})  # fmt: skip
    assert res.status_code == 200
    assert out["stored_count"] == 8


def test_gzip_bomb_is_413(oclient):
    key = enroll(oclient)["node_key"]
    inner = (
        b'{"node_key": "'
        + key.encode()
        + b'", "log_type": "result", "data": ['
        + (b" " * (80 * 1024 * 1024))
        + b"]}"
    )
    bomb = gzip.compress(inner, 9)
    assert len(bomb) < 1024 * 1024
    res = oclient.post("/osquery/log", data=bomb, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"})  # fmt: skip
    assert res.status_code == 413
    assert json.loads(res.data)["error"] is True


def test_allow_list_refuses_unscheduled_queries(oclient, es, prefix):
    key = enroll(oclient)["node_key"]
    scheduled = sorted(SCHEDULE.names)[0]
    lines = [
        result_line(scheduled),
        result_line("read_ssh_keys", columns={"key": "-----BEGIN OPENSSH PRIVATE KEY-----"}),
        snapshot_line("all_files", [{"path": "/Users/nick/secret.pdf"}]),
        result_line("pack_evil_" + scheduled),
        result_line("reverse_shell"),  # a Flock agent twig: not osqueryd's to send
    ]
    res, out = post(oclient, "/osquery/log", {"node_key": key, "log_type": "result",
                                              "data": lines})  # fmt: skip
    assert res.status_code == 200
    assert out["refused_count"] == 4
    assert out["stored_count"] == 1
    docs = stored(es, prefix)
    assert [d["_source"]["data"]["name"] for d in docs] == [scheduled]
    metrics = oclient.get("/metrics").data.decode()
    assert 'flock_rows_refused_total{api="osquery",reason="not_in_schedule",pid=' in metrics
    line = next(x for x in metrics.splitlines() if x.startswith("flock_rows_refused_total"))
    assert line.endswith(" 4")


def test_strict_mode_on_the_flock_api(es_url, prefix, storage, es):
    cfg = Config(es_hosts=(es_url,), index_prefix=prefix, strict_allowlist=True)
    client = create_app(cfg).test_client()
    token = register(client, "host-1")
    # the Flock agent's allow-list is its twigs: reverse_shell is one, not in osqueryd's schedule
    assert not SCHEDULE.allows("reverse_shell")
    lines = [osquery_line("host-1", name=n) for n in ("reverse_shell", "x", "unknown")]
    res = submit(client, "host-1", token, lines)
    assert res.status_code == 200
    body = json.loads(res.data)
    assert body["processed_count"] == 3
    assert body["refused_count"] == 2
    assert body["stored_count"] == 1
    assert [h["_source"]["data"]["name"] for h in stored(es, prefix)] == ["reverse_shell"]


def test_node_invalid_makes_osquery_reenroll(oclient, env, capsys):
    for path in ("/osquery/config", "/osquery/log"):
        for key in ("", "nonsense", UUID + ":" + "0" * 32, "a b:c", None, 5):
            res, out = post(oclient, path, {"node_key": key, "log_type": "result", "data": []})
            assert res.status_code == 200
            assert out == {"node_invalid": True}

    first = enroll(oclient)["node_key"]
    again = enroll(oclient)["node_key"]  # osquery lost its key file, or got node_invalid
    assert first != again
    assert post(oclient, "/osquery/config", {"node_key": first})[1] == {"node_invalid": True}
    assert post(oclient, "/osquery/config", {"node_key": again})[1]["node_invalid"] is False

    # revoked from the admin CLI: node_invalid (osquery re-enrolls with its secret)
    assert main(["agents", "revoke", f"osq-{UUID}"]) == 0
    capsys.readouterr()
    assert post(oclient, "/osquery/config", {"node_key": again})[1] == {"node_invalid": True}


def test_node_keys_do_not_work_on_the_flock_api(oclient, es, prefix):
    """Otherwise an osquery host could bypass the allow-list through /submit."""
    key = enroll(oclient)["node_key"]
    username, _, token = key.partition(":")
    assert oclient.get("/ping", headers=basic(username, token)).status_code == 401
    res = submit(oclient, username, token, [result_line("read_ssh_keys")])
    assert res.status_code == 401
    assert stored(es, prefix) == []


def test_rows_for_another_host_are_node_invalid(oclient, es, prefix):
    key = enroll(oclient)["node_key"]
    other = "11111111-2222-3333-4444-555555555555"
    _, out = post(oclient, "/osquery/log", {"node_key": key, "log_type": "result",
                    "data": [result_line(sorted(SCHEDULE.names)[0], uuid=other)]})  # fmt: skip
    assert out == {"node_invalid": True}
    assert stored(es, prefix) == []


def test_a_line_that_cannot_be_stored_never_blocks_osqueryd(oclient, es, prefix):
    """osqueryd resends a refused batch for ever: a line of wrong types, or not JSON, is
    quarantined with its reason and the batch answers 200; a resend stores nothing twice."""
    key = enroll(oclient)["node_key"]
    name = sorted(SCHEDULE.names)[0]
    bad = result_line(name, columns={"version": ["not", "a", "scalar"]})
    lines = [result_line(name), bad, "{not json", result_line(name, counter=2)]
    body = {"node_key": key, "log_type": "result", "data": lines}
    for _ in range(2):
        res, out = post(oclient, "/osquery/log", body, gzipped=True)
        assert res.status_code == 200
        assert out["node_invalid"] is False
        assert (out["processed_count"], out["stored_count"], out["quarantined_count"]) == (4, 4, 2)
    docs = [h["_source"] for h in stored(es, prefix)]
    held = [d for d in docs if "quarantine_reason" in d["flock"]]
    assert len(docs) == 4
    assert sorted(d["flock"]["raw_json"] for d in held) == sorted(
        [json.dumps(bad, separators=(",", ":")), '"{not json"']
    )
    assert all(d["flock"]["source"] == "osquery" for d in held)


def test_secret_rotation(es_url, prefix, storage):
    both = create_app(Config(es_hosts=(es_url,), index_prefix=prefix,
                             enroll_secrets=(SECRET, OLD_SECRET))).test_client()  # fmt: skip
    k_old = enroll(both, secret=OLD_SECRET, uuid="host-old")["node_key"]
    k_new = enroll(both, secret=SECRET, uuid="host-new")["node_key"]
    assert enroll(both, secret="wrong-secret-0123456789")["node_invalid"] is True
    assert enroll(both, secret="")["node_invalid"] is True
    _, out = post(both, "/osquery/enroll", {"host_identifier": UUID})
    assert out == {"node_invalid": True}

    # the operator drops the old secret: hosts enrolled with it keep their node keys
    rotated = create_app(Config(es_hosts=(es_url,), index_prefix=prefix,
                                enroll_secrets=(SECRET,))).test_client()  # fmt: skip
    assert enroll(rotated, secret=OLD_SECRET, uuid="host-late")["node_invalid"] is True
    for key in (k_old, k_new):
        assert post(rotated, "/osquery/config", {"node_key": key})[1]["node_invalid"] is False

    # with no secret configured at all, osquery enrollment is closed
    closed = create_app(Config(es_hosts=(es_url,), index_prefix=prefix)).test_client()
    assert enroll(closed, uuid="host-x")["node_invalid"] is True


def test_flock_agent_and_osquery_host_share_the_registry(oclient, env, capsys):
    res = oclient.post("/register", json={"username": "laptop-1", "enroll_secret": SECRET})
    token = json.loads(res.data)["auth_token"]
    osq = enroll(oclient, uuid="laptop-2")["node_key"]
    # osquery hosts have names of their own (osq-…), which /register refuses: neither
    # kind of agent can take the other's name
    other = enroll(oclient, uuid="laptop-1")["node_key"]
    assert other.startswith("osq-laptop-1:")
    res = oclient.post("/register", json={"username": "OSQ-laptop-2", "enroll_secret": SECRET})
    assert res.status_code == 400
    assert "reserved for osquery hosts" in json.loads(res.data)["error_msg"]
    assert oclient.get("/ping", headers=basic("laptop-1", token)).status_code == 200
    assert post(oclient, "/osquery/config", {"node_key": osq})[1]["node_invalid"] is False

    assert main(["agents", "list", "--json"]) == 0
    agents = {a["username"]: a for a in json.loads(capsys.readouterr().out)}
    assert agents["laptop-1"]["source"] == "flock-agent"
    assert agents["osq-laptop-2"]["source"] == "osquery"
    assert agents["osq-laptop-2"]["host_identifier"] == "laptop-2"
    assert main(["agents", "rename", "osq-laptop-2", "Reception desk"]) == 0
    capsys.readouterr()


def test_hostname_identifiers_and_string_typed_rows(oclient, es, prefix):
    """host_identifier=hostname (dots), and an older osquery sending every value as a
    string and each line as a JSON string."""
    host = "nicks-mbp.example.org"
    key = enroll(oclient, uuid=host)["node_key"]
    assert key.startswith("osq-nicks-mbp-example-org-")
    line = result_line(sorted(SCHEDULE.names)[0], uuid=host)
    line.update(unixTime=str(line["unixTime"]), epoch="0", counter="0", numerics="false")
    res, out = post(oclient, "/osquery/log", {"node_key": key, "log_type": "result",
                                              "data": [json.dumps(line)]})  # fmt: skip
    assert res.status_code == 200, out
    assert out["stored_count"] == 1
    (hit,) = stored(es, prefix)
    assert hit["_source"]["data"]["hostIdentifier"] == host


@pytest.mark.parametrize(
    "path",
    [
        "/osquery/distributed/read",
        "/osquery/distributed/write",
        "/osquery/carve/begin",
        "/osquery/carve/block",
        "/distributed/read",
        "/carve/begin",
    ],
)
def test_live_queries_and_carving_do_not_exist(oclient, path):
    key = enroll(oclient)["node_key"]
    res, body = post(oclient, path, {"node_key": key, "queries": {}})
    assert res.status_code == 404
    assert body["error"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"node_key": "k", "log_type": "result", "data": "x"},
        {"node_key": "k", "log_type": "debug", "data": []},
        [1],
    ],
)
def test_bad_log_requests(oclient, body):
    key = enroll(oclient)["node_key"]
    if isinstance(body, dict):
        body = {**body, "node_key": key}
    res, out = post(oclient, "/osquery/log", body)
    assert res.status_code == 400
    assert out["error"] is True


def test_osquery_flags_file(capsys, monkeypatch):
    monkeypatch.delenv("FLOCK_CONFIG", raising=False)
    assert main(["osquery-flags", "--url", "https://flock.example.org:8443"]) == 0
    text = capsys.readouterr().out
    flags = dict(
        line.split("=", 1) for line in text.splitlines() if line.startswith("--") and "=" in line
    )
    assert flags["--tls_hostname"] == "flock.example.org:8443"
    assert flags["--enroll_tls_endpoint"] == "/osquery/enroll"
    assert flags["--config_tls_endpoint"] == "/osquery/config"
    assert flags["--logger_tls_endpoint"] == "/osquery/log"
    assert flags["--config_plugin"] == "tls"
    assert flags["--logger_plugin"] == "tls"
    assert flags["--disable_distributed"] == "true"
    assert flags["--tls_server_certs"] == "/etc/osquery/flock-ca.pem"
    assert flags["--enroll_secret_path"] == "/etc/osquery/flock-enroll-secret"
    assert main(["osquery-flags", "--url", "http://insecure"]) == 1
