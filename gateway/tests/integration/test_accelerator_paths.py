"""The result endpoints store a body the same way with and without the compiled
accelerator (gateway/rowpath). Each body goes through one path, then again through the
other: the second time every row is a duplicate (same index, same id), so a batch resent
to a worker with the other path, or after the accelerator was installed or removed, is
never stored twice. tests/unit/test_accelerator.py compares the two paths' bulk lines
byte for byte; this is the same promise through the endpoints and a real node.
"""

from __future__ import annotations

import gzip
import json

import pytest

from flock_gateway import accelerator
from flock_gateway.app import create_app
from flock_gateway.config import Config

from .helpers import osquery_line, register, stored, submit

SECRET = "enroll-secret-accel-0123456789"
HOST = "7C6D5E4F-3A2B-1C0D-E9F8-A7B6C5D4E3F2"


def lines_for(host: str) -> list[dict]:
    lines = [
        osquery_line(host, counter=i, columns={"name": f'App "{i}"\n', "é": "東京 \U0001f600"})
        for i in range(20)
    ]
    return lines + [osquery_line(host)] * 2  # identical rows: told apart in their ids


@pytest.fixture
def path(monkeypatch):
    """``path("python" | "compiled")`` sends what follows through that path; each call of
    the accelerator is recorded (None: it left the body to the Python path)."""
    native = accelerator._native
    taken: list[bool] = []
    results = accelerator.results

    def recorded(*args, **kwargs):
        rows = results(*args, **kwargs)
        taken.append(rows is not None)
        return rows

    monkeypatch.setattr(accelerator, "results", recorded)

    def use(which: str) -> list[bool]:
        monkeypatch.setattr(accelerator, "_native", native if which == "compiled" else None)
        return taken

    return use


@pytest.mark.parametrize("first", ["python", "compiled"])
def test_submit_stores_a_body_once_whichever_path_writes_it(client, es, prefix, path, first):
    token = register(client, "paths-laptop")
    lines = lines_for("paths-laptop")
    answers = []
    for which in (first, "compiled" if first == "python" else "python"):
        taken = path(which)
        res = submit(client, "paths-laptop", token, lines)
        assert res.status_code == 200, res.data
        answers.append(json.loads(res.data))
    assert taken == [True]  # the compiled path took the body when it was there
    assert answers[0] == answers[1]
    assert answers[0]["stored_count"] == len(lines)
    assert len(stored(es, prefix)) == len(lines)


@pytest.mark.parametrize("first", ["python", "compiled"])
def test_osquery_log_stores_a_body_once_whichever_path_writes_it(
    es_url, es, prefix, storage, path, first
):
    client = create_app(
        Config(es_hosts=(es_url,), index_prefix=prefix, enroll_secrets=(SECRET,), auth_cache_ttl=0)
    ).test_client()
    res = client.post("/osquery/enroll", json={"enroll_secret": SECRET, "host_identifier": HOST})
    key = json.loads(res.data)["node_key"]
    lines = lines_for(HOST)
    body = gzip.compress(
        json.dumps({"node_key": key, "log_type": "result", "data": lines}).encode()
    )
    answers = []
    for which in (first, "compiled" if first == "python" else "python"):
        taken = path(which)
        res = client.post(
            "/osquery/log",
            data=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert res.status_code == 200, res.data
        answers.append(json.loads(res.data))
    assert taken == [True]
    assert answers[0] == answers[1]
    assert answers[0]["stored_count"] == len(lines)
    assert len(stored(es, prefix)) == len(lines)
