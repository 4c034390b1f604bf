"""Retention: `flock-gateway prune` deletes daily indices older than N days."""

import json
from datetime import UTC, datetime, timedelta

from flock_gateway.cli import main

from .helpers import osquery_line, register, submit


def _day(delta_days: int) -> str:
    return (datetime.now(tz=UTC) - timedelta(days=delta_days)).strftime("%Y.%m.%d")


def test_prune_deletes_old_daily_indices(client, es, prefix, env, capsys, monkeypatch):
    token = register(client, "host-1")
    assert submit(client, "host-1", token, [osquery_line("host-1")]).status_code == 200
    old = [
        f"{prefix}-results-{_day(91)}",
        f"{prefix}-results-{_day(400)}",
        f"{prefix}-agent-logs-{_day(120)}",
        f"{prefix}-status-{_day(95)}",
    ]
    kept = [
        f"{prefix}-results-{_day(90)}",
        f"{prefix}-results-{_day(1)}",
        f"{prefix}-results-{_day(0)}",
        f"{prefix}-agents",
    ]
    for index in old + kept:
        if not es.indices.exists(index=index):
            es.indices.create(index=index)

    assert main(["prune", "--dry-run"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["deleted"]) == sorted(old)
    assert report["changed"] is False
    for index in old:
        assert es.indices.exists(index=index)

    assert main(["prune"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] is True
    assert report["retention_days"] == 90
    for index in old:
        assert not es.indices.exists(index=index)
    for index in kept:
        assert es.indices.exists(index=index)

    assert main(["prune"]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False

    # a shorter retention from the command line or the environment
    assert main(["prune", "--days", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["deleted"]) == sorted([f"{prefix}-results-{_day(90)}"])
    monkeypatch.setenv("FLOCK_RETENTION_DAYS", "0")  # invalid configuration
    assert main(["prune"]) == 1
    assert "retention_days" in capsys.readouterr().err


def test_rows_older_than_retention_are_not_stored(client, es, prefix):
    token = register(client, "host-1")
    old = osquery_line(
        "host-1", unixTime=int((datetime.now(tz=UTC) - timedelta(days=200)).timestamp())
    )
    res = submit(client, "host-1", token, [old, osquery_line("host-1")])
    assert res.status_code == 200
    body = json.loads(res.data)
    assert body["processed_count"] == 2
    assert body["expired_count"] == 1
    assert body["stored_count"] == 1
    from .helpers import stored

    assert len(stored(es, prefix)) == 1
