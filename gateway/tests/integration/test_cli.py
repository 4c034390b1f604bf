"""The admin CLI against the real node."""

import json

from flock_gateway.cli import main

from .helpers import basic, register


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_setup_storage_and_check(env, capsys, prefix):
    code, out, _ = run(capsys, "check")
    assert code == 1
    assert "setup-storage" in json.loads(out)["message"]
    assert json.loads(out)["reason"] == "storage_not_set_up"

    code, out, _ = run(capsys, "setup-storage")
    assert code == 0
    report = json.loads(out)
    assert report["changed"] is True
    assert f"{prefix}-results" in report["templates"]

    code, out, _ = run(capsys, "setup-storage")
    assert code == 0
    assert json.loads(out)["changed"] is False

    code, out, _ = run(capsys, "check")
    assert code == 0
    assert json.loads(out)["ok"] is True
    assert json.loads(out)["reason"] == "ready"


def test_check_reports_missing_templates(env, es, capsys, prefix):
    assert run(capsys, "setup-storage")[0] == 0
    es.indices.delete_index_template(name=f"{prefix}-status")
    code, out, _ = run(capsys, "check")
    report = json.loads(out)
    assert code == 1
    assert (report["ok"], report["reason"]) == (False, "storage_not_set_up")
    assert report["missing_templates"] == [f"{prefix}-status"]


def test_check_unreachable(monkeypatch, capsys):
    monkeypatch.setenv("FLOCK_ES_HOSTS", "http://127.0.0.1:1")
    monkeypatch.setenv("FLOCK_ES_MAX_RETRIES", "0")
    code, out, _ = run(capsys, "check")
    assert code == 1
    assert "cannot reach Elasticsearch" in json.loads(out)["message"]
    assert json.loads(out)["reason"] == "storage_unreachable"


def test_storage_failure_has_a_reason(monkeypatch, capsys):
    monkeypatch.setenv("FLOCK_ES_HOSTS", "http://127.0.0.1:1")
    monkeypatch.setenv("FLOCK_ES_MAX_RETRIES", "0")
    code, out, err = run(capsys, "setup-storage")
    assert code == 1
    assert json.loads(out)["reason"] == "storage_unavailable"
    assert err.startswith("flock-gateway: Elasticsearch error: ConnectionError")


def test_agents_list_rename_revoke(client, env, capsys):
    t1 = register(client, "host-1", "Alice")
    register(client, "host-2", "Bob")

    code, out, _ = run(capsys, "agents", "list", "--json")
    assert code == 0
    agents = json.loads(out)
    assert [a["username"] for a in agents] == ["host-1", "host-2"]
    assert [a["name"] for a in agents] == ["Alice", "Bob"]
    assert t1 not in out
    assert "sha256" not in out

    code, out, _ = run(capsys, "agents", "list")
    assert code == 0
    assert out.splitlines()[0].startswith("host-1\tAlice\tflock-agent\t")

    assert run(capsys, "agents", "rename", "host-1", "Alice's laptop")[0] == 0
    code, out, _ = run(capsys, "agents", "list", "--json")
    assert json.loads(out)[0]["name"] == "Alice's laptop"

    assert run(capsys, "agents", "revoke", "host-2")[0] == 0
    code, out, _ = run(capsys, "agents", "list", "--json")
    assert [a["username"] for a in json.loads(out)] == ["host-1"]

    code, out, err = run(capsys, "agents", "revoke", "host-2")
    assert code == 1
    assert "no such agent" in err
    assert json.loads(out) == {
        "ok": False,
        "reason": "unknown_agent",
        "message": "no such agent: host-2",
    }
    code, out, err = run(capsys, "agents", "rename", "bad name", "x")
    assert code == 1
    assert json.loads(out)["reason"] == "invalid_argument"
    assert client.get("/ping", headers=basic("host-1", t1)).status_code == 200


def test_config_error_is_reported(monkeypatch, capsys, tmp_path):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text("[elasticsearch]\nhostz = ['http://x:9200']\n")
    code, out, err = run(capsys, "--config", str(cfg), "check")
    assert code == 1
    assert "unknown setting [elasticsearch] hostz" in err
    assert json.loads(out)["reason"] == "config_invalid"


def test_check_config_runs_the_start_up_checks_offline(capsys, tmp_path):
    # The role validates a new gateway.toml with this before putting it in place: the
    # shard budget is one of the gateway's own start-up rules, not a copy in Jinja.
    cfg = tmp_path / "gateway.toml"
    base = "[elasticsearch]\nhosts = ['http://unreachable.invalid:9200']\n[storage]\n"
    cfg.write_text(base + "retention_days = 400\nindex_granularity = 'month'\n")
    code, out, _ = run(capsys, "--config", str(cfg), "check-config")
    assert code == 0
    assert json.loads(out)["ok"] is True

    cfg.write_text(base + "retention_days = 400\nmax_shards_per_node = 200\n")
    code, out, err = run(capsys, "--config", str(cfg), "check-config")
    assert code == 1
    assert json.loads(out)["reason"] == "config_invalid"
    assert "needs up to" in err
    assert "index_granularity = 'month' fits" in err
