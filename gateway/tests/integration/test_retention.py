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


def test_disk_budget_deletes_the_oldest_until_under_it_never_the_current(
    es, prefix, env, capsys, monkeypatch
):
    """Beside the age: with a disk budget, the oldest indices go (oldest day first, any
    kind) until the rest fit; today's and later indices are never deleted, even when they
    alone are over the budget."""
    days = {5: 200, 4: 200, 3: 200, 2: 200, 0: 200, -1: 50}  # days ago -> documents
    indices = {}
    for ago, docs in days.items():
        kind = "status" if ago == 3 else "results"
        index = f"{prefix}-{kind}-{_day(ago)}"
        es.bulk(
            operations=[
                line
                for i in range(docs)
                for line in ({"create": {"_index": index}}, {"n": i, "pad": "x" * 200})
            ],
            refresh=True,
        )
        indices[ago] = index
    es.indices.flush(index=",".join(indices.values()))
    sizes = {
        name: body["total"]["store"]["size_in_bytes"]
        for name, body in es.indices.stats(index=",".join(indices.values()), metric="store")[
            "indices"
        ].items()
    }
    total = sum(sizes.values())
    # A budget that the three oldest must go for, not the fourth.
    budget = total - sizes[indices[5]] - sizes[indices[4]] - sizes[indices[3]] + 1

    assert main(["prune", "--max-bytes", str(budget), "--dry-run"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["deleted"] == []
    assert report["deleted_for_budget"] == [indices[5], indices[4], indices[3]]
    assert report["changed"] is False

    monkeypatch.setenv("FLOCK_RETENTION_MAX_BYTES", str(budget))
    assert main(["prune"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["deleted_for_budget"] == [indices[5], indices[4], indices[3]]
    assert report["bytes"] <= budget
    for ago in (5, 4, 3):
        assert not es.indices.exists(index=indices[ago])
    for ago in (2, 0, -1):
        assert es.indices.exists(index=indices[ago])

    # A budget nothing fits under: every past index goes, today's and tomorrow's stay.
    assert main(["prune", "--max-bytes", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["deleted_for_budget"] == [indices[2]]
    assert es.indices.exists(index=indices[0])
    assert es.indices.exists(index=indices[-1])
    assert report["bytes"] > 1

    assert main(["prune", "--max-bytes", "-1"]) == 1
    assert "--max-bytes" in capsys.readouterr().err
